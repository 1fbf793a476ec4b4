"""The refresh core under faults, with real parts: a full file system (a tiny tmpfs), a
Redis server of the test's own (read-only, restarted empty, paused), and the fake
provider rotating refresh tokens and revoking the grant when one comes back.

Each test asserts what the promise says: no call failed, the grant is alive at the end
(``reuse_detected == 0``, a new manager can still refresh it), and the store ends up
holding the newest token once it can be written again.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from _redis_server import REDIS_SERVER, RedisServer
from _tmpfs import fill
from hardening._helpers import app_for

from netrex_async import (
    FileTokenStore,
    NetrexClient,
    NetrexError,
    OAuth2Client,
    RetryPolicy,
    TokenManager,
)
from netrex_async.testing import FakeNetrex, Fault

LIFETIME = 1.5
# The pause after a failed refresh (min_refresh_interval, 0.5 s by default) scaled to
# these tokens, as the lifetime is: 0.5 s is nothing against an hour-long token's stale
# phase, but most of a 1.5 s token's (0.6 s). Unscaled, a refresh that fails late in that
# phase (a Redis restart wiping its lock) leaves callers with the error until it ends.
HOLD = 0.1
QUERY = "{cameraList{name}}"


@pytest.fixture(name="fake")
async def _fake() -> AsyncIterator[FakeNetrex]:
    async with FakeNetrex(
        expires_in=LIFETIME, rotate_refresh_tokens=True, reuse_detection=True
    ) as fake:
        yield fake


async def _calls(client: NetrexClient, seconds: float, tasks: int = 10) -> list[object]:
    """Call the API from ``tasks`` tasks for ``seconds``; every result or error."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    out: list[object] = []

    async def one() -> None:
        while loop.time() < end:
            try:
                out.append(await client.graphql(QUERY))
            except Exception as e:
                out.append(e)
            await asyncio.sleep(0.02)

    await asyncio.gather(*(one() for _ in range(tasks)))
    return out


async def _until(condition, seconds: float) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while not condition():
        assert loop.time() < end, "the condition did not come true in time"
        await asyncio.sleep(0.05)


async def _grant_alive(fake: FakeNetrex, store: object, **manager: object) -> None:
    """Another manager, reading the store afresh, can still refresh the grant."""
    assert fake.counters.reuse_detected == 0, "a rotated-out refresh token came back"
    async with OAuth2Client(app_for(fake), retry=RetryPolicy(max_time=2)) as oauth:
        other = TokenManager(oauth, store, background=False, **manager)  # type: ignore[arg-type]
        token = await other.refresh()
        assert fake.is_valid(token.access_token)
        await other.aclose()
    assert fake.counters.reuse_detected == 0


# -- a full disk ------------------------------------------------------------------------


async def test_full_disk_during_refreshes_keeps_the_grant(fake, small_disk):
    path = small_disk / "netrex" / "token.json"
    store = FileTokenStore(path)
    await store.save(fake.issue_token(expires_in=LIFETIME))
    async with store.lock():
        pass  # the lock file exists before the disk fills up
    filler = fill(small_disk)
    async with (
        OAuth2Client(app_for(fake)) as oauth,
        TokenManager(oauth, store, save_timeout=2) as manager,
        NetrexClient(manager, provider=fake.provider) as client,
    ):
        results = await _calls(client, 3 * LIFETIME)
        assert not [r for r in results if isinstance(r, Exception)], results[:3]
        assert fake.counters.token_requests["refresh_token"] >= 2
        assert manager.stats.unsaved  # every save failed: no space left on device
        assert fake.counters.reuse_detected == 0
        os.unlink(filler)  # room again
        await _until(lambda: not manager.stats.unsaved, 10 * LIFETIME)
        await manager.settle()
        assert (await store.load()) == manager.current
    await _grant_alive(fake, FileTokenStore(path))


# -- Redis as it fails in production -----------------------------------------------------


@pytest.fixture(name="redis")
def _redis() -> Iterator[RedisServer]:
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed")
    with RedisServer() as server:
        yield server


def _redis_store(server: RedisServer, **kw: object):  # type: ignore[no-untyped-def]
    from netrex_async.stores.redis import RedisTokenStore

    return RedisTokenStore(server.url, key="grant", socket_timeout=1, connect_timeout=1, **kw)


async def test_redis_read_only_during_a_refresh_keeps_the_grant(fake, redis):
    # A failover onto a replica while the token request is in flight: the lock was
    # taken, the provider rotated the refresh token, and now Redis refuses the save.
    async with _redis_store(redis) as store:
        await store.save(fake.issue_token(expires_in=LIFETIME))
        async with (
            OAuth2Client(app_for(fake)) as oauth,
            TokenManager(oauth, store, background=False) as manager,
            NetrexClient(manager, provider=fake.provider) as client,
        ):
            assert (await client.graphql(QUERY))["cameraList"]
            fake.inject("token", Fault.delay(0.5))
            refreshing = asyncio.create_task(manager.refresh())
            await _until(lambda: fake.counters.requests["token"] >= 1, 5)
            redis.readonly()  # NOREPLICAS on every write from now on
            new = await asyncio.wait_for(refreshing, 5)
            assert fake.is_valid(new.access_token)
            await _until(lambda: manager.stats.save_failures >= 1, 5)
            assert manager.stats.unsaved
            results = await _calls(client, LIFETIME / 2)
            assert not [r for r in results if isinstance(r, Exception)], results[:3]
            assert fake.counters.reuse_detected == 0
            redis.cli("CONFIG", "SET", "min-replicas-to-write", "0")  # writable again
            await _until(lambda: not manager.stats.unsaved, 30)
            await manager.settle()
            assert (await store.load()) == manager.current
        await _grant_alive(fake, store)


async def test_read_only_redis_refuses_the_lock_and_presents_nothing(fake, redis):
    # A lock that could not be released on a read-only Redis lingers for its lease: a
    # short one, and managers whose worst case fits in it.
    short = {"store_timeout": 0.5, "save_timeout": 0.5}
    async with _redis_store(redis, lock_expiry=6, lock_timeout=8) as store:
        await store.save(fake.issue_token(expires_in=LIFETIME))
        async with (
            OAuth2Client(app_for(fake), retry=RetryPolicy(max_time=2)) as oauth,
            TokenManager(oauth, store, background=False, **short) as manager,
        ):
            await manager.token()
            redis.readonly()
            with pytest.raises(NetrexError):
                await manager.refresh()  # no lease, so no refresh token is presented
            assert fake.counters.token_requests["refresh_token"] == 0
            redis.cli("CONFIG", "SET", "min-replicas-to-write", "0")
        await _grant_alive(fake, store, **short)


async def test_redis_restarted_empty_keeps_the_grant(fake, redis):
    async with _redis_store(redis) as store:
        await store.save(fake.issue_token(expires_in=LIFETIME))
        async with (
            OAuth2Client(app_for(fake)) as oauth,
            TokenManager(oauth, store, min_refresh_interval=HOLD) as manager,
            NetrexClient(manager, provider=fake.provider) as client,
        ):
            for _ in range(3):
                results = await _calls(client, LIFETIME / 2)
                assert not [r for r in results if isinstance(r, Exception)], results[:3]
                redis.restart()  # empty: the token is gone from the store
            results = await _calls(client, 2 * LIFETIME)
            assert not [r for r in results if isinstance(r, Exception)], results[:3]
            await manager.settle()
            # The manager wrote its token back into the empty store.
            await _until(lambda: not manager.stats.unsaved, 10 * LIFETIME)
            stored = await store.load()
            assert stored is not None
            assert stored.refresh_token == manager.current.refresh_token
        await _grant_alive(fake, store)


async def test_redis_restarted_during_a_late_refresh_keeps_every_call(fake, redis):
    # The restart above, landing inside a refresh that a loaded machine runs late (the
    # suite saw it at random): it wipes the refresh's lock, so the manager does not
    # present the refresh token (the lease is lost) and tries again after HOLD, while
    # callers go on with the token in hand.
    async with _redis_store(redis) as store:
        await store.save(fake.issue_token(expires_in=LIFETIME))
        check_lease = store.check_lease
        checks = 0

        async def late_check_lease() -> None:
            nonlocal checks
            checks += 1
            if checks == 2:  # the second refresh
                await asyncio.sleep(0.2)
                redis.restart()
            await check_lease()

        store.check_lease = late_check_lease  # type: ignore[method-assign]
        async with (
            OAuth2Client(app_for(fake)) as oauth,
            TokenManager(oauth, store, min_refresh_interval=HOLD) as manager,
            NetrexClient(manager, provider=fake.provider) as client,
        ):
            results = await _calls(client, 3 * LIFETIME)
            assert not [r for r in results if isinstance(r, Exception)], results[:3]
            assert checks >= 3 and manager.stats.failures == 1  # the lease was lost once
            await manager.settle()
        await _grant_alive(fake, store)


async def test_paused_redis_bounds_every_wait_and_aclose(fake, redis):
    async with _redis_store(redis) as store:
        await store.save(fake.issue_token(expires_in=LIFETIME))
        async with (
            OAuth2Client(app_for(fake)) as oauth,
            NetrexClient(
                TokenManager(oauth, store, store_timeout=2, save_timeout=2),
                provider=fake.provider,
            ) as client,
        ):
            manager = client.auth
            assert isinstance(manager, TokenManager)
            assert (await client.graphql(QUERY))["cameraList"]
            redis.pause()  # a partition: nothing answers, nothing refuses
            try:
                # Calls go on with the token in hand while it works, and end with a
                # typed error (never hang) once it has expired.
                started = time.monotonic()
                results = await _calls(client, 2 * LIFETIME, tasks=3)
                assert time.monotonic() - started < 2 * LIFETIME + 15
                assert any(not isinstance(r, Exception) for r in results)
                assert all(isinstance(r, NetrexError | dict) for r in results)
                started = time.monotonic()
                await asyncio.wait_for(manager.aclose(), 15)
                assert time.monotonic() - started <= manager.close_timeout + 2
            finally:
                redis.resume()
