"""Refresh storm: many concurrent calls arriving at once on an expired token.

A fake provider (``_servers.py fake``: FakeNetrex, rotating refresh tokens with reuse
detection) runs in its own process. One NetrexClient with a TokenManager
(``background=False``, as for a process that was asleep while its token ran out; a
MemoryTokenStore holding a grant obtained over HTTP) is warmed up, then left idle until
its token has expired, at the client and at the provider. Then ``--calls`` calls start
at once (the storm). Right after, the same burst runs again on the now fresh token (the
baseline). Several rounds, each waiting for the token to expire again.

Reported per round and as medians: token requests during the storm (target exactly 1),
failed calls (target 0), calls the API refused (401: a call sent an expired token), how
many callers waited inside ``token()`` at all (timed by a thin TokenSource wrapper
around the manager), the refresh round trip (the TokenManager's own measure of its
refresh transaction: lock, load, token request, save), and latencies.

Latency. Every call of a burst first takes one step on the event loop (building its
request, or queueing for a connection slot): the "first pass", a couple of hundred
milliseconds for 10,000 calls, which varies from burst to burst on a busy machine. On
a fresh token the first requests are on the wire during that pass; in a storm nothing
can leave before the token, and the refresh task starts only after the pass (asyncio
runs tasks first in, first out). So the sharp measure of what a storm costs is how
long after the first pass the first answer arrives, storm minus baseline ("added").
Target: about one token round trip. End-to-end p50 and max (from the burst's start)
are given too, with their noise.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import _common as c

QUERY = "{cameraList{name}}"


class TimedSource:
    """A TokenSource that times how long each ``token()`` call waited for its token."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.waits: list[float] = []

    async def token(self) -> str:
        t = time.perf_counter()
        token: str = await self.inner.token()
        self.waits.append(time.perf_counter() - t)
        return token

    async def invalidate(self, access_token: str) -> None:
        await self.inner.invalidate(access_token)


#: A token() call slower than this waited for a refresh (the fast path takes ~1 us).
WAITED = 0.0005


async def burst(client: Any, calls: int, source: TimedSource) -> dict[str, Any]:
    """``calls`` concurrent calls; per-call latency from the burst's start."""
    source.waits.clear()
    latencies: list[float] = []
    errors: dict[str, int] = {}
    t0 = time.perf_counter()

    async def one() -> None:
        try:
            await client.graphql(QUERY)
        except Exception as e:
            name = type(e).__name__
            errors[name] = errors.get(name, 0) + 1
        else:
            latencies.append(time.perf_counter() - t0)

    everything = asyncio.gather(*(one() for _ in range(calls)))
    # Runs once every call has taken its first step (the loop's queue is first in, first
    # out): from here on the loop waits for the network, or, in a storm, for the token.
    marks: list[float] = []
    asyncio.get_running_loop().call_soon(lambda: marks.append(time.perf_counter()))
    await everything
    waited = [w for w in source.waits if w > WAITED]
    first_pass = marks[0] - t0
    return {
        "wall": time.perf_counter() - t0,
        "first_pass_ms": first_pass * 1000,
        "first_answer_ms": (min(latencies, default=float("nan")) - first_pass) * 1000,
        "waited": len(waited),
        "wait_max_ms": max(source.waits, default=float("nan")) * 1000,
        "ok": len(latencies),
        "failures": sum(errors.values()),
        "errors": errors,
        "p50": c.percentile(latencies, 50),
        "p99": c.percentile(latencies, 99),
        "max": max(latencies, default=float("nan")),
    }


async def main() -> None:
    p = c.parser(__doc__)
    p.add_argument("--calls", type=int, default=10_000, help="calls in each storm")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument(
        "--lifetime",
        type=float,
        default=12.0,
        help="token lifetime at the provider, seconds (long enough for a fresh burst)",
    )
    args = p.parse_args()
    if args.quick:
        args.calls, args.rounds, args.lifetime = 1000, 1, 3.0

    from netrex_async import MemoryTokenStore, NetrexClient, OAuth2Client, TokenManager
    from netrex_async._events import TokenRefreshed

    refreshes: list[TokenRefreshed] = []

    def hook(event: Any) -> None:
        if isinstance(event, TokenRefreshed):
            refreshes.append(event)

    rounds = []
    async with c.ServerProcess("fake", "--expires-in", str(args.lifetime)) as server:
        info = server.info
        app = c.oauth_app(info)
        grant = await c.obtain_grant(info)
        async with (
            OAuth2Client(app) as oauth,
            TokenManager(oauth, MemoryTokenStore(grant), background=False, hooks=[hook]) as tm,
        ):
            source = TimedSource(tm)
            client = NetrexClient(source, provider=app.provider)
            await burst(client, 200, source)  # load the token, open the connections
            for _ in range(args.rounds):
                token = tm.current
                assert token is not None
                assert token.expires_at is not None
                # Past expiry at both ends (the provider counts from before our receipt).
                await asyncio.sleep(max(0.0, token.expires_at - time.time() + 0.1))
                before = await server.command("reset")
                del before
                n_refresh = len(refreshes)
                c.settle()
                storm = await burst(client, args.calls, source)
                counters = await server.command("counters")
                new = refreshes[n_refresh:]
                c.settle()
                base = await burst(client, args.calls, source)
                storm.update(
                    token_requests=counters["refreshes"] + counters["code_exchanges"],
                    unauthorized=counters["unauthorized"],
                    refresh_ms=new[0].duration * 1000 if new else float("nan"),
                )
                rounds.append({"storm": storm, "baseline": base})
            stats = tm.stats
            await client.aclose()

    def added(key: str) -> list[float]:
        return [(r["storm"][key] - r["baseline"][key]) * 1000 for r in rounds]

    first_added = [r["storm"]["first_answer_ms"] - r["baseline"]["first_answer_ms"] for r in rounds]

    summary = {
        "token_requests_per_storm": [r["storm"]["token_requests"] for r in rounds],
        "failures": sum(r["storm"]["failures"] + r["baseline"]["failures"] for r in rounds),
        "unauthorized": sum(r["storm"]["unauthorized"] for r in rounds),
        "storm_p50_ms": c.median([r["storm"]["p50"] * 1000 for r in rounds]),
        "storm_p99_ms": c.median([r["storm"]["p99"] * 1000 for r in rounds]),
        "storm_max_ms": c.median([r["storm"]["max"] * 1000 for r in rounds]),
        "baseline_p50_ms": c.median([r["baseline"]["p50"] * 1000 for r in rounds]),
        "baseline_p99_ms": c.median([r["baseline"]["p99"] * 1000 for r in rounds]),
        "baseline_max_ms": c.median([r["baseline"]["max"] * 1000 for r in rounds]),
        "first_answer_added_ms": c.median(first_added),
        "added_p50_ms": c.median(added("p50")),
        "added_p99_ms": c.median(added("p99")),
        "added_max_ms": c.median(added("max")),
        "refresh_round_trip_ms": c.median([r["storm"]["refresh_ms"] for r in rounds]),
        "callers_waited": [r["storm"]["waited"] for r in rounds],
        "token_wait_max_ms": c.median([r["storm"]["wait_max_ms"] for r in rounds]),
        "baseline_callers_waited": [r["baseline"]["waited"] for r in rounds],
        "manager_refreshes": stats.refreshes,
        "manager_invalidations": stats.invalidations,
    }
    summary["first_answer_added_in_round_trips"] = (
        summary["first_answer_added_ms"] / summary["refresh_round_trip_ms"]
    )
    rows = [
        (
            i + 1,
            r["storm"]["token_requests"],
            r["storm"]["failures"],
            r["storm"]["unauthorized"],
            r["storm"]["waited"],
            r["storm"]["refresh_ms"],
            r["storm"]["first_pass_ms"],
            r["storm"]["first_answer_ms"],
            r["baseline"]["first_answer_ms"],
            first_added[i],
            r["storm"]["p50"] * 1000,
            r["baseline"]["p50"] * 1000,
            r["storm"]["max"] * 1000,
            r["baseline"]["max"] * 1000,
        )
        for i, r in enumerate(rounds)
    ]
    headers = [
        "round",
        "token reqs",
        "failures",
        "401s",
        "waited",
        "refresh ms",
        "1st pass ms",
        "1st answer ms",
        "base",
        "added ms",
        "p50 ms",
        "base",
        "max ms",
        "base",
    ]
    s = summary
    verdict = (
        f"{args.calls} calls per storm: token requests {s['token_requests_per_storm']} "
        f"(target 1 each), failures {s['failures']} (target 0), 401s {s['unauthorized']}; "
        f"callers that waited for the token {s['callers_waited']}.\n"
        f"The storm delayed the first answers by {s['first_answer_added_ms']:.1f} ms "
        f"(median; a refresh round trip took {s['refresh_round_trip_ms']:.1f} ms, so "
        f"{s['first_answer_added_in_round_trips']:.1f} token round trips, the rest being "
        f"the first API round trip, which a fresh token overlaps with the first pass).\n"
        f"End to end, storm minus baseline: p50 {s['added_p50_ms']:+.0f} ms, p99 "
        f"{s['added_p99_ms']:+.0f} ms, max {s['added_max_ms']:+.0f} ms (bursts of this size "
        f"vary by a few hundred ms from one to the next on a busy machine)."
    )
    c.report(
        "refresh storm",
        {
            "settings": {"calls": args.calls, "rounds": args.rounds, "lifetime": args.lifetime},
            "summary": summary,
            "rounds": rounds,
        },
        [c.table(headers, rows), verdict],
        args,
    )


if __name__ == "__main__":
    c.run(main)
