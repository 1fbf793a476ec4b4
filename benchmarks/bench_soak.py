"""Soak: hundreds of thousands of calls over hundreds of short token lifetimes.

A fake provider (FakeNetrex, rotating refresh tokens with reuse detection) runs in its
own process with a short token lifetime (``--lifetime``, 0.2 s by default), so the
TokenManager's background task refreshes about every tenth of a second. ``--concurrency``
tasks call the API back to back until both ``--calls`` calls are made and
``--lifetimes`` lifetimes have passed (or ``--max-seconds`` runs out, which is then
reported as a miss).

Reported: calls, failures (target 0), calls the API refused (401), token requests,
lifetimes elapsed, and this process's RSS (``VmRSS``) after a warm-up and at the end
(both after a garbage collection): growth target under 10 MB. RSS is sampled every few
seconds so a steady climb shows in ``--json``.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import _common as c

QUERY = "{cameraList{name}}"


async def main() -> None:
    p = c.parser(__doc__)
    p.add_argument("--calls", type=int, default=200_000, help="calls to make at least")
    p.add_argument("--lifetimes", type=int, default=500, help="lifetimes to run at least")
    p.add_argument("--lifetime", type=float, default=0.2, help="token lifetime, seconds")
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--warmup", type=int, default=10_000, help="calls before the first RSS")
    p.add_argument("--max-seconds", type=float, default=170.0, help="stop here regardless")
    p.add_argument("--store", choices=("memory", "file"), default="memory")
    args = p.parse_args()
    if args.quick:
        args.calls, args.lifetimes, args.warmup = 5_000, 20, 1_000

    import tempfile

    from netrex_async import (
        FileTokenStore,
        MemoryTokenStore,
        NetrexClient,
        OAuth2Client,
        TokenManager,
    )

    server_args = ["fake", "--expires-in", str(args.lifetime)]
    errors: Counter[str] = Counter()
    first_error = ""
    ok = 0
    samples: list[tuple[float, float, int]] = []
    with tempfile.TemporaryDirectory(prefix="netrex-soak-") as tmp:
        async with c.ServerProcess(*server_args) as server:
            app = c.oauth_app(server.info)
            grant = await c.obtain_grant(server.info)
            store: Any
            if args.store == "file":
                store = FileTokenStore(f"{tmp}/token.json")
                async with store.lock():
                    await store.save(grant)
            else:
                store = MemoryTokenStore(grant)
            async with (
                OAuth2Client(app) as oauth,
                TokenManager(oauth, store) as tm,
                NetrexClient(tm, provider=app.provider) as client,
            ):
                stop = False
                warm = asyncio.Event()

                async def worker() -> None:
                    nonlocal ok, first_error
                    while not stop:
                        try:
                            await client.graphql(QUERY)
                            ok += 1
                        except Exception as e:
                            errors[type(e).__name__] += 1
                            if not first_error:
                                first_error = f"{type(e).__name__}: {str(e)[:200]}"
                        if ok >= args.warmup:
                            warm.set()

                tasks = [asyncio.create_task(worker()) for _ in range(args.concurrency)]
                await asyncio.wait_for(warm.wait(), args.max_seconds)
                c.settle()
                rss_start = c.rss_mib()
                await server.command("reset")
                calls0 = ok + sum(errors.values())
                t0 = time.monotonic()
                next_sample = t0
                while True:
                    now = time.monotonic()
                    done = ok + sum(errors.values()) - calls0
                    if now >= next_sample:
                        samples.append((now - t0, c.rss_mib(), done))
                        next_sample += 5.0
                    lifetimes = (now - t0) / args.lifetime
                    if done >= args.calls and lifetimes >= args.lifetimes:
                        break
                    if now - t0 >= args.max_seconds:
                        break
                    await asyncio.sleep(0.05)
                stop = True
                await asyncio.gather(*tasks)
                elapsed = time.monotonic() - t0
                calls = ok + sum(errors.values()) - calls0
                counters = await server.command("counters")
                stats = tm.stats
            c.settle()
            rss_end = c.rss_mib()

    lifetimes_elapsed = elapsed / args.lifetime
    growth = rss_end - rss_start
    summary = {
        "calls": calls,
        "calls_per_s": calls / elapsed,
        "elapsed_s": elapsed,
        "lifetimes": lifetimes_elapsed,
        "failures": sum(errors.values()),
        "errors": dict(errors),
        "first_error": first_error,
        "unauthorized": counters["unauthorized"],
        "token_requests": counters["refreshes"],
        "reuse_detected": counters["reuse_detected"],
        "manager_refreshes": stats.refreshes,
        "manager_failures": stats.failures,
        "rss_start_mib": rss_start,
        "rss_end_mib": rss_end,
        "rss_max_mib": max([s[1] for s in samples] + [rss_end]),
        "rss_growth_mib": growth,
        "targets_reached": calls >= args.calls and lifetimes_elapsed >= args.lifetimes,
    }
    s = summary
    rows = [
        (
            s["calls"],
            s["calls_per_s"],
            s["lifetimes"],
            s["token_requests"],
            s["failures"],
            s["unauthorized"],
            s["rss_start_mib"],
            s["rss_end_mib"],
            s["rss_max_mib"],
            s["rss_growth_mib"],
        )
    ]
    headers = [
        "calls",
        "calls/s",
        "lifetimes",
        "token reqs",
        "failures",
        "401s",
        "RSS start MiB",
        "end",
        "max",
        "growth MiB",
    ]
    verdict = (
        f"failures {s['failures']} (target 0), RSS growth {growth:+.2f} MiB (target < 10)"
        + ("" if s["targets_reached"] else " -- stopped by --max-seconds before the sizes")
        + (f"; first error: {first_error}" if first_error else "")
    )
    c.report(
        "soak",
        {
            "settings": {
                k: getattr(args, k)
                for k in ("calls", "lifetimes", "lifetime", "concurrency", "store")
            },
            "summary": summary,
            "rss_samples": [{"t": t, "rss_mib": r, "calls": n} for t, r, n in samples],
        },
        [c.table(headers, rows), verdict],
        args,
    )


if __name__ == "__main__":
    c.run(main)
