"""Token stores under attack and accident: corrupt files, symlinks, loose permissions,
stuck and dead lock holders, Redis going away, and processes killed mid-save."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from netrex_async import (
    NetrexClient,
    OAuth2Client,
    RetryPolicy,
    Token,
    TokenManager,
    TokenStoreError,
)
from netrex_async._stores._file import FileTokenStore

from ._helpers import TcpProxy, expired_token

REDIS_URL = os.environ.get("NETREX_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _write(path: Path, raw: bytes, mode: int = 0o600) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, raw)
    finally:
        os.close(fd)
    os.chmod(path, mode)


@pytest.fixture(name="path")
def _path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "token.json"


# -- what is in the file ----------------------------------------------------------------


def _corrupt_contents(token: Token) -> dict[str, bytes]:
    full = (
        b'{"version": 1, "access_token": "%s", "refresh_token": "%s", "issued_at": 1}'
        % (token.access_token.encode(), token.refresh_token.encode())  # type: ignore[union-attr]
    )
    return {
        "empty": b"",
        "whitespace": b" \n\t\n",
        "not JSON": b"access_token=" + token.access_token.encode(),
        "truncated": full[: len(full) // 2 + 20],
        "binary": b"\xff\xfe\x00\x01" * 8,
        "array": b"[]",
        "string": b'"' + token.access_token.encode() + b'"',
        "null": b"null",
        "number access_token": b'{"access_token": 12345678901, "issued_at": 1}',
        "no access_token": b'{"refresh_token": "%s", "issued_at": 1}'
        % token.refresh_token.encode(),  # type: ignore[union-attr]
        "text issued_at": b'{"access_token": "%s", "issued_at": "yesterday"}'
        % token.access_token.encode(),
        "expiry before issue": b'{"access_token": "%s", "issued_at": 10, "expires_at": 5}'
        % token.access_token.encode(),
        "future version": b'{"version": 99, "access_token": "%s", "issued_at": 1}'
        % token.access_token.encode(),
        "scopes not a list": b'{"access_token": "%s", "issued_at": 1, "scopes": 7}'
        % token.access_token.encode(),
    }


CORRUPT_KINDS = list(_corrupt_contents(Token(access_token="a", refresh_token="r")))


@pytest.mark.parametrize("kind", CORRUPT_KINDS)
async def test_corrupt_file_is_reported_and_left_alone(fake, oauth, path, secret_registry, kind):
    token = fake.issue_token()
    raw = _corrupt_contents(token)[kind]
    _write(path, raw)
    manager = TokenManager(oauth, FileTokenStore(path), background=False)
    with pytest.raises(TokenStoreError) as e:
        await manager.token()
    assert str(path) in str(e.value)
    assert e.value.store == str(path)
    assert path.read_bytes() == raw  # never replaced behind the caller's back
    assert fake.counters.requests["token"] == 0
    secret_registry.check(e)
    with pytest.raises(TokenStoreError):
        await FileTokenStore(path).save(token)
    assert path.read_bytes() == raw


async def test_file_corrupted_while_running_keeps_the_valid_token(fake, oauth, path):
    token = fake.issue_token()
    store = FileTokenStore(path)
    await store.save(token)
    manager = TokenManager(oauth, store, background=False)
    assert await manager.token() == token.access_token
    _write(path, b'{"access_token": ')
    with pytest.raises(TokenStoreError):
        await manager.refresh()
    assert await manager.token() == token.access_token  # still valid: still served
    assert fake.counters.requests["token"] == 0


# -- where the file is ------------------------------------------------------------------


async def test_symlink_at_the_path_is_refused(fake, path, tmp_path, secret_registry):
    token = fake.issue_token()
    elsewhere = tmp_path / "elsewhere.json"
    await FileTokenStore(elsewhere).save(token)
    before = elsewhere.read_bytes()
    path.parent.mkdir(mode=0o700)
    path.symlink_to(elsewhere)
    store = FileTokenStore(path)
    with pytest.raises(TokenStoreError, match="symlink") as e:
        await store.load()
    secret_registry.check(e)
    with pytest.raises(TokenStoreError, match="symlink"):
        await store.save(fake.issue_token())
    with pytest.raises(TokenStoreError, match="symlink"):
        await store.clear()
    assert elsewhere.read_bytes() == before  # nothing written through the link
    assert path.is_symlink()


async def test_dangling_symlink_is_not_followed_on_save(fake, path, tmp_path):
    target = tmp_path / "planted" / "token.json"
    target.parent.mkdir()
    path.parent.mkdir(mode=0o700)
    path.symlink_to(target)
    with pytest.raises(TokenStoreError, match="symlink"):
        await FileTokenStore(path).save(fake.issue_token())
    assert not target.exists()


async def test_symlink_at_the_lock_path_is_refused(path, tmp_path):
    store = FileTokenStore(path, lock_timeout=1)
    path.parent.mkdir(mode=0o700)
    target = tmp_path / "victim"
    target.write_text("do not touch")
    store.lock_path.symlink_to(target)
    with pytest.raises(TokenStoreError):
        async with store.lock():
            pass
    assert target.read_text() == "do not touch"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o666, 0o660])
async def test_loose_permissions_are_tightened_with_a_warning(fake, path, caplog, mode):
    token = fake.issue_token()
    await FileTokenStore(path).save(token)
    os.chmod(path, mode)
    with caplog.at_level(logging.WARNING, logger="netrex_async.stores"):
        assert await FileTokenStore(path).load() == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    events = [getattr(r, "event", None) for r in caplog.records]
    assert "store.permissions_tightened" in events


async def test_new_file_and_folders_are_private_whatever_the_umask(fake, tmp_path):
    path = tmp_path / "a" / "b" / "token.json"
    old = os.umask(0)
    try:
        store = FileTokenStore(path)
        async with store.lock():
            await store.save(fake.issue_token())
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(FileTokenStore(path).lock_path.stat().st_mode) == 0o600


# -- locks ------------------------------------------------------------------------------


async def test_lock_timeout_names_the_file(fake, oauth, path, secret_registry):
    await FileTokenStore(path).save(expired_token(fake))
    holder = FileTokenStore(path)
    waiter = FileTokenStore(path, lock_timeout=0.2)
    manager = TokenManager(oauth, waiter, background=False, min_refresh_interval=0.01)
    async with holder.lock():
        started = time.monotonic()
        with pytest.raises(TokenStoreError, match="not acquired within") as e:
            await manager.token()
        assert time.monotonic() - started < 2
    assert str(path) in str(e.value)
    secret_registry.check(e)
    assert fake.counters.requests["token"] == 0
    await asyncio.sleep(0.02)  # past the failed refresh's back-off
    assert fake.is_valid(await manager.token())  # the holder is gone: it works


_HOLD = textwrap.dedent(
    """
    import asyncio, sys
    from netrex_async._stores._file import FileTokenStore

    async def main():
        async with FileTokenStore(sys.argv[1]).lock():
            print("locked", flush=True)
            await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


async def test_dead_lock_holder_does_not_block(fake, oauth, path):
    await FileTokenStore(path).save(expired_token(fake))
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        line = await asyncio.wait_for(asyncio.to_thread(holder.stdout.readline), 30)  # type: ignore[union-attr]
        assert line.strip() == "locked"
        waiter = FileTokenStore(path, lock_timeout=0.3)
        with pytest.raises(TokenStoreError):
            async with waiter.lock():
                pass
        holder.send_signal(signal.SIGKILL)
        await asyncio.to_thread(holder.wait)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        holder.stdout.close()  # type: ignore[union-attr]
    manager = TokenManager(oauth, FileTokenStore(path, lock_timeout=2), background=False)
    started = time.monotonic()
    assert fake.is_valid(await manager.token())
    assert time.monotonic() - started < 2


_SAVE_AND_KILL = textwrap.dedent(
    """
    import asyncio, os, random, signal, sys, time
    from netrex_async import Token
    from netrex_async._stores._file import FileTokenStore

    path, rounds = sys.argv[1], int(sys.argv[2])

    async def save_forever():
        store = FileTokenStore(path)
        n = 0
        while True:
            now = time.time()
            pad = "x" * (4096 + n % 997)  # more than a page per write
            await store.save(Token(access_token=f"at-{n}-{pad}", refresh_token=f"rt-{n}-xxxxxxxx",
                                   issued_at=now, expires_at=now + 3600))
            n += 1

    async def check():
        token = await FileTokenStore(path).load()
        assert token is not None and token.access_token.startswith("at-")

    asyncio.run(FileTokenStore(path).save(Token(access_token="at-first", issued_at=time.time())))
    for _ in range(rounds):
        pid = os.fork()
        if pid == 0:
            asyncio.run(save_forever())
            os._exit(0)
        time.sleep(random.uniform(0.002, 0.03))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        asyncio.run(check())
    print("ok", rounds, flush=True)
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_sigkill_during_save_leaves_a_loadable_file(path):
    rounds = 25
    path.parent.mkdir(mode=0o700)
    done = subprocess.run(
        [sys.executable, "-c", _SAVE_AND_KILL, str(path), str(rounds)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["ok", str(rounds)]


# -- Redis ------------------------------------------------------------------------------


def _redis_or_skip() -> None:
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as e:
        if os.environ.get("NETREX_REQUIRE_REDIS") == "1":
            pytest.fail(f"Redis is required but not reachable: {type(e).__name__}")
        pytest.skip(f"Redis not reachable ({type(e).__name__})")


@pytest.fixture(name="redis_key")
def _redis_key() -> Iterator[str]:
    _redis_or_skip()
    import redis

    key = f"hardening-{uuid.uuid4().hex}"
    yield key
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.delete(f"netrex_async_test:{key}", f"netrex_async_test:{key}:lock")
    finally:
        client.close()


@pytest.fixture(name="redis_proxy")
async def _redis_proxy() -> AsyncIterator[TcpProxy]:
    from yarl import URL

    url = URL(REDIS_URL)
    async with TcpProxy(url.host or "127.0.0.1", url.port or 6379) as proxy:
        yield proxy


def _via(proxy: TcpProxy) -> str:
    from yarl import URL

    return str(URL(REDIS_URL).with_port(proxy.port))


@pytest.mark.redis
async def test_redis_down_during_a_refresh(fake, app, redis_key, redis_proxy):
    from netrex_async.stores.redis import RedisTokenStore

    now = time.time()
    issued = fake.issue_token(expires_in=3600)
    # Stale (less than the 300 s margin left) but valid for a while yet.
    stale = Token(
        access_token=issued.access_token,
        refresh_token=issued.refresh_token,
        issued_at=now - 3500,
        expires_at=now + 100,
    )
    # A lock whose release was lost with Redis stays until its lease ends: a short one
    # (and a manager whose worst case fits in it), so the test need not wait a minute.
    async with (
        RedisTokenStore(
            _via(redis_proxy),
            key=redis_key,
            prefix="netrex_async_test:",
            lock_timeout=2,
            lock_expiry=6,
        ) as store,
        OAuth2Client(app, retry=RetryPolicy(attempts=2, max_time=1)) as oauth,
    ):
        await store.save(stale)
        async with TokenManager(oauth, store, store_timeout=0.5, save_timeout=0.5) as manager:
            assert await manager.token() == stale.access_token
            await redis_proxy.stop()  # Redis is gone
            with pytest.raises(TokenStoreError, match="Redis"):
                await manager.refresh()
            async with NetrexClient(manager, provider=fake.provider) as client:
                for _ in range(20):  # callers keep working on the still-valid token
                    assert (await client.graphql("{cameraList{name}}"))["cameraList"]
                    await asyncio.sleep(0.005)
            assert manager.stats.failures >= 1
            assert manager.stats.refreshes == 0
            assert fake.counters.requests["token"] == 0  # nothing refreshed without the lock
            await redis_proxy.start()  # back, on the same port
            for _ in range(500):  # the background refresh backs off: 1 s, 2 s, 4 s...
                if manager.stats.refreshes:
                    break
                await asyncio.sleep(0.02)
            assert manager.stats.refreshes == 1
            await manager.settle()  # the new token is used before its save ends
            assert (await store.load()).access_token == await manager.token()


@pytest.mark.redis
async def test_redis_down_with_an_expired_token_is_a_store_error(
    fake, oauth, redis_key, redis_proxy
):
    from netrex_async.stores.redis import RedisTokenStore

    token = expired_token(fake)
    async with RedisTokenStore(
        _via(redis_proxy), key=redis_key, prefix="netrex_async_test:", lock_timeout=2
    ) as store:
        await store.save(token)
        await redis_proxy.stop()
        manager = TokenManager(oauth, store, background=False, min_refresh_interval=0.05)
        with pytest.raises(TokenStoreError, match="Redis"):
            await manager.token()
        assert fake.counters.requests["token"] == 0
        await redis_proxy.start()
        await asyncio.sleep(0.06)  # past the failed refresh's back-off
        assert fake.is_valid(await manager.token())
        await manager.aclose()


@pytest.mark.redis
async def test_corrupt_redis_value_is_reported_and_left_alone(
    fake, oauth, redis_key, secret_registry
):
    import redis.asyncio

    from netrex_async.stores.redis import RedisTokenStore

    token = fake.issue_token()
    raw = b'{"access_token": "' + token.access_token.encode() + b'", "issued_'
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    try:
        await client.set(f"netrex_async_test:{redis_key}", raw)
        async with RedisTokenStore(REDIS_URL, key=redis_key, prefix="netrex_async_test:") as store:
            manager = TokenManager(oauth, store, background=False)
            with pytest.raises(TokenStoreError, match="corrupt") as e:
                await manager.token()
        assert await client.get(f"netrex_async_test:{redis_key}") == raw
    finally:
        await client.aclose()
    secret_registry.check(e)


_HOLD_REDIS = textwrap.dedent(
    """
    import asyncio, sys
    from netrex_async.stores.redis import RedisTokenStore

    async def main():
        store = RedisTokenStore(sys.argv[1], key=sys.argv[2], prefix="netrex_async_test:",
                                lock_expiry=0.5)
        async with store.lock():
            print("locked", flush=True)
            await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


@pytest.mark.redis
async def test_dead_redis_lock_holder_is_recovered_after_the_lock_expiry(fake, oauth, redis_key):
    from netrex_async.stores.redis import RedisTokenStore

    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_REDIS, REDIS_URL, redis_key],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = await asyncio.wait_for(asyncio.to_thread(holder.stdout.readline), 30)  # type: ignore[union-attr]
        assert line.strip() == "locked"
        holder.send_signal(signal.SIGKILL)  # dies holding the lock: never released
        await asyncio.to_thread(holder.wait)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        holder.stdout.close()  # type: ignore[union-attr]
    async with RedisTokenStore(
        REDIS_URL, key=redis_key, prefix="netrex_async_test:", lock_timeout=5
    ) as store:
        await store.save(expired_token(fake))
        manager = TokenManager(oauth, store, background=False)
        started = time.monotonic()
        assert fake.is_valid(await manager.token())  # after Redis dropped the dead lock
        assert time.monotonic() - started < 3


async def test_redis_password_never_shows_when_redis_is_unreachable(secret_registry):
    from netrex_async.stores.redis import RedisTokenStore

    password = "redis-pa55word-that-is-secret"
    secret_registry.add(password)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    url = f"redis://netrex:{password}@127.0.0.1:{port}/15"
    async with RedisTokenStore(url, key="k", lock_timeout=1) as store:
        with pytest.raises(TokenStoreError) as e:
            await store.load()
        secret_registry.check(e, store, store.description)
        with pytest.raises(TokenStoreError) as e:
            async with store.lock():
                pass
        secret_registry.check(e)
