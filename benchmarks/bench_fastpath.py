"""Fast path: what a call costs the library when the token is fresh, without the network.

1. ``await manager.token()`` on a fresh token (target: under 2 microseconds), beside
   ``await static.token()``, an ``await`` of a coroutine that just returns (the floor of
   any async API), and what the peers do per request to get their header (Authlib's
   ``ensure_active_token`` plus its auth flow's header, aiohttp-oauth2-client's
   ``prepare_headers``).
2. The middleware per request: ``await client.middleware(request, handler)`` on a real
   ``aiohttp.ClientRequest`` with a handler that answers at once, minus a direct
   ``await handler(request)``; beside a minimal hand-written bearer middleware, the
   aiohttp-oauth2-client middleware, and aiohttp's own cost of running any middleware
   at all (building the handler chain it makes per request).

Each figure is the median over repeats of a timed loop of ``--iterations`` awaits,
reported as microseconds per await, the loop included.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import _common as c
import aiohttp
from aiohttp.client_middlewares import build_client_middlewares
from yarl import URL

BASE = "http://127.0.0.1:9"
TOKEN = "bench-token"


async def per_await(fn: Callable[[], Awaitable[Any]], n: int, repeats: int) -> list[float]:
    """Microseconds per ``await fn()``, one figure per repeat."""
    out = []
    for _ in range(repeats):
        c.settle()
        t0 = time.perf_counter()
        for _ in range(n):
            await fn()
        out.append((time.perf_counter() - t0) / n * 1e6)
    return out


class _Answer:
    status = 200
    headers: ClassVar[dict[str, str]] = {"Content-Type": "text/plain"}  # not JSON: no body read


async def main() -> None:
    p = c.parser(__doc__)
    p.add_argument("--iterations", type=int, default=200_000, help="awaits per repeat")
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    if args.quick:
        args.iterations, args.repeats = 20_000, 3
    n, reps = args.iterations, args.repeats

    from netrex_async import (
        MemoryTokenStore,
        NetrexClient,
        OAuth2App,
        OAuth2Client,
        Provider,
        StaticToken,
        Token,
        TokenManager,
    )

    provider = Provider(BASE)
    app = OAuth2App(
        client_id="bench",
        client_secret="bench-secret",
        redirect_uri="http://127.0.0.1/callback",
        provider=provider,
    )
    now = time.time()
    token = Token(TOKEN, "bench-refresh", issued_at=now, expires_at=now + 3600)
    oauth = OAuth2Client(app)
    manager = TokenManager(oauth, MemoryTokenStore(token))
    static = StaticToken(TOKEN)
    rows: list[tuple[str, list[float]]] = []
    loop = asyncio.get_running_loop()

    async with manager:
        await manager.token()  # loads the store: the fast path from here on

        async def nothing() -> str:
            return TOKEN

        rows.append(("await a coroutine that returns (floor)", await per_await(nothing, n, reps)))
        rows.append(
            ("await manager.token() (fresh token)", await per_await(manager.token, n, reps))
        )
        rows.append(("await StaticToken.token()", await per_await(static.token, n, reps)))

        peers = await peer_token_paths(n, reps)
        rows.extend(peers)

        # -- middleware ---------------------------------------------------------------
        client = NetrexClient(manager, provider=provider)
        request = aiohttp.ClientRequest("POST", URL(BASE + "/api/graphql.php"), loop=loop)
        answer: Any = _Answer()

        async def handler(req: aiohttp.ClientRequest) -> Any:
            return answer

        async def direct() -> Any:
            return await handler(request)

        mw = client.middleware

        async def netrex_mw() -> Any:
            return await mw(request, handler)

        async def minimal(req: aiohttp.ClientRequest, h: Any) -> Any:
            req.headers["Authorization"] = "Bearer " + await manager.token()
            return await h(req)

        async def minimal_mw() -> Any:
            return await minimal(request, handler)

        async def aiohttp_chain() -> Any:
            # What aiohttp does per request when a session has one middleware.
            return await build_client_middlewares(handler, (minimal,))(request)

        base = await per_await(direct, n, reps)
        mw_rows = [
            ("direct await handler(request) (floor)", base),
            ("NetrexClient.middleware", await per_await(netrex_mw, n, reps)),
            ("minimal bearer middleware (hand-written)", await per_await(minimal_mw, n, reps)),
            ("aiohttp chain + minimal middleware", await per_await(aiohttp_chain, n, reps)),
        ]
        mw_rows.extend(await peer_middleware(request, handler, n, reps))
        await client.aclose()
    await oauth.aclose()

    floor = c.median(rows[0][1])
    mw_floor = c.median(base)
    token_us = c.median(rows[1][1])
    results = {
        "settings": {"iterations": n, "repeats": reps},
        "token_paths_us": {k: c.median(v) for k, v in rows},
        "middleware_us": {k: c.median(v) for k, v in mw_rows},
        "manager_token_us": token_us,
        "target_met": token_us < 2.0,
    }
    t1 = c.table(
        ["token path", "us/await", "min", "over floor"],
        [(k, c.median(v), min(v), c.median(v) - floor) for k, v in rows],
    )
    t2 = c.table(
        ["middleware per request", "us/request", "min", "over direct"],
        [(k, c.median(v), min(v), c.median(v) - mw_floor) for k, v in mw_rows],
    )
    verdict = "met" if token_us < 2.0 else "MISSED"
    c.report(
        "fast path",
        results,
        [t1, t2, f"await manager.token(): {token_us:.3f} us (target < 2 us: {verdict})"],
        args,
    )


async def peer_token_paths(n: int, reps: int) -> list[tuple[str, list[float]]]:
    rows: list[tuple[str, list[float]]] = []
    token = {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 3600}
    try:
        AsyncOAuth2Client = c.authlib_client()
    except ImportError:
        pass
    else:
        client = AsyncOAuth2Client(client_id="bench", token=dict(token))

        async def authlib_header() -> Any:
            # What AsyncOAuth2Client.request does before sending: check, then sign.
            await client.ensure_active_token(client.token)
            return client.token_auth.client.token["access_token"]

        rows.append(
            ("authlib ensure_active_token (peer)", await per_await(authlib_header, n, reps))
        )
        await client.aclose()
    try:
        from aiohttp_oauth2_client.grant.authorization_code import AuthorizationCodeGrant
    except ImportError:
        pass
    else:
        grant = AuthorizationCodeGrant(
            token_url=BASE + "/oauth2/token",
            authorization_url=BASE + "/oauth2/auth",
            client_id="bench",
            token=dict(token),
        )
        rows.append(
            (
                "aiohttp-oauth2 prepare_headers (peer)",
                await per_await(grant.prepare_headers, n, reps),
            )
        )
        await grant.close()
    return rows


async def peer_middleware(
    request: aiohttp.ClientRequest, handler: Any, n: int, reps: int
) -> list[tuple[str, list[float]]]:
    try:
        from aiohttp_oauth2_client.grant.authorization_code import AuthorizationCodeGrant
        from aiohttp_oauth2_client.middleware import OAuth2Middleware
    except ImportError:
        return []
    grant = AuthorizationCodeGrant(
        token_url=BASE + "/oauth2/token",
        authorization_url=BASE + "/oauth2/auth",
        client_id="bench",
        token={"access_token": TOKEN, "token_type": "Bearer", "expires_in": 3600},
    )
    mw = OAuth2Middleware(grant)

    async def peer() -> Any:
        return await mw(request, handler)

    out = [("aiohttp-oauth2 OAuth2Middleware (peer)", await per_await(peer, n, reps))]
    await grant.close()
    return out


if __name__ == "__main__":
    c.run(main)
