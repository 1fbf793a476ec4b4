"""Proactive refresh: call latency in time windows with a background refresh vs without.

A fake provider (FakeNetrex, rotating refresh tokens) runs in its own process with short
token lifetimes, so the TokenManager's background task refreshes every
``lifetime - margin`` (margin: half the lifetime by default). An open-loop load (calls
started at a fixed rate whatever the answers do, so a stall cannot hide itself) runs
for ``--duration`` seconds. The timeline is cut into windows of ``--window`` seconds; a
window "contains a refresh" when it overlaps a refresh transaction (from the manager's
TokenRefreshed events: when it ended and how long it took). Each call belongs to the
window it started in.

Reported: p50/p99/max latency of calls in windows with a refresh and in windows without
(target: no visible difference), failures (target 0), token requests, and the reason of
every refresh (all should be ``proactive``: no caller found its token stale or expired).
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import Counter
from typing import Any

import _common as c

QUERY = "{cameraList{name}}"


async def open_loop(client: Any, rate: float, duration: float) -> tuple[list[Any], Counter[str]]:
    """Start calls at ``rate`` per second for ``duration`` seconds; (start, latency) each."""
    calls: list[tuple[float, float]] = []
    errors: Counter[str] = Counter()
    tasks: set[asyncio.Task[None]] = set()

    async def one() -> None:
        t = time.perf_counter()
        try:
            await client.graphql(QUERY)
        except Exception as e:
            errors[type(e).__name__] += 1
        else:
            calls.append((t, time.perf_counter() - t))

    interval = 1 / rate
    start = time.perf_counter()
    end = start + duration
    due = start
    while (now := time.perf_counter()) < end:
        while due <= now:
            task = asyncio.get_running_loop().create_task(one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            due += interval
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
    if tasks:
        await asyncio.wait(tasks)
    return calls, errors


def split(
    calls: list[tuple[float, float]], refreshes: list[tuple[float, float]], window: float
) -> tuple[list[float], list[float], int, int]:
    """Latencies of calls in windows overlapping a refresh, and of the others."""
    if not calls:
        return [], [], 0, 0
    t0 = min(t for t, _ in calls)
    hot: set[int] = set()
    for begin, end in refreshes:
        hot.update(range(int((begin - t0) // window), int((end - t0) // window) + 1))
    with_r: list[float] = []
    without: list[float] = []
    windows: set[int] = set()
    for t, lat in calls:
        w = int((t - t0) // window)
        windows.add(w)
        (with_r if w in hot else without).append(lat)
    n_hot = len(hot & windows)
    return with_r, without, n_hot, len(windows) - n_hot


def near(calls: list[tuple[float, float]], refreshes: list[tuple[float, float]]) -> list[float]:
    """Latencies of calls in flight while a refresh transaction ran (the strictest view)."""
    starts = [t for t, _ in calls]
    out: list[float] = []
    for begin, end in refreshes:
        lo = bisect.bisect_left(starts, begin - 0.5)
        for t, lat in calls[lo:]:
            if t > end:
                break
            if t + lat >= begin:
                out.append(lat)
    return out


async def main() -> None:
    p = c.parser(__doc__)
    p.add_argument("--lifetime", type=float, default=2.0, help="token lifetime, seconds")
    p.add_argument("--rate", type=float, default=400.0, help="calls started per second")
    p.add_argument("--duration", type=float, default=40.0, help="seconds of load")
    p.add_argument("--window", type=float, default=0.1, help="window length, seconds")
    args = p.parse_args()
    if args.quick:
        args.duration, args.rate = 4.0, 200.0

    from netrex_async import MemoryTokenStore, NetrexClient, OAuth2Client, TokenManager
    from netrex_async._events import TokenRefreshed

    refreshes: list[tuple[float, float]] = []
    reasons: Counter[str] = Counter()

    def hook(event: Any) -> None:
        if isinstance(event, TokenRefreshed):
            now = time.perf_counter()
            refreshes.append((now - event.duration, now))
            reasons[event.reason] += 1

    async with c.ServerProcess("fake", "--expires-in", str(args.lifetime)) as server:
        app = c.oauth_app(server.info)
        grant = await c.obtain_grant(server.info)
        async with (
            OAuth2Client(app) as oauth,
            TokenManager(oauth, MemoryTokenStore(grant), hooks=[hook]) as tm,
            NetrexClient(tm, provider=app.provider) as client,
        ):
            for _ in range(20):  # load the token, open connections
                await client.graphql(QUERY)
            await server.command("reset")
            refreshes.clear()
            reasons.clear()
            calls, errors = await open_loop(client, args.rate, args.duration)
            counters = await server.command("counters")

    calls.sort()
    with_r, without, n_hot, n_cold = split(calls, refreshes, args.window)
    inflight = near(calls, refreshes)
    durations = [(e - b) * 1000 for b, e in refreshes]

    def stats(xs: list[float]) -> dict[str, float]:
        return {
            "calls": len(xs),
            "p50_ms": c.percentile(xs, 50) * 1000,
            "p99_ms": c.percentile(xs, 99) * 1000,
            "max_ms": max(xs, default=float("nan")) * 1000,
        }

    summary = {
        "with_refresh": {**stats(with_r), "windows": n_hot},
        "without_refresh": {**stats(without), "windows": n_cold},
        "in_flight_during_refresh": stats(inflight),
        "refreshes": len(refreshes),
        "refresh_reasons": dict(reasons),
        "refresh_ms_p50": c.percentile(durations, 50),
        "refresh_ms_max": max(durations, default=float("nan")),
        "token_requests": counters["refreshes"],
        "unauthorized": counters["unauthorized"],
        "failures": sum(errors.values()),
        "errors": dict(errors),
        "calls": len(calls) + sum(errors.values()),
    }
    s = summary
    rows = [
        ("windows with a refresh", s["with_refresh"]["windows"], *stats(with_r).values()),
        ("windows without", s["without_refresh"]["windows"], *stats(without).values()),
        ("calls in flight during a refresh", "-", *stats(inflight).values()),
    ]
    headers = ["calls started in", "windows", "calls", "p50 ms", "p99 ms", "max ms"]
    verdict = (
        f"{s['calls']} calls at {args.rate:.0f}/s over {args.duration:.0f} s, token lifetime "
        f"{args.lifetime} s: {s['refreshes']} refreshes ({dict(reasons)}), each "
        f"{s['refresh_ms_p50']:.1f} ms (p50), token requests {s['token_requests']}, "
        f"failures {s['failures']}, 401s {s['unauthorized']}"
    )
    c.report(
        "proactive refresh",
        {
            "settings": {k: v for k, v in vars(args).items() if k not in ("json", "quick")},
            "summary": summary,
        },
        [c.table(headers, rows), verdict],
        args,
    )


if __name__ == "__main__":
    c.run(main)
