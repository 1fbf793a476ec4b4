"""Hostile answers: every failure is a NetrexError, and none carries the bearer token.

aiohttp's exceptions keep ``request_info``, whose headers hold ``Authorization: Bearer``:
one of them escaping (or staying chained as ``__cause__``/``__context__``) puts a user
token into any ``log.error("%r", e)`` or error tracker. Each answer here is written by a
raw TCP server, byte by byte, and several quote the token back.
"""

from __future__ import annotations

import asyncio
import traceback

import pytest

from netrex_async import (
    ApiError,
    ClosedError,
    NetrexClient,
    NetrexError,
    Provider,
    RetryPolicy,
    TransportError,
)

from ._raw import RawServer, close_after, hang, http, json_answer

QUERY = "{cameraList{name}}"
GOOD = json_answer(b'{"data":{"cameraList":[]}}')


def _hostile(token: str) -> dict[str, bytes | object]:
    echo = f"Bearer {token}"
    return {
        "bad Content-Length": http(
            "200 OK", b"{}", "Content-Type: application/json", "Content-Length: 12x", length=False
        ),
        "two different Content-Lengths": http(
            "200 OK", b"{}", "Content-Length: 2", "Content-Length: 3", length=False
        ),
        "bad status line": f"HTTX/1.1 200 {echo}\r\nContent-Length: 2\r\n\r\n{{}}".encode(),
        "status line without a status": f"HTTP/1.1 {echo}\r\n\r\n".encode(),
        "header over 8 KB": http("200 OK", b"{}", f"X-Echo: {echo} " + "a" * 9000),
        "header line without a colon": http("200 OK", b"{}", f"{echo}"),
        "bad chunked body": http(
            "200 OK",
            b"zz\r\n" + echo.encode() + b"\r\n0\r\n\r\n",
            "Transfer-Encoding: chunked",
            length=False,
        ),
        "same-origin redirect loop": http("302 Found", b"", "Location: /api/graphql.php"),
        "redirect to an invalid URL": http("302 Found", b"", "Location: http://[::1"),
        "redirect to a bad port": http("307 Temporary Redirect", b"", "Location: http://x:99999/"),
        "redirect to a non-HTTP URL": http("302 Found", b"", f"Location: ftp://h/{token}"),
        "redirect to javascript:": http("302 Found", b"", "Location: javascript:alert(1)"),
        "body cut short": close_after(
            http("200 OK", b"", "Content-Length: 100", length=False) + echo.encode()
        ),
        "connection closed at once": close_after(b""),
        "error page quoting the token": http("400 Bad Request", echo.encode()),
    }


CASES = list(_hostile("x" * 16))


def assert_clean(error: BaseException, token: str, secret_registry) -> None:
    """No token anywhere in the error, its attributes, its chain or its traceback."""
    secret_registry.check(error)
    chain, seen = [error], set()
    while chain:
        e = chain.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        assert e.__module__.startswith("netrex_async"), f"{type(e)} in the chain"
        for link in (e.__cause__, e.__context__):
            if link is not None:
                chain.append(link)
    text = "".join(traceback.format_exception(error))
    assert "Authorization" not in text  # no request_info, no request headers
    assert "aiohttp" not in "".join(traceback.format_exception_only(error))


@pytest.mark.parametrize("case", CASES)
async def test_graphql_raises_only_clean_netrex_errors(token, secret_registry, case):
    async with RawServer(_hostile(token)[case]) as server:  # type: ignore[arg-type]
        provider = Provider(server.url)
        async with NetrexClient(token, provider=provider, retry=RetryPolicy(attempts=2)) as client:
            with pytest.raises(NetrexError) as e:
                await client.graphql(QUERY)
            assert isinstance(e.value, ApiError | TransportError)
            assert_clean(e.value, token, secret_registry)
            with pytest.raises(NetrexError) as e:
                await client.request("GET", "/api/graphql.php")
            assert_clean(e.value, token, secret_registry)


async def test_a_malformed_answer_is_not_retried_and_the_next_call_works(token, secret_registry):
    hostile = _hostile(token)["header over 8 KB"]
    async with RawServer(hostile, GOOD) as server:  # type: ignore[arg-type]
        async with NetrexClient(token, provider=Provider(server.url)) as client:
            with pytest.raises(TransportError, match="malformed answer"):
                await client.graphql(QUERY)
            assert len(server.requests) == 1
            assert await client.graphql(QUERY) == {"cameraList": []}


async def test_a_cut_answer_is_retried_like_a_network_fault(token):
    hostile = _hostile(token)["body cut short"]
    async with RawServer(hostile, GOOD) as server:  # type: ignore[arg-type]
        async with NetrexClient(token, provider=Provider(server.url)) as client:
            assert await client.graphql(QUERY) == {"cameraList": []}
    assert len(server.requests) == 2


async def test_redirect_loop_is_an_api_error_naming_it(token, secret_registry):
    async with RawServer(_hostile(token)["same-origin redirect loop"]) as server:  # type: ignore[arg-type]
        async with NetrexClient(token, provider=Provider(server.url)) as client:
            with pytest.raises(ApiError, match="redirected more than 10 times") as e:
                await client.graphql(QUERY)
    assert e.value.status == 302
    assert len(server.requests) == 11
    assert_clean(e.value, token, secret_registry)


async def test_watch_survives_hostile_answers_and_logs_no_token(token, caplog):
    # watch() logs each failure (the suite's fixture scans those records for the token)
    # and goes on; it used to end with the raw aiohttp exception.
    hostile = _hostile(token)
    script = [hostile["bad status line"], hostile["header over 8 KB"], GOOD]
    async with RawServer(*script) as server:  # type: ignore[arg-type]
        async with NetrexClient(token, provider=Provider(server.url)) as client:
            async for data in client.watch(QUERY, every=0.01):
                assert data == {"cameraList": []}
                break
    failed = [r for r in caplog.records if getattr(r, "event", None) == "watch_failed"]
    assert len(failed) == 2


async def test_calls_after_aclose_raise_closed_error(token):
    async with RawServer(GOOD) as server:
        client = NetrexClient(token, provider=Provider(server.url))
        assert await client.graphql(QUERY) == {"cameraList": []}
        await client.aclose()
        with pytest.raises(ClosedError):
            await client.graphql(QUERY)
        with pytest.raises(ClosedError):
            await client.request("GET", "/x")
        with pytest.raises(ClosedError):
            async for _ in client.watch(QUERY, every=1):
                pass


async def test_a_call_in_flight_during_aclose_raises_closed_error(token, secret_registry):
    async with RawServer(hang()) as server:
        client = NetrexClient(token, provider=Provider(server.url))
        call = asyncio.create_task(client.graphql(QUERY))
        await asyncio.wait_for(server.arrived.wait(), 5)
        await asyncio.wait_for(client.aclose(), 5)
        with pytest.raises(ClosedError) as e:
            await asyncio.wait_for(call, 5)
    assert_clean(e.value, token, secret_registry)
