"""Summarize a py-spy profile of the overhead benchmark: where does a call's CPU go?

Record one contender at full load, then summarize::

    py-spy record -r 250 -f raw -o /tmp/netrex.txt -- \\
        .venv/bin/python benchmarks/bench_overhead.py --hold netrex-manager
    .venv/bin/python benchmarks/profile_summary.py /tmp/netrex.txt --us-per-call 150

Only samples taken inside the event loop count (imports and set-up do not). Each sample
is charged to the innermost frame's package ("self" time): netrex_async, aiohttp (with
yarl, multidict, propcache), asyncio (with selectors and the socket calls it makes),
json, the benchmark harness, other. Then the netrex_async functions, by self time and
by inclusive time. ``--us-per-call`` (the CPU per call ``--hold`` prints) turns shares
into microseconds per call.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"(?P<func>\S+) \((?P<file>[^:()]*?)(?::\d+)?\)$")
GROUPS = (
    ("netrex_async", ("netrex_async/",)),
    ("aiohttp, yarl, multidict", ("aiohttp/", "yarl/", "multidict/", "propcache/")),
    ("asyncio, selectors", ("asyncio/", "selectors.py", "socket.py")),
    ("json", ("json/",)),
    ("benchmark harness", ("benchmarks/", "bench_", "_common.py")),
)
#: Frames outside netrex_async that run only because of it: aiohttp's middleware wrapper,
#: the first-come-first-served request queue (an asyncio.Semaphore).
CAUSED = ("client_middlewares.py", "asyncio/locks.py")


def group_of(path: str) -> str:
    for name, needles in GROUPS:
        if any(n in path for n in needles):
            return name
    return "other"


def parse(path: Path) -> tuple[int, *tuple[Counter[str], ...]]:
    total = 0
    other: Counter[str] = Counter()
    caused: Counter[str] = Counter()
    groups: Counter[str] = Counter()
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or "_run_once" not in stack:
            continue
        frames = [m for f in stack.split(";") if (m := FRAME.match(f))]
        if not frames or any(m["func"] == "<module>" for m in frames[1:]):
            continue  # an import, not a call
        n = int(count)
        total += n
        leaf = frames[-1]
        group = group_of(leaf["file"])
        groups[group] += n
        if group == "other":
            other[f"{leaf['func']} ({leaf['file']})"] += n
        if any(x in leaf["file"] for x in CAUSED):
            caused[f"{leaf['func']} ({leaf['file'].rsplit('/', 2)[-2]})"] += n
        if "netrex_async/" in leaf["file"]:
            own[f"{leaf['func']} ({leaf['file'].split('netrex_async/')[-1]})"] += n
        seen = set()
        for m in frames:
            if "netrex_async/" in m["file"]:
                key = f"{m['func']} ({m['file'].split('netrex_async/')[-1]})"
                if key not in seen:
                    seen.add(key)
                    inclusive[key] += n
    return total, groups, own, inclusive, other, caused


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("profile", type=Path, help="py-spy output recorded with -f raw")
    p.add_argument("--us-per-call", type=float, default=0.0, help="CPU per call, us")
    p.add_argument("--top", type=int, default=12)
    args = p.parse_args()
    total, groups, own, inclusive, other, caused = parse(args.profile)
    if not total:
        raise SystemExit("no samples inside the event loop")

    def fmt(n: int) -> str:
        share = n / total * 100
        if args.us_per_call:
            return f"{share:5.1f}%  {share / 100 * args.us_per_call:6.1f} us/call"
        return f"{share:5.1f}%"

    print(f"{total} samples in the event loop\n\nself time by package")
    for name, n in groups.most_common():
        print(f"  {fmt(n)}  {name}")
    print("\nnetrex_async functions, self time")
    for name, n in own.most_common(args.top):
        print(f"  {fmt(n)}  {name}")
    print("\nother packages' frames run for netrex_async (middleware wrapper, FIFO queue)")
    for name, n in caused.most_common(args.top):
        print(f"  {fmt(n)}  {name}")
    print("\nother: top frames")
    for name, n in other.most_common(5):
        print(f"  {fmt(n)}  {name}")
    print("\nnetrex_async functions, inclusive time (what they call included)")
    for name, n in inclusive.most_common(args.top):
        print(f"  {fmt(n)}  {name}")


if __name__ == "__main__":
    main()
