"""RedisTokenStore: credentials, connection errors, lock expiry, client ownership."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis.asyncio
from store_helpers import REDIS_PREFIX, SECRET_MARK, make_token

from netrex_async import TokenStoreError
from netrex_async.stores.redis import RedisTokenStore

PASSWORD = f"pw-{SECRET_MARK}-hunter2"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def assert_no_password(text: str) -> None:
    assert PASSWORD not in text
    assert SECRET_MARK not in text


@pytest_asyncio.fixture(name="raw")
async def _raw(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """A plain client on the test Redis, to look behind the store's back."""
    client = redis.asyncio.Redis.from_url(redis_url)
    yield client
    await client.aclose()


# -- no server needed ---------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("url", "server"),
    [
        (f"redis://user:{PASSWORD}@db.example:6379/2", "redis://db.example:6379/2"),
        (f"redis://:{PASSWORD}@db.example/1", "redis://db.example:6379/1"),
        (f"rediss://default:{PASSWORD}@db.example:6380/0", "rediss://db.example:6380/0"),
        (
            f"rediss://db.example:6380/0?password={PASSWORD}&ssl_cert_reqs=none",
            "rediss://db.example:6380/0",
        ),
        (f"unix:///run/redis.sock?db=3&password={PASSWORD}", "unix:///run/redis.sock?db=3"),
        (f"redis://{SECRET_MARK}user:{PASSWORD}@db.example", "redis://db.example:6379/0"),
    ],
)
async def test_description_and_repr_hide_credentials(url: str, server: str) -> None:
    store = RedisTokenStore(url, key="grant")
    try:
        assert store.description == f"{server} key netrex_async:grant"
        assert_no_password(store.description)
        assert_no_password(repr(store))
    finally:
        await store.aclose()


def test_key_and_prefix() -> None:
    store = RedisTokenStore("redis://localhost", key="grant-7", prefix="app:")
    assert store.key == "app:grant-7"
    assert store.lock_key == "app:grant-7:lock"


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"key": ""}, ValueError),
        ({"key": 3}, ValueError),
        ({"key": "k", "prefix": None}, TypeError),
        ({"key": "k", "lock_timeout": -1}, ValueError),
        ({"key": "k", "lock_timeout": float("nan")}, ValueError),
        ({"key": "k", "lock_expiry": 0}, ValueError),
        ({"key": "k", "lock_expiry": "60"}, TypeError),
    ],
)
def test_bad_options(options: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        RedisTokenStore("redis://localhost", **options)  # type: ignore[arg-type]


def test_bad_url_does_not_echo_it() -> None:
    with pytest.raises(ValueError, match="not a Redis URL") as info:
        RedisTokenStore(f"http://user:{PASSWORD}@db.example", key="k")
    assert_no_password(str(info.value))


def test_neither_url_nor_client() -> None:
    with pytest.raises(TypeError, match="url_or_client"):
        RedisTokenStore(6379, key="k")  # type: ignore[arg-type]


def test_importing_without_redis_says_how_to_install() -> None:
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "try:\n"
        "    import netrex_async.stores.redis\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    assert "pip install 'netrex-async[redis]'" in out


@pytest.mark.asyncio
async def test_connection_error_is_a_store_error_without_the_password() -> None:
    port = closed_port()
    store = RedisTokenStore(
        f"redis://user:{PASSWORD}@127.0.0.1:{port}/15", key="grant", lock_timeout=1
    )
    async with store:
        operations = [store.load(), store.save(make_token()), store.clear()]
        for op in operations:
            with pytest.raises(TokenStoreError) as info:
                await op
            assert_no_password(str(info.value))
            assert info.value.store == store.description
            assert f"127.0.0.1:{port}" in str(info.value)
            assert isinstance(info.value.__cause__, redis.exceptions.ConnectionError)
        with pytest.raises(TokenStoreError) as info:
            async with store.lock():
                pytest.fail("locked without a server")
        assert_no_password(str(info.value))


@pytest.mark.asyncio
async def test_closed_store_refuses_work() -> None:
    store = RedisTokenStore("redis://127.0.0.1:1", key="k")
    await store.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await store.load()


# -- against a server ---------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.asyncio
async def test_value_is_the_token_json_under_the_prefixed_key(
    redis_url: str, redis_key: str, raw: redis.asyncio.Redis
) -> None:
    token = make_token()
    async with RedisTokenStore(redis_url, key=redis_key, prefix=REDIS_PREFIX) as store:
        await store.save(token)
    stored = await raw.get(REDIS_PREFIX + redis_key)
    assert json.loads(stored) == token.to_dict()


@pytest.mark.redis
@pytest.mark.asyncio
async def test_borrowed_client_is_not_closed(redis_url: str, redis_key: str) -> None:
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        token = make_token()
        async with RedisTokenStore(client, key=redis_key, prefix=REDIS_PREFIX) as store:
            await store.save(token)
            loaded = await store.load()  # decode_responses=True: a str comes back
            assert loaded is not None
            assert loaded.to_dict() == token.to_dict()
            assert repr(store).endswith("owns_client=False)")
        assert await client.ping()
    finally:
        await client.aclose()


@pytest.mark.redis
@pytest.mark.asyncio
async def test_borrowed_client_description_has_no_password(redis_url: str) -> None:
    client = redis.asyncio.Redis.from_url(redis_url, password=PASSWORD)
    try:
        store = RedisTokenStore(client, key="k")
        assert_no_password(store.description)
        assert_no_password(repr(store))
    finally:
        await client.aclose()


@pytest.mark.redis
@pytest.mark.asyncio
async def test_lock_expires_when_the_holder_never_releases(
    redis_url: str, redis_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="netrex_async.stores")
    hung = RedisTokenStore(redis_url, key=redis_key, prefix=REDIS_PREFIX, lock_expiry=0.3)
    waiter = RedisTokenStore(redis_url, key=redis_key, prefix=REDIS_PREFIX, lock_timeout=3)
    async with hung, waiter:
        async with hung.lock():
            started = time.monotonic()
            async with waiter.lock():
                assert 0.1 < time.monotonic() - started < 2
        # The hung holder finds out when it finally lets go: logged, not raised.
        lost = [r for r in caplog.records if r.event == "store.lock_lost"]
        assert len(lost) == 1
        assert lost[0].store == hung.description


@pytest.mark.redis
@pytest.mark.asyncio
async def test_late_release_does_not_free_the_new_holders_lock(
    redis_url: str, redis_key: str
) -> None:
    hung = RedisTokenStore(redis_url, key=redis_key, prefix=REDIS_PREFIX, lock_expiry=0.2)
    waiter = RedisTokenStore(redis_url, key=redis_key, prefix=REDIS_PREFIX, lock_timeout=3)
    third = RedisTokenStore(redis_url, key=redis_key, prefix=REDIS_PREFIX, lock_timeout=0.2)
    async with hung, waiter, third:
        hung_cm = hung.lock()
        await hung_cm.__aenter__()
        async with waiter.lock():
            await hung_cm.__aexit__(None, None, None)  # too late: the lock is the waiter's
            with pytest.raises(TokenStoreError):
                async with third.lock():
                    pytest.fail("the late release freed someone else's lock")


@pytest.mark.redis
@pytest.mark.asyncio
async def test_cancelled_acquire_whose_set_reached_redis_is_released(
    redis_url: str, redis_key: str, raw: redis.asyncio.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled after SET NX succeeded but before the answer came back."""
    from redis.asyncio.lock import Lock

    reached = asyncio.Event()
    real = Lock.do_acquire

    async def slow_answer(self: Lock, token: bytes) -> bool:
        ok = await real(self, token)
        reached.set()
        await asyncio.sleep(3600)
        return ok

    monkeypatch.setattr(Lock, "do_acquire", slow_answer)
    store = RedisTokenStore(redis_url, key=redis_key, prefix=REDIS_PREFIX)
    async with store:
        task = asyncio.create_task(store.lock().__aenter__())
        await reached.wait()
        assert await raw.get(store.lock_key) is not None
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        monkeypatch.undo()
    # aclose() waited for the clean-up release.
    assert await raw.get(store.lock_key) is None


@pytest.mark.redis
@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_lock_of_a_killed_holder_expires(
    redis_url: str, redis_key: str, python: list[str]
) -> None:
    proc = subprocess.Popen(
        [*python, "redis-hold", redis_url, redis_key, REDIS_PREFIX, "0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.to_thread(proc.stdout.readline)
        assert line.strip() == "locked", proc.stderr.read() if proc.stderr else ""
    finally:
        proc.kill()
        proc.communicate()
    started = time.monotonic()
    async with (
        RedisTokenStore(redis_url, key=redis_key, prefix=REDIS_PREFIX, lock_timeout=5) as store,
        store.lock(),
    ):
        pass
    assert time.monotonic() - started < 3
