"""collect() throughput and memory: a long backlog of camera events, paged through.

A standalone FakeNetrex (``python -m netrex_async.testing``) in its own process holds a
backlog of ``--events`` events; this process follows it with ``NetrexClient.collect()``
and a ``MemoryCheckpoint``, ``--page-size`` events a page, committing each batch, until
it has every event. Reported: events per second, pages per second, and this process's
resident memory before, at a tenth of the backlog and at the end (it must not grow with
the backlog: one page is held at a time). Each event is checked to come once, in order.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import _common as c

from netrex_async import MemoryCheckpoint, NetrexClient, Provider

QUERY = """
query($after: ID, $limit: Int) {
  events(afterId: $after, limit: $limit) { id cameraId type time }
}
"""


async def start_fake(events: int) -> tuple[asyncio.subprocess.Process, dict[str, Any]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "netrex_async.testing",
        "--json",
        "--no-cache",
        "--events",
        str(events),
        "--expires-in",
        "3600",
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    return proc, json.loads(line)


async def run(args: Any) -> None:
    total = args.events + 4  # the fake's four sample events come first
    proc, info = await start_fake(args.events)
    try:
        grant = await c.obtain_grant(info)

        async with NetrexClient(grant.access_token, provider=Provider(info["base_url"])) as client:
            rss_start = c.rss_mib()
            rss_tenth = float("nan")
            seen = 0
            pages = 0
            t0 = time.perf_counter()
            async with client.collect(
                QUERY,
                items="events",
                cursor="after",
                key="id",
                checkpoint=MemoryCheckpoint(),
                every=1.0,
                page_size=args.page_size,
                page_size_variable="limit",
            ) as batches:
                async for batch in batches:
                    pages += 1
                    first = int(batch[0]["id"])
                    assert first == seen + 1, f"expected event {seen + 1}, got {first}"
                    seen += len(batch)
                    if rss_tenth != rss_tenth and seen >= total // 10:
                        rss_tenth = c.rss_mib()
                    if seen >= total:
                        break
            elapsed = time.perf_counter() - t0
            rss_end = c.rss_mib()
    finally:
        proc.terminate()
        await proc.wait()
    results = {
        "events": seen,
        "page_size": args.page_size,
        "seconds": elapsed,
        "events_per_second": seen / elapsed,
        "pages_per_second": pages / elapsed,
        "rss_mib_start": rss_start,
        "rss_mib_tenth": rss_tenth,
        "rss_mib_end": rss_end,
    }
    tables = [
        c.table(
            ["events", "page", "seconds", "events/s", "pages/s", "RSS MiB: start", "1/10", "end"],
            [
                [
                    seen,
                    args.page_size,
                    elapsed,
                    seen / elapsed,
                    pages / elapsed,
                    rss_start,
                    rss_tenth,
                    rss_end,
                ]
            ],
        )
    ]
    c.report("collect() through a backlog", results, tables, args)


def main() -> None:
    p = c.parser(__doc__)
    p.add_argument("--events", type=int, default=200_000, help="events in the backlog")
    p.add_argument("--page-size", type=int, default=500, help="events a page")
    args = p.parse_args()
    if args.quick:
        args.events, args.page_size = 2_000, 200
    c.quiet_logs()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
