"""Bounded input: answers are read up to max_response_bytes, then the connection closes.

A 1 GiB body used to be read whole (+3 GB RSS), and an endless one grew until the
process died. Here each ends fast, with an ApiError naming the limit, in bounded memory.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import time

import pytest

from netrex_async import ApiError, NetrexClient, Provider

from ._raw import RawServer, endless, http, json_answer

QUERY = "{cameraList{name}}"
MiB = 1024 * 1024
_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


async def peak_rss_during(coro) -> tuple[int, BaseException | None, float]:
    """Run ``coro``; the highest RSS growth seen meanwhile, what it raised, how long."""
    base = peak = rss()
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss())
            await asyncio.sleep(0.005)

    sampler = asyncio.create_task(sample())
    started = time.monotonic()
    error: BaseException | None = None
    try:
        await asyncio.wait_for(coro, 20)
    except Exception as e:
        error = e
    finally:
        done.set()
        await sampler
    return peak - base, error, time.monotonic() - started


async def test_the_default_limit():
    from netrex_async._client import DEFAULT_MAX_RESPONSE_BYTES

    assert 16 * MiB == DEFAULT_MAX_RESPONSE_BYTES
    assert NetrexClient("t" * 16).max_response_bytes == 16 * MiB


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n", id="1 GiB length"),
        pytest.param(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", id="endless, no length"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", id="endless chunked"
        ),
    ],
)
async def test_a_huge_answer_ends_fast_in_bounded_memory(token, secret_registry, head):
    chunk = b"[" * 65536
    if b"chunked" in head:
        chunk = b"10000\r\n" + chunk + b"\r\n"
    async with RawServer(endless(head, chunk)) as server:
        client = NetrexClient(token, provider=Provider(server.url), max_response_bytes=4 * MiB)
        async with client:
            grown, error, took = await peak_rss_during(client.graphql(QUERY))
            assert isinstance(error, ApiError), error
            assert "max_response_bytes (4194304 bytes)" in str(error)
            assert error.status == 200
            assert took < 10
            assert grown < 64 * MiB, f"RSS grew by {grown / MiB:.0f} MiB"
            secret_registry.check(error)
            # The connection was closed, not drained: the server's writer is gone.
            for _ in range(200):
                if not server._writers:
                    break
                await asyncio.sleep(0.01)
            assert not server._writers, "the connection is still open"


async def test_the_limit_is_checked_up_front_against_content_length(token):
    big = json_answer(b'{"data":{"x":"' + b"a" * 2000 + b'"}}')
    async with RawServer(big) as server:
        async with NetrexClient(
            token, provider=Provider(server.url), max_response_bytes=1000
        ) as client:
            with pytest.raises(ApiError, match=r"announces 2\d\d\d bytes beyond max_response"):
                await client.graphql(QUERY)
            with pytest.raises(ApiError, match="max_response_bytes"):
                await client.request("GET", "/x")


async def test_an_answer_at_the_limit_is_read(token):
    body = b'{"data":{"x":"' + b"a" * 100 + b'"}}'
    async with RawServer(json_answer(body)) as server:
        async with NetrexClient(
            token, provider=Provider(server.url), max_response_bytes=len(body)
        ) as client:
            assert await client.graphql(QUERY) == {"x": "a" * 100}


async def test_a_compressed_bomb_is_cut_at_the_limit(token):
    # 64 MiB of JSON that gzip packs into about 64 KB: Content-Length alone says nothing.
    bomb = gzip.compress(b'{"data":{"x":"' + b"a" * (64 * MiB) + b'"}}', compresslevel=9)
    answer = http("200 OK", bomb, "Content-Type: application/json", "Content-Encoding: gzip")
    async with RawServer(answer) as server:
        client = NetrexClient(token, provider=Provider(server.url), max_response_bytes=4 * MiB)
        async with client:
            grown, error, _ = await peak_rss_during(client.graphql(QUERY))
    assert isinstance(error, ApiError) and "goes on beyond max_response_bytes" in str(error)
    assert grown < 64 * MiB


async def test_the_limit_must_be_positive():
    with pytest.raises(ValueError, match="max_response_bytes"):
        NetrexClient("t" * 16, max_response_bytes=0)
