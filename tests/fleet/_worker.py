"""One process of a fleet sharing a grant: many tasks calling the API until a deadline.

Run as a script by tests/fleet/test_fleet.py: reads the client secret on stdin, says
"ready" when set up, reads the epoch second to stop at, then calls until then and prints
one JSON line of results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time

from netrex_async import (
    FileTokenStore,
    NetrexClient,
    OAuth2App,
    OAuth2Client,
    Provider,
    TokenEvent,
    TokenManager,
    TokenRefreshed,
    TokenStore,
)


def make_store(kind: str, where: str) -> TokenStore:
    if kind == "file":
        return FileTokenStore(where)
    from netrex_async.stores.redis import RedisTokenStore

    url, key = where.rsplit("#", 1)
    return RedisTokenStore(url, key=key)


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--base-url", required=True)
    p.add_argument("--client-id", required=True)
    p.add_argument("--redirect-uri", required=True)
    p.add_argument("--store", required=True)
    p.add_argument("--where", required=True)
    p.add_argument("--tasks", type=int, default=200)
    p.add_argument("--pause", type=float, default=0.05)
    args = p.parse_args()
    # The client secret comes on stdin, never on the command line; then, once every
    # process of the fleet said "ready", the time to stop calling (epoch seconds).
    secret = input()
    app = OAuth2App(
        client_id=args.client_id,
        client_secret=secret,
        redirect_uri=args.redirect_uri,
        provider=Provider(args.base_url),
    )
    calls = failures = 0
    errors: list[str] = []
    latencies: list[float] = []
    refreshed: list[dict[str, float | str | None]] = []

    def on_event(event: TokenEvent) -> None:
        if isinstance(event, TokenRefreshed):
            refreshed.append(
                {"at": time.time(), "expires_at": event.expires_at, "reason": event.reason}
            )

    async with (
        make_store(args.store, args.where) as store,
        OAuth2Client(app) as oauth,
        TokenManager(oauth, store, hooks=[on_event]) as manager,
        NetrexClient(manager, provider=app.provider) as client,
    ):
        print("ready", flush=True)
        until = float(input())

        async def worker() -> None:
            nonlocal calls, failures
            # Spread the tasks over the pause, so that one fake server keeps up.
            await asyncio.sleep(random.uniform(0, args.pause))
            while time.time() < until:
                started = time.monotonic()
                try:
                    await client.graphql("{cameraList{name}}")
                    calls += 1
                    latencies.append(time.monotonic() - started)
                except Exception as e:
                    failures += 1
                    if len(errors) < 5:
                        errors.append(f"{type(e).__name__}: {e}")
                await asyncio.sleep(args.pause)

        await asyncio.gather(*(worker() for _ in range(args.tasks)))
    # Read after aclose(): a background refresh in flight at the deadline is finished
    # (and counted) by then.
    stats = manager.stats
    latencies.sort()
    print(
        json.dumps(
            {
                "calls": calls,
                "failures": failures,
                "errors": errors,
                "refreshes": stats.refreshes,
                "adoptions": stats.adoptions,
                "refresh_failures": stats.failures,
                # Each refresh this process made: when its hook ran (epoch seconds, just
                # after the save), the new token's expiry, and why it was made.
                "refreshed": refreshed,
                # Seconds per successful call: the load the fake was under.
                "latency_p99": latencies[int(len(latencies) * 0.99)] if latencies else None,
                "latency_max": latencies[-1] if latencies else None,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
