"""A token call ends within its retry deadline, whatever a hostile token endpoint does.

Real sockets on 127.0.0.1 (so the real wall clock, not looptime): a server that drips
one byte at a time, one that hangs after sending its headers, and one that never answers.
Each scenario is scaled down (deadlines of about a second) and chosen so that the old
loop, whose ``max_time`` was only checked between attempts, took at least twice as long.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from netrex_async import NetrexError, Provider, Token, TransportError
from netrex_async._oauth import OAuth2Client
from netrex_async._oauth_protocol import OAuth2App
from netrex_async._retry import RetryPolicy, set_testing

CLIENT_ID = "client-id-bounds-42"
CLIENT_SECRET = "cs-B0unds+/=&x y-9d8c7b6a"
OLD = Token(
    "at-B0unds-Acc3ss-0b1c2d3e4f", "rt-B0unds-R3fresh-5a6b7c8d9e", issued_at=1.0, scopes=("read",)
)
#: What the bound may be overrun by on a loaded machine (the code's own slack is larger).
SLACK = 0.5

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Hostile:
    """A token endpoint on loopback running ``handler``; counts the requests it got."""

    def __init__(self) -> None:
        self.requests = 0
        self.release = asyncio.Event()  # set at teardown: every hung handler returns
        self._servers: list[TestServer] = []

    async def serve(self, handler: Handler) -> OAuth2App:
        async def counted(request: web.Request) -> web.StreamResponse:
            self.requests += 1
            await request.read()
            return await handler(request)

        app = web.Application()
        app.router.add_post("/oauth2/token", counted)
        server = TestServer(app, host="127.0.0.1", port=0)
        await server.start_server()
        self._servers.append(server)
        return OAuth2App(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            redirect_uri="http://127.0.0.1:8765/callback",
            provider=Provider(str(server.make_url("/"))),
        )

    def drip(self, byte: bytes, every: float) -> Handler:
        """A handler that sends headers promising a long body, then one byte per ``every``."""

        async def drip(request: web.Request) -> web.StreamResponse:
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            resp.content_length = 10_000
            await resp.prepare(request)
            while not self.release.is_set():
                await resp.write(byte)
                await asyncio.sleep(every)
            return resp

        return drip

    async def never_answer(self, request: web.Request) -> web.StreamResponse:
        """A handler that reads the request and says nothing until teardown."""
        await self.release.wait()
        return web.Response(status=503)

    async def close(self) -> None:
        self.release.set()
        for server in self._servers:
            await server.close()


@pytest_asyncio.fixture(name="hostile")
async def _hostile() -> AsyncIterator[Hostile]:
    hostile = Hostile()
    try:
        yield hostile
    finally:
        await hostile.close()


async def _refresh_timed(
    app: OAuth2App, policy: RetryPolicy, timeout: aiohttp.ClientTimeout
) -> tuple[float, BaseException]:
    async with OAuth2Client(app, retry=policy, timeout=timeout) as client:
        start = time.monotonic()
        try:
            await client.refresh(OLD)
        except Exception as e:
            return time.monotonic() - start, e
    raise AssertionError("the hostile endpoint answered a token")


def _assert_clean(exc: BaseException, secret_registry: object) -> None:
    assert isinstance(exc, TransportError), repr(exc)
    assert isinstance(exc, NetrexError)
    assert exc.__cause__ is None
    secret_registry.add(CLIENT_SECRET, OLD, label="bounds test")  # type: ignore[attr-defined]
    secret_registry.check(exc)  # type: ignore[attr-defined]


async def test_a_slow_drip_is_cut_at_the_deadline(
    hostile: Hostile, secret_registry: object
) -> None:
    # One byte per 0.2 s never trips sock_read; only the total would, after 5 s. The old
    # loop let the first attempt run its full 5 s against a max_time of 1.5.
    app = await hostile.serve(hostile.drip(b" ", every=0.2))
    policy = RetryPolicy(attempts=4, max_time=1.5, initial=0)
    timeout = aiohttp.ClientTimeout(total=5, connect=2, sock_read=2)
    elapsed, exc = await _refresh_timed(app, policy, timeout)
    assert policy.max_time - 0.1 <= elapsed <= policy.max_time + SLACK
    _assert_clean(exc, secret_registry)


async def test_a_slow_drip_with_backoff_off_is_cut_at_the_deadline(
    hostile: Hostile, secret_registry: object
) -> None:
    # Issue #12: "a slow-drip token endpoint took 41.5 s with back-off switched off".
    # Scaled down: each attempt dies at its 1.5 s total; the old loop started a second
    # attempt at 1.5 s (< max_time 1.6) and ended at 3 s.
    app = await hostile.serve(hostile.drip(b"{", every=0.1))
    policy = RetryPolicy(attempts=4, max_time=1.6)
    timeout = aiohttp.ClientTimeout(total=1.5, connect=1, sock_read=1)
    old = set_testing(True)
    try:
        elapsed, exc = await _refresh_timed(app, policy, timeout)
    finally:
        set_testing(old)
    assert elapsed <= policy.max_time + SLACK
    assert hostile.requests == 2  # a second attempt, cut at the deadline
    _assert_clean(exc, secret_registry)


async def test_a_hang_after_the_headers_is_cut_at_the_deadline(
    hostile: Hostile, secret_registry: object
) -> None:
    # Headers, then silence: sock_read would end it after 5 s; the deadline is 1.5 s.
    async def hang_after_headers(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.content_length = 100
        await resp.prepare(request)
        await resp.write(b"{")
        await hostile.release.wait()
        return resp

    app = await hostile.serve(hang_after_headers)
    policy = RetryPolicy(attempts=4, max_time=1.5)
    timeout = aiohttp.ClientTimeout(total=10, connect=2, sock_read=5)
    elapsed, exc = await _refresh_timed(app, policy, timeout)
    assert policy.max_time - 0.1 <= elapsed <= policy.max_time + SLACK
    assert hostile.requests == 1
    assert "gave up after 1.5 s" in str(exc) or "Timeout" in str(exc)
    _assert_clean(exc, secret_registry)


async def test_a_hang_before_the_headers_is_cut_at_the_deadline(
    hostile: Hostile, secret_registry: object
) -> None:
    app = await hostile.serve(hostile.never_answer)
    policy = RetryPolicy(attempts=4, max_time=1.5)
    timeout = aiohttp.ClientTimeout(total=10, connect=2, sock_read=5)
    elapsed, exc = await _refresh_timed(app, policy, timeout)
    assert policy.max_time - 0.1 <= elapsed <= policy.max_time + SLACK
    _assert_clean(exc, secret_registry)


@pytest.mark.parametrize("total", [None, 30.0])
async def test_worst_case_bounds_a_refresh(
    hostile: Hostile, secret_registry: object, total: float | None
) -> None:
    # With no aiohttp total at all, or a long one, the deadline alone ends the call.
    app = await hostile.serve(hostile.never_answer)
    policy = RetryPolicy(max_time=1.0)
    async with OAuth2Client(
        app, retry=policy, timeout=aiohttp.ClientTimeout(total=total)
    ) as client:
        assert client.worst_case >= policy.max_time
        start = time.monotonic()
        with pytest.raises(TransportError) as info:
            await client.refresh(OLD)
        elapsed = time.monotonic() - start
    assert elapsed <= client.worst_case
    assert elapsed <= policy.max_time + SLACK
    _assert_clean(info.value, secret_registry)
