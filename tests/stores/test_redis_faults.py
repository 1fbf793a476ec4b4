"""RedisTokenStore against a Redis of the test's own: restarted, killed, paused, read-only.

Every case runs a real ``redis-server`` (tests/_redis_server.py) on a free port and
asserts a bound on time: no operation waits longer than the store's
``operation_timeout`` (plus ``lock_timeout`` for the lock), and ``aclose()`` returns
within a few seconds even when Redis hangs. Times are kept short with small timeouts
and leases; waits poll a condition with a deadline.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import textwrap
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import pytest
import redis.asyncio
from _redis_server import RedisServer
from store_helpers import SECRET_MARK, make_token

from netrex_async import TokenStoreConfigError, TokenStoreError
from netrex_async._errors import ClosedError
from netrex_async.stores.redis import RedisCheckpoint, RedisTokenStore

pytestmark = [pytest.mark.redis, pytest.mark.timeout(90)]

PASSWORD = f"pw-{SECRET_MARK}-correct horse"
#: Short timeouts: every operation ends within 3 x (0.5 + 0.5) + 0.2 + 0.4 = 3.6 s.
FAST: dict[str, Any] = {"socket_timeout": 0.5, "connect_timeout": 0.5, "retries": 2}
#: Scheduling slack on a loaded machine, on top of a bound.
SLACK = 1.0


def loop_time() -> float:
    return asyncio.get_running_loop().time()


async def fails_within(bound: float, op: Awaitable[Any], error: type[Exception]) -> float:
    """Await ``op``, which must raise ``error`` within ``bound`` (+ slack); the time taken."""
    started = loop_time()
    with pytest.raises(error) as info:
        async with asyncio.timeout(bound + 10):  # so that a hang fails instead of hanging
            await op
    elapsed = loop_time() - started
    assert elapsed <= bound + SLACK, f"took {elapsed:.2f} s, bound {bound:.2f} s: {info.value}"
    return elapsed


async def eventually(check: Callable[[], bool], deadline: float, what: str) -> None:
    end = loop_time() + deadline
    while not check():
        assert loop_time() < end, f"not within {deadline} s: {what}"
        await asyncio.sleep(0.02)


def texts_of(e: BaseException) -> list[str]:
    """Every text an error tracker could show: str, repr, args, attributes, causes."""
    out: list[str] = []
    seen: set[int] = set()
    stack: list[BaseException | None] = [e]
    while stack:
        x = stack.pop()
        if x is None or id(x) in seen:
            continue
        seen.add(id(x))
        out += [str(x), repr(x), *map(repr, x.args), *map(repr, vars(x).values())]
        stack += [x.__cause__, x.__context__]
    return out


def lost_events(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == "store.lease_lost"]


# -- restart, kill, pause ---------------------------------------------------------------


async def test_restart_empty_mid_use_is_retried_not_raised(redis_server: RedisServer) -> None:
    """The first command on a pooled connection gone stale is retried transparently."""
    async with RedisTokenStore(redis_server.url, key="grant") as store:
        await store.save(make_token(1))
        assert await store.load() is not None
        redis_server.restart()
        assert await store.load() is None  # empty, and no error
        token = make_token(2)
        await store.save(token)
        loaded = await store.load()
        assert loaded is not None
        assert loaded.to_dict() == token.to_dict()
        redis_server.restart()
        await store.save(token)  # a write first, this time
        redis_server.restart()
        async with store.lock():  # and the lock
            await store.check_lease()


async def test_killed_server_is_a_store_error_within_the_bound(redis_server: RedisServer) -> None:
    async with RedisTokenStore(redis_server.url, key="grant", lock_timeout=1, **FAST) as store:
        await store.save(make_token())
        redis_server.kill()
        bound = store.operation_timeout
        assert bound == pytest.approx(3.6)
        for op in (store.load(), store.save(make_token()), store.clear()):
            await fails_within(bound, op, TokenStoreError)

        async def lock() -> None:
            async with store.lock():
                pytest.fail("locked without a server")

        await fails_within(store.lock_timeout + bound, lock(), TokenStoreError)
        redis_server.start()
        assert await store.load() is None  # back (empty): the store recovers by itself


async def test_paused_server_is_a_store_error_within_the_bound(redis_server: RedisServer) -> None:
    store = RedisTokenStore(redis_server.url, key="grant", lock_timeout=1, **FAST)
    await store.save(make_token())
    redis_server.pause()
    try:
        bound = store.operation_timeout
        for op in (store.load(), store.save(make_token()), store.clear()):
            elapsed = await fails_within(bound, op, TokenStoreError)
            assert elapsed >= FAST["socket_timeout"] * 0.9  # it did wait for an answer

        async def lock() -> None:
            async with store.lock():
                pytest.fail("locked a paused server")

        await fails_within(store.lock_timeout + bound, lock(), TokenStoreError)
        started = loop_time()
        await store.aclose()
        assert loop_time() - started < 3
    finally:
        redis_server.resume()


async def test_paused_server_with_default_timeouts_is_cut_off(redis_server: RedisServer) -> None:
    """Also through a borrowed client that has no timeouts at all."""
    client = redis.asyncio.Redis.from_url(redis_server.url)  # no socket timeout
    store = RedisTokenStore(client, key="grant", operation_timeout=1.5)
    try:
        await store.save(make_token())
        redis_server.pause()
        elapsed = await fails_within(1.5, store.load(), TokenStoreError)
        assert elapsed >= 1.4
    finally:
        redis_server.resume()
        await store.aclose()
        await client.aclose()


async def test_aclose_ends_calls_in_flight_on_a_paused_server(redis_server: RedisServer) -> None:
    store = RedisTokenStore(redis_server.url, key="grant")  # default timeouts: 41.4 s
    await store.save(make_token())
    redis_server.pause()
    try:
        calls = [asyncio.create_task(store.load()), asyncio.create_task(store.clear())]
        await asyncio.sleep(0.2)  # both are waiting for an answer now
        started = loop_time()
        await store.aclose()
        for call in calls:
            with pytest.raises(ClosedError):
                await call
        assert loop_time() - started < 3
    finally:
        redis_server.resume()


async def test_aclose_returns_while_holding_the_lock_of_a_paused_server(
    redis_server: RedisServer,
) -> None:
    store = RedisTokenStore(redis_server.url, key="grant", lock_expiry=1)
    started = 0.0
    try:
        async with store.lock():
            redis_server.pause()
            await asyncio.sleep(0.5)  # a renewal is in flight now
            started = loop_time()
            await store.aclose()
            assert loop_time() - started < 3
            with pytest.raises(ClosedError):
                await store.check_lease()
        assert loop_time() - started < 3  # leaving the lock did not wait for Redis
    finally:
        redis_server.resume()


# -- writes refused ---------------------------------------------------------------------


async def test_noreplicas_makes_save_a_clean_store_error() -> None:
    with RedisServer(password=PASSWORD) as server:
        async with RedisTokenStore(server.url, key="grant") as store:
            await store.save(make_token())
            server.readonly()
            with pytest.raises(TokenStoreError) as info:
                await store.save(make_token())
            assert "NOREPLICAS" in str(info.value)
            assert info.value.store == store.description
            assert f"127.0.0.1:{server.port}" in str(info.value)
            for text in texts_of(info.value):
                assert SECRET_MARK not in text
            assert await store.load() is not None  # reads still work


async def test_replica_makes_save_a_clean_store_error() -> None:
    with RedisServer(password=PASSWORD) as master, master.replica() as replica:
        master.wait_for_replication(replica)
        async with RedisTokenStore(replica.url, key="grant") as store:
            with pytest.raises(TokenStoreError) as info:
                await store.save(make_token())
            assert "ReadOnlyError" in str(info.value)
            for text in texts_of(info.value):
                assert SECRET_MARK not in text


# -- credentials refused: a configuration error, never retried --------------------------


@pytest.mark.parametrize("auth", ["wrong", "missing", "noperm"])
async def test_a_refused_password_is_a_config_error_at_once(
    auth: str, caplog: pytest.LogCaptureFixture
) -> None:
    with RedisServer(password=PASSWORD) as server:
        base = f"127.0.0.1:{server.port}/0"
        if auth == "wrong":
            url = f"redis://:{quote(PASSWORD + 'x', safe='')}@{base}"
        elif auth == "missing":
            url = f"redis://{base}"
        else:  # a user that may read, and nothing else (ACL): NOPERM on a write
            assert (
                server.cli("ACL", "SETUSER", "reader", "on", f">{PASSWORD}", "~*", "+get") == "+OK"
            )
            url = f"redis://reader:{quote(PASSWORD, safe='')}@{base}"
        started = loop_time()
        async with RedisTokenStore(url, key="grant", **FAST) as store:
            with pytest.raises(TokenStoreConfigError) as info:
                await store.save(make_token())
            assert info.value.store == store.description
            assert "check the password" in str(info.value)
            if auth != "noperm":
                with pytest.raises(TokenStoreConfigError):
                    await store.load()
        # As a standby, it is not waited through: the lock fails at once.
        caplog.set_level(logging.WARNING, logger="netrex_async")
        async with RedisCheckpoint(url, key="events", lock_expiry=1, **FAST) as checkpoint:
            with pytest.raises(TokenStoreConfigError) as locked:
                async with checkpoint.lock():
                    pass  # pragma: no cover - never held
        assert loop_time() - started < 3 * 3.6 + SLACK
        assert not [r for r in caplog.records if "trying again" in r.getMessage()]
        for text in [*texts_of(info.value), *texts_of(locked.value), caplog.text]:
            assert SECRET_MARK not in text


# -- leases -----------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["deleted", "stolen"])
async def test_check_lease_raises_once_the_lock_is_not_ours(
    redis_server: RedisServer, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with RedisTokenStore(redis_server.url, key="grant", lock_expiry=5) as store:
        async with store.lock():
            await store.check_lease()
            if how == "deleted":
                assert redis_server.cli("DEL", store.lock_key) == ":1"
            else:  # another owner, as redis-py's lock would write it
                assert redis_server.cli("SET", store.lock_key, "other", "PX", "5000") == "+OK"
            with pytest.raises(TokenStoreError, match="was lost: .*not refreshing") as info:
                await store.check_lease()
            assert info.value.store == store.description
            with pytest.raises(TokenStoreError, match="was lost"):
                await store.check_lease()  # and it stays lost
        # The late release did not free the other owner's lock.
        if how == "stolen":
            assert redis_server.cli("GET", store.lock_key) == "$5\r\nother"
        assert [r.event for r in caplog.records if r.event == "store.lock_lost"]


async def test_check_lease_raises_when_the_renewal_saw_it_lost(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Stolen and given back between two renewals: the loss is remembered."""
    async with RedisTokenStore(redis_server.url, key="grant", lock_expiry=0.6) as store:
        async with store.lock():
            owner = redis_server.cli("GET", store.lock_key).split("\r\n")[1]
            redis_server.cli("SET", store.lock_key, "other", "PX", "5000")
            await eventually(lambda: bool(lost_events(caplog)), 3, "the renewal saw the loss")
            redis_server.cli("SET", store.lock_key, owner, "PX", "5000")
            with pytest.raises(TokenStoreError, match="gone or holds another owner"):
                await store.check_lease()


async def test_check_lease_raises_after_a_restart_empty(redis_server: RedisServer) -> None:
    async with RedisTokenStore(redis_server.url, key="grant", lock_expiry=5) as store:
        async with store.lock():
            redis_server.restart()
            with pytest.raises(TokenStoreError, match="was lost"):
                await store.check_lease()


async def test_lease_is_lost_when_redis_cannot_be_reached_before_it_runs_out(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with RedisTokenStore(redis_server.url, key="grant", lock_expiry=1, **FAST) as store:
        async with store.lock():
            redis_server.pause()
            try:
                await eventually(lambda: bool(lost_events(caplog)), 1 + 3.6, "lease lost")
            finally:
                redis_server.resume()
            assert "before it ran out" in lost_events(caplog)[0].getMessage()
            with pytest.raises(TokenStoreError, match="was lost"):
                await store.check_lease()


_HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    from netrex_async import TokenStoreError
    from netrex_async.stores.redis import RedisTokenStore

    async def main():
        async with RedisTokenStore(sys.argv[1], key="grant", lock_expiry=1) as store:
            async with store.lock():
                print("locked", flush=True)
                await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
                try:
                    await store.check_lease()
                    print("held", flush=True)
                except TokenStoreError as e:
                    print("lost", e, flush=True)
            print("released", flush=True)

    asyncio.run(main())
    """
)


async def test_holder_stopped_past_its_lease_loses_it(redis_server: RedisServer) -> None:
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _HOLDER,
        redis_server.url,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert holder.stdin is not None
    assert holder.stdout is not None
    try:
        async with asyncio.timeout(30):
            assert await holder.stdout.readline() == b"locked\n"
        holder.send_signal(signal.SIGSTOP)
        async with RedisTokenStore(redis_server.url, key="grant", lock_timeout=5) as store:
            started = loop_time()
            async with store.lock():  # taken once the stopped holder's lease ran out
                assert 0.3 < loop_time() - started < 1 + SLACK
                holder.send_signal(signal.SIGCONT)
                holder.stdin.write(b"check\n")
                await holder.stdin.drain()
                async with asyncio.timeout(10):
                    answer = (await holder.stdout.readline()).decode()
                    assert answer.startswith("lost "), answer
                    assert "not refreshing" in answer
                    assert await holder.stdout.readline() == b"released\n"
                await store.check_lease()  # its late release left our lock alone
    finally:
        if holder.returncode is None:
            holder.send_signal(signal.SIGCONT)
            holder.kill()
        await holder.wait()


# -- replicated saves -------------------------------------------------------------------


async def test_wait_replicas_returns_once_the_replica_has_the_token() -> None:
    with RedisServer() as master, master.replica() as replica:
        master.wait_for_replication(replica)
        # A wait of seconds, below the socket timeout: on a loaded machine a replica can
        # take longer than the default 1 s to acknowledge, and that is not what this tests.
        async with RedisTokenStore(
            master.url, key="grant", wait_replicas=1, wait_timeout=8, socket_timeout=10
        ) as store:
            for n in range(5):
                token = make_token(n)
                await store.save(token)
                # WAIT counted this SET: the replica has it the moment save() returns.
                assert token.access_token in replica.cli("GET", store.key)


async def test_wait_replicas_raises_when_no_replica_has_it_in_time(
    redis_server: RedisServer,
) -> None:
    with redis_server.replica() as replica:
        redis_server.wait_for_replication(replica)
        async with RedisTokenStore(
            redis_server.url, key="grant", wait_replicas=1, wait_timeout=0.3, **FAST
        ) as store:
            replica.pause()
            try:
                bound = store.operation_timeout + 0.3
                await fails_within(bound, store.save(make_token()), TokenStoreError)
            finally:
                replica.resume()
        # The replica is back: once it caught up, a save is replicated again.
        async with RedisTokenStore(
            redis_server.url, key="grant", wait_replicas=1, wait_timeout=2
        ) as store:
            token = make_token()
            await store.save(token)
            assert token.access_token in replica.cli("GET", store.key)
    async with RedisTokenStore(redis_server.url, key="grant", wait_replicas=1) as store:
        with pytest.raises(TokenStoreError, match="only 0 of the 1 replicas"):
            await store.save(make_token())  # no replica at all any more
