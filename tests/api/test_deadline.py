"""Nothing waits without a bound: every call ends within the policy's deadline.

The default policy makes that a minute, the wait for a token and for a connection slot
included. Timing runs on looptime's virtual clock.
"""

from __future__ import annotations

import asyncio

import pytest

from netrex_async import NetrexClient, Provider, RetryPolicy, TransportError
from netrex_async._client import DEFAULT_RETRY
from netrex_async._retry import worst_case

from ._raw import RawServer, hang, json_answer

QUERY = "{cameraList{name}}"


class Hanging:
    """A token source whose first ``hangs`` calls never return."""

    def __init__(self, hangs: int = 1_000_000) -> None:
        self.hangs = hangs
        self.calls = 0

    async def token(self) -> str:
        self.calls += 1
        if self.calls <= self.hangs:
            await asyncio.Event().wait()
        return "a-token-that-works"

    async def invalidate(self, access_token: str) -> None:
        return None


async def test_the_default_policy_ends_every_call_within_a_minute():
    assert worst_case(DEFAULT_RETRY) <= 60.0
    client = NetrexClient("some-user-token")
    assert client.retry is DEFAULT_RETRY
    assert client.timeout.total is None  # the deadline is the bound, not one attempt's
    await client.aclose()


@pytest.mark.looptime
async def test_a_hanging_token_source_ends_at_the_deadline():
    loop = asyncio.get_running_loop()
    async with NetrexClient(Hanging(), provider=Provider("http://127.0.0.1:9")) as client:
        start = loop.time()
        with pytest.raises(TransportError, match="gave up after 59 s"):
            await client.graphql(QUERY)
        assert 59 <= loop.time() - start <= 60


@pytest.mark.looptime
async def test_the_wait_for_a_connection_slot_is_bounded_too():
    # limit=1: a first call (with an hour-long deadline of its own) holds the only slot
    # while its token never comes; the second, under the default policy, waits for that
    # slot, and ends at its deadline without ever reading a token.
    loop = asyncio.get_running_loop()
    source = Hanging(hangs=1)
    async with NetrexClient(source, provider=Provider("http://127.0.0.1:9"), limit=1) as client:
        client.retry = RetryPolicy(max_time=3600)
        holder = asyncio.create_task(client.graphql(QUERY))
        await asyncio.sleep(1)
        client.retry = DEFAULT_RETRY
        start = loop.time()
        with pytest.raises(TransportError, match="gave up after 59 s"):
            await client.graphql(QUERY)
        assert 59 <= loop.time() - start <= 60
        assert source.calls == 1, "the second call never got a slot, so never read a token"
        holder.cancel()
        with pytest.raises(asyncio.CancelledError):
            await holder


async def test_a_server_that_never_answers_ends_at_the_deadline(token):
    # Real sockets, so the real clock: a short deadline.
    loop = asyncio.get_running_loop()
    async with RawServer(hang()) as server:
        policy = RetryPolicy(max_time=0.5)
        async with NetrexClient(token, provider=Provider(server.url), retry=policy) as client:
            start = loop.time()
            with pytest.raises(TransportError, match="deadline"):
                await client.graphql(QUERY)
            assert loop.time() - start < 3


async def test_retries_share_the_deadline_of_the_first_attempt(token):
    # Each attempt fails at once with 503: attempts end early; the count is the policy's.
    busy = json_answer(b"{}").replace(b"200 OK", b"503 Service Unavailable")
    async with RawServer(busy) as server:
        policy = RetryPolicy(attempts=3, max_time=5)
        async with NetrexClient(token, provider=Provider(server.url), retry=policy) as client:
            with pytest.raises(Exception, match="503"):
                await client.graphql(QUERY)
    assert len(server.requests) == 3


@pytest.mark.looptime
async def test_a_callers_cancellation_passes_through_untouched():
    async with NetrexClient(Hanging(), provider=Provider("http://127.0.0.1:9")) as client:
        task = asyncio.create_task(client.graphql(QUERY))
        await asyncio.sleep(5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert task.cancelling() == 1


@pytest.mark.looptime
async def test_the_deadline_leaves_no_cancellation_behind():
    # After a call ended by its deadline the task is not left "cancelling": an
    # asyncio.timeout of the caller's own still works, and the next call too.
    loop = asyncio.get_running_loop()
    source = Hanging(hangs=1)
    async with NetrexClient(source, provider=Provider("http://127.0.0.1:9")) as client:
        client.retry = RetryPolicy(max_time=3, attempts=1)
        with pytest.raises(TransportError, match="deadline"):
            await client.graphql(QUERY)
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0
        start = loop.time()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(10):
                await asyncio.sleep(60)
        assert 10 <= loop.time() - start < 11


@pytest.mark.looptime
async def test_a_short_deadline_is_kept_to_the_tick():
    loop = asyncio.get_running_loop()
    async with NetrexClient(Hanging(), provider=Provider("http://127.0.0.1:9")) as client:
        client.retry = RetryPolicy(max_time=0.1)
        start = loop.time()
        with pytest.raises(TransportError):
            await client.graphql(QUERY)
        assert loop.time() - start == pytest.approx(0.1, abs=0.01)
