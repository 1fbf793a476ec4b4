"""RedisTokenStore: credentials, connection errors, lock expiry, client ownership."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import redis.asyncio
from store_helpers import REDIS_PREFIX, SECRET_MARK, make_token

from netrex_async import TokenStoreError
from netrex_async._errors import ClosedError
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


def test_url_clients_get_timeouts_health_checks_and_a_retry() -> None:
    store = RedisTokenStore("redis://db.example/0", key="k")
    kwargs = store._client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 5.0
    assert kwargs["socket_connect_timeout"] == 5.0
    assert kwargs["health_check_interval"] == 15.0
    assert kwargs["retry"].get_retries() == 3
    # 4 attempts x (5 s connect + 5 s answer) + back-offs 0.2 + 0.4 + 0.8
    assert store.operation_timeout == pytest.approx(41.4)
    assert store.lease == 60.0
    assert store.lock_timeout == 75.0


def test_url_query_wins_over_the_arguments() -> None:
    store = RedisTokenStore(
        "redis://db.example/0?socket_timeout=2&health_check_interval=3",
        key="k",
        socket_timeout=9,
        connect_timeout=1,
        retries=1,
    )
    kwargs = store._client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 2.0
    assert kwargs["socket_connect_timeout"] == 1.0
    assert kwargs["health_check_interval"] == 3
    assert kwargs["retry"].get_retries() == 1
    assert store.operation_timeout == pytest.approx(2 * (2 + 1) + 0.2)
    assert RedisTokenStore("redis://x", key="k", operation_timeout=3).operation_timeout == 3


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"socket_timeout": 0}, ValueError),
        ({"connect_timeout": float("inf")}, ValueError),
        ({"health_check_interval": -1}, ValueError),
        ({"retries": -1}, ValueError),
        ({"retries": 1.5}, TypeError),
        ({"operation_timeout": 0}, ValueError),
        ({"service_name": "svc"}, TypeError),
        ({"wait_replicas": -1}, ValueError),
        ({"wait_replicas": True}, TypeError),
        ({"wait_timeout": 0}, ValueError),
    ],
)
def test_bad_connection_options(options: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        RedisTokenStore("redis://localhost", key="k", **options)  # type: ignore[arg-type]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("url", "server", "db", "master_auth"),
    [
        (
            "redis+sentinel://s1.example:26380,s2.example/svc",
            "redis+sentinel://s1.example:26380,s2.example:26379/svc/0",
            0,
            {},
        ),
        (
            f"redis+sentinel://:{PASSWORD}@s1.example/svc/3",
            "redis+sentinel://s1.example:26379/svc/3",
            3,
            {"password": PASSWORD},
        ),
        (
            f"redis+sentinel://app:{PASSWORD}@[::1]:26390,10.0.0.2:26391/my%20svc/"
            f"?sentinel_password={PASSWORD}x",
            "redis+sentinel://[::1]:26390,10.0.0.2:26391/my svc/0",
            0,
            {"username": "app", "password": PASSWORD},
        ),
    ],
)
async def test_sentinel_url(url: str, server: str, db: int, master_auth: dict[str, str]) -> None:
    async with RedisTokenStore(url, key="grant") as store:
        assert store.description == f"{server} key netrex_async:grant"
        assert_no_password(store.description)
        assert_no_password(repr(store))
        pool = store._client.connection_pool
        assert pool.connection_kwargs["db"] == db
        for name in ("username", "password"):
            assert pool.connection_kwargs.get(name) == master_auth.get(name)
        assert pool.connection_kwargs["socket_timeout"] == 5.0
        assert pool.connection_kwargs["retry"].get_retries() == 3
        for sentinel in pool.sentinel_manager.sentinels:
            skw = sentinel.connection_pool.connection_kwargs
            assert skw["socket_timeout"] == 5.0
            assert skw.get("password") == (PASSWORD + "x" if "sentinel_password" in url else None)


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://s1.example:26379",  # no service
        "redis+sentinel://s1.example/svc/x",  # db not a number
        "redis+sentinel://s1.example/svc/1/2",
        "redis+sentinel://s1.example,,s2/svc",
        "redis+sentinel://s1.example:99999/svc",
        f"redis+sentinel://s1.example/svc?password={PASSWORD}",  # unknown option
        f"redis+sentinel://u:{PASSWORD}@/svc",
    ],
)
def test_bad_sentinel_url_does_not_echo_it(url: str) -> None:
    with pytest.raises(ValueError, match="not a Redis Sentinel URL") as info:
        RedisTokenStore(url, key="k")
    assert_no_password(str(info.value))


@pytest.mark.asyncio
async def test_a_given_sentinel_needs_a_service_name_and_stays_open() -> None:
    from redis.asyncio.sentinel import Sentinel

    sentinel = Sentinel([("s1.example", 26379)], socket_timeout=1.5)
    with pytest.raises(TypeError, match="service_name"):
        RedisTokenStore(sentinel, key="k")
    store = RedisTokenStore(sentinel, key="k", service_name="svc")
    kwargs = store._client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 1.5  # the Sentinel's own setting is kept
    assert kwargs["retry"].get_retries() == 3  # what it left out is added
    assert store.description == "redis+sentinel://s1.example:26379/svc/0 key netrex_async:k"
    await store.aclose()
    for client in sentinel.sentinels:  # (Sentinel.aclose() is new in redis-py 8.1)
        await client.aclose()


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


def test_without_redis_the_error_is_extra_required_with_the_clone_install_too(
    tmp_path: Path,
) -> None:
    # Like every missing extra (graphql, testing): from an index, or from a clone.
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "from netrex_async import NetrexError\n"
        "from netrex_async._errors import ExtraRequired\n"
        "try:\n"
        "    import netrex_async.stores.redis\n"
        "except ImportError as e:\n"
        "    assert isinstance(e, ExtraRequired) and isinstance(e, NetrexError), type(e)\n"
        "    print(e.extra, e.name)\n"
        "    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        cwd=tmp_path,  # the installed package, not one in the current folder
    ).stdout
    assert out.splitlines()[0] == "redis redis"
    assert "pip install 'netrex-async[redis]'" in out
    assert "in a clone of the repository: pip install -e '.[redis]'" in out


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
    for op in (store.load(), store.save(make_token()), store.clear(), store.check_lease()):
        with pytest.raises(ClosedError, match="closed"):
            await op
    with pytest.raises(ClosedError, match="closed"):
        store.lock()
    assert issubclass(ClosedError, RuntimeError)


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
async def test_a_held_lock_is_renewed_past_its_expiry(
    redis_url: str, redis_key: str, raw: redis.asyncio.Redis
) -> None:
    """The holder works for 2.5 leases; the renewal keeps everyone else out meanwhile."""
    holder = RedisTokenStore(redis_url, key=redis_key, prefix=REDIS_PREFIX, lock_expiry=1.0)
    waiter = RedisTokenStore(redis_url, key=redis_key, prefix=REDIS_PREFIX, lock_timeout=0)
    async with holder, waiter:
        assert holder.lease == 1.0
        async with holder.lock():
            loop = asyncio.get_running_loop()
            end = loop.time() + 2.5
            while loop.time() < end:
                with pytest.raises(TokenStoreError, match="not acquired"):
                    async with waiter.lock():
                        pytest.fail("took a lock whose holder is alive")
                ttl = await raw.pttl(holder.lock_key)
                assert 0 < ttl <= 1000
                await asyncio.sleep(0.1)
            await holder.check_lease()  # still ours
        assert await raw.get(holder.lock_key) is None  # released on the way out
        async with waiter.lock():
            pass


@pytest.mark.redis
@pytest.mark.asyncio
async def test_check_lease_outside_lock_is_a_store_error(redis_url: str, redis_key: str) -> None:
    async with RedisTokenStore(redis_url, key=redis_key, prefix=REDIS_PREFIX) as store:
        with pytest.raises(TokenStoreError, match="outside lock"):
            await store.check_lease()
        async with store.lock():
            await store.check_lease()
        with pytest.raises(TokenStoreError, match="outside lock"):
            await store.check_lease()


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
