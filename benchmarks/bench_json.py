"""JSON codecs for the ``speed`` extra: stdlib json, orjson and msgspec on GraphQL answers.

Encodes a request body (``{"query": ..., "variables": ...}``) and decodes GraphQL answers of
two sizes: a tiny one (the overhead benchmark's three cameras, about 80 bytes) and a
60 KB one (a page of camera events), each as the API sends it (bytes). Every codec's
decoded answer is checked equal to the stdlib's first. Codecs run interleaved, in a
rotating order, for ``--rounds`` rounds; the table gives medians of microseconds per
operation and the speed-up over the stdlib.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import _common as c
from _servers import answer_of


def answers() -> dict[str, bytes]:
    return {"tiny": answer_of(0), "60KB": answer_of(60_000)}


def codecs() -> dict[str, tuple[Callable[[bytes], Any], Callable[[Any], bytes]]]:
    found: dict[str, tuple[Callable[[bytes], Any], Callable[[Any], bytes]]] = {}
    encoder = json.JSONEncoder(separators=(",", ":")).encode
    found["stdlib"] = (json.loads, lambda o: encoder(o).encode())
    try:
        import orjson

        found["orjson"] = (orjson.loads, orjson.dumps)
    except ImportError:
        pass
    try:
        import msgspec

        decoder, enc = msgspec.json.Decoder(), msgspec.json.Encoder()
        found["msgspec"] = (decoder.decode, enc.encode)
    except ImportError:
        pass
    return found


def per_op(fn: Callable[[], Any], seconds: float) -> float:
    n, t0 = 0, time.perf_counter()
    deadline = t0 + seconds
    while True:
        for _ in range(20):
            fn()
        n += 20
        t = time.perf_counter()
        if t >= deadline:
            return (t - t0) / n * 1e6


def main() -> None:
    p = c.parser(__doc__)
    p.add_argument("--seconds", type=float, default=0.05, help="length of each timed run")
    p.add_argument("--rounds", type=int, default=15, help="rounds (interleaved)")
    args = p.parse_args()
    if args.quick:
        args.seconds, args.rounds = 0.01, 2
    found = codecs()
    bodies = answers()
    request = {
        "query": "query E($after: ID){events(after: $after){id}}",
        "variables": {"after": "evt-00001234"},
    }
    for name, (loads, _) in found.items():
        for size, raw in bodies.items():
            assert loads(raw) == json.loads(raw), f"{name} decodes the {size} answer differently"
    ops: dict[str, Callable[[], Any]] = {}
    for name, (loads, dumps) in found.items():
        for size, raw in bodies.items():
            ops[f"{name} decode {size}"] = lambda loads=loads, raw=raw: loads(raw)
        ops[f"{name} encode request"] = lambda dumps=dumps: dumps(request)
    runs: dict[str, list[float]] = {k: [] for k in ops}
    keys = list(ops)
    for r in range(args.rounds):
        shift = r % len(keys)
        for k in keys[shift:] + keys[:shift]:
            runs[k].append(per_op(ops[k], args.seconds))
    summary = {k: c.median(v) for k, v in runs.items()}
    rows = []
    for name in found:
        row: list[Any] = [name]
        for op in ("decode tiny", "decode 60KB", "encode request"):
            us = summary[f"{name} {op}"]
            base = summary[f"stdlib {op}"]
            row.append(f"{us:.2f} ({base / us:.2f}x)")
        rows.append(row)
    headers = ["codec", "decode tiny us (vs stdlib)", "decode 60 KB us", "encode request us"]
    sizes = {k: len(v) for k, v in bodies.items()}
    c.report(
        "json",
        {"settings": vars(args) | {"sizes": sizes}, "summary": summary, "runs": runs},
        [c.table(headers, rows)],
        args,
    )


if __name__ == "__main__":
    main()
