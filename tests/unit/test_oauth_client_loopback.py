"""OAuth2Client against a real aiohttp server on loopback: what aioresponses cannot fake."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from netrex_async import Provider, Token, TokenEndpointError
from netrex_async._oauth import MAX_BODY, OAuth2Client
from netrex_async._oauth_protocol import OAuth2App

from .conftest import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, REFRESH_TOKEN

pytestmark = pytest.mark.asyncio

OLD = Token("at-old-0123456789", REFRESH_TOKEN, issued_at=1.0)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest_asyncio.fixture(name="serve")
async def _serve() -> AsyncIterator[Callable[[Handler], Awaitable[OAuth2App]]]:
    servers: list[TestServer] = []

    async def serve(handler: Handler) -> OAuth2App:
        app = web.Application()
        app.router.add_post("/oauth2/token", handler)
        server = TestServer(app, host="127.0.0.1", port=0)
        await server.start_server()
        servers.append(server)
        return OAuth2App(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            redirect_uri=REDIRECT_URI,
            provider=Provider(str(server.make_url("/"))),
        )

    yield serve
    for server in servers:
        await server.close()


async def _stream(request: web.Request, parts: list[bytes]) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    for part in parts:
        await resp.write(part)
        await asyncio.sleep(0.02)  # separate TCP segments / chunks
    await resp.write_eof()
    return resp


async def test_answer_arriving_in_pieces_is_read_whole(
    serve: Callable[[Handler], Awaitable[OAuth2App]],
) -> None:
    body = json.dumps({"access_token": "at-new-0123456789", "expires_in": 3600}).encode()

    async def handler(request: web.Request) -> web.StreamResponse:
        assert request.query["grant_type"] == "refresh_token"
        return await _stream(request, [body[:10], body[10:25], body[25:]])

    app = await serve(handler)
    async with OAuth2Client(app) as client:
        token = await client.refresh(OLD)
    assert token.access_token == "at-new-0123456789"
    assert token.refresh_token == REFRESH_TOKEN


async def test_oversized_answer_in_pieces_is_refused(
    serve: Callable[[Handler], Awaitable[OAuth2App]],
) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        chunk = b" " * (MAX_BODY // 4)
        return await _stream(request, [b'{"access_token": "x"', *[chunk] * 5, b"}"])

    app = await serve(handler)
    async with OAuth2Client(app) as client:
        with pytest.raises(TokenEndpointError, match="larger than"):
            await client.refresh(OLD)
