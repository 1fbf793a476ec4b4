"""Instructions per call: NetrexClient against raw aiohttp, counted by valgrind, not timed.

On a shared machine throughput ratios wobble by several per cent from one run to the
next (the A/A control of ``bench_overhead.py`` shows it), which is more than the gap
this benchmark is about. ``valgrind --tool=callgrind`` counts the instructions a process
executes, whatever else the machine is doing: for the same binary and inputs the count
moves by less than 1 % from run to run (timers and the garbage collector fire at
slightly different points). Each contender of ``bench_overhead.py --transport memory``
(no network, no server: all of aiohttp's client code and all of the library's, nothing
else) runs in a process of its own under callgrind twice, for ``--calls`` and for twice
as many calls after the same warm-up; the difference divided by ``--calls`` is its
instructions per call, start-up, imports and warm-up cancelled out. ``raw/this`` is raw
aiohttp's count over the contender's: where the client is CPU-bound (it is, from
concurrency 10 on), that is the throughput ratio the machine would show if it were
quiet.

Instructions are not cycles: a cache miss costs no instruction. Read this table beside
``bench_overhead.py``'s, not instead of it.

    .venv/bin/python benchmarks/bench_instructions.py                 # tiny answers
    .venv/bin/python benchmarks/bench_instructions.py --answer-bytes 60000
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import _common as c

HERE = Path(__file__).resolve().parent
CONTENDERS = ("raw-aiohttp", "raw-idiomatic", "netrex-manager", "netrex-static", "netrex-nospeed")
WARM = 300


async def child(name: str, calls: int, concurrency: int, answer_bytes: int) -> None:
    """Run ``name`` for WARM + ``calls`` calls over the memory transport; print nothing."""
    import bench_overhead as b

    b.TRANSPORT = "memory"
    b.OK = b._http_answer("200 OK", b._servers_answer(answer_bytes))
    (kind,) = [k for k in b.available(set()) if k.name == name]
    contender = kind(b.NoServer.base_url)
    await contender.setup()
    try:
        b.speed_codec(contender.speed)
        await b.drive(contender.call, WARM, concurrency)
        await b.drive(contender.call, calls, concurrency)
    finally:
        await contender.close()


def count(name: str, calls: int, concurrency: int, answer_bytes: int) -> int:
    """Instructions executed by a child process running ``calls`` calls of ``name``."""
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        __file__,
        "--child",
        name,
        str(calls),
        str(concurrency),
        str(answer_bytes),
    ]
    path = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": path}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    found = re.search(r"Collected\s*:\s*(\d+)", done.stderr)
    if done.returncode or not found:
        raise SystemExit(f"{name}: valgrind failed:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    p = c.parser(__doc__)
    p.add_argument("--calls", type=int, default=1000, help="calls per measured difference")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 10, 100])
    p.add_argument("--answer-bytes", type=int, default=0, help="0: three camera names")
    p.add_argument("--only", nargs="*", default=None, help="contenders besides raw-aiohttp")
    p.add_argument(
        "--jobs", type=int, default=2, help="valgrind processes at once (counts do not mind)"
    )
    args = p.parse_args()
    if args.quick:  # four processes: a smoke check of about a minute, not a measurement
        args.calls, args.concurrency, args.only = 10, [1], ["netrex-static"]
    names = [n for n in CONTENDERS if args.only is None or n in {*args.only, "raw-aiohttp"}]
    results: dict[str, Any] = {"answer_bytes": args.answer_bytes, "calls": args.calls}
    rows = []
    runs = [(n, k, conc) for conc in args.concurrency for n in names for k in (1, 2)]
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        counts = dict(
            zip(
                runs,
                pool.map(lambda r: count(r[0], r[1] * args.calls, r[2], args.answer_bytes), runs),
                strict=True,
            )
        )
    for conc in args.concurrency:
        per_call = {n: (counts[n, 2, conc] - counts[n, 1, conc]) / args.calls for n in names}
        raw = per_call["raw-aiohttp"]
        for name in names:
            ratio = raw / per_call[name]
            results[f"{name}@{conc}"] = {"instructions_per_call": per_call[name], "raw_over": ratio}
            rows.append([conc, name, f"{per_call[name]:,.0f}", f"{ratio:.3f}"])
    table = c.table(["conc", "contender", "instructions/call", "raw/this"], rows)
    c.report(f"instructions (answer {args.answer_bytes or 'tiny'})", results, [table], args)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        name, calls, conc, size = sys.argv[2], *map(int, sys.argv[3:6])
        asyncio.run(child(name, calls, conc, size))
    else:
        main()
