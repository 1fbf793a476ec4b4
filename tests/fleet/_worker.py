"""One process of a fleet sharing a grant: many tasks calling the API until a deadline.

Run as a script by tests/fleet/test_fleet.py; prints one JSON line of results.
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
    TokenManager,
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
    p.add_argument("--until", type=float, required=True, help="epoch seconds")
    p.add_argument("--pause", type=float, default=0.05)
    args = p.parse_args()
    secret = input()  # the client secret comes on stdin, never on the command line
    app = OAuth2App(
        client_id=args.client_id,
        client_secret=secret,
        redirect_uri=args.redirect_uri,
        provider=Provider(args.base_url),
    )
    calls = failures = 0
    errors: list[str] = []
    async with (
        make_store(args.store, args.where) as store,
        OAuth2Client(app) as oauth,
        TokenManager(oauth, store) as manager,
        NetrexClient(manager, provider=app.provider) as client,
    ):

        async def worker() -> None:
            nonlocal calls, failures
            # Spread the tasks over the pause, so that one fake server keeps up.
            await asyncio.sleep(random.uniform(0, args.pause))
            while time.time() < args.until:
                try:
                    await client.graphql("{cameraList{name}}")
                    calls += 1
                except Exception as e:
                    failures += 1
                    if len(errors) < 5:
                        errors.append(f"{type(e).__name__}: {e}")
                await asyncio.sleep(args.pause)

        await asyncio.gather(*(worker() for _ in range(args.tasks)))
    # Read after aclose(): a background refresh in flight at the deadline is finished
    # (and counted) by then.
    stats = manager.stats
    print(
        json.dumps(
            {
                "calls": calls,
                "failures": failures,
                "errors": errors,
                "refreshes": stats.refreshes,
                "adoptions": stats.adoptions,
                "refresh_failures": stats.failures,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
