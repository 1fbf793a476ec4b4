"""A process killed while it holds the refresh lock: the fleet goes on without it.

The holder is a real process, SIGKILLed mid-transaction (lock held, refresh token not yet
presented). The file lock dies with it (the kernel drops it); the Redis lock, renewed
while its holder lives, expires one lease after the kill. Either way the next process
refreshes once, within a bound, and the grant stays alive.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from hardening._helpers import app_for

from netrex_async import FileTokenStore, OAuth2Client, Token, TokenManager
from netrex_async.testing import FakeNetrex

HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    from netrex_async import FileTokenStore

    async def main():
        kind, where = sys.argv[1], sys.argv[2]
        if kind == "file":
            store = FileTokenStore(where)
        else:
            from netrex_async.stores.redis import RedisTokenStore
            url, key = where.split(" ")
            store = RedisTokenStore(url, key=key, prefix="", lock_expiry=2)
        async with store.lock():
            await store.load()
            print("locked", flush=True)
            await asyncio.sleep(3600)  # "presenting the refresh token" never comes

    asyncio.run(main())
    """
)


def _expired(fake: FakeNetrex) -> Token:
    issued = fake.issue_token(expires_in=3600)
    now = time.time()
    return Token(
        access_token=issued.access_token,
        refresh_token=issued.refresh_token,
        issued_at=now - 3600,
        expires_at=now - 1,
    )


async def _holder(kind: str, where: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLDER,
        kind,
        where,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert line.strip() == b"locked", line
    return proc


async def _refresh_after_kill(fake: FakeNetrex, store: object, holder, bound: float) -> None:  # type: ignore[no-untyped-def]
    async with OAuth2Client(app_for(fake)) as oauth:
        manager = TokenManager(oauth, store, background=False)  # type: ignore[arg-type]
        call = asyncio.create_task(manager.token())
        await asyncio.sleep(0.3)
        assert not call.done(), "the lock holder is alive: the call must wait for it"
        assert fake.counters.token_requests["refresh_token"] == 0
        started = time.monotonic()
        holder.send_signal(signal.SIGKILL)
        await holder.wait()
        token = await asyncio.wait_for(call, bound + 5)
        assert time.monotonic() - started <= bound + 1
        assert fake.is_valid(token)
        assert fake.counters.token_requests["refresh_token"] == 1
        assert fake.counters.reuse_detected == 0
        await manager.aclose()


async def test_file_lock_holder_killed_mid_refresh(tmp_path: Path):
    async with FakeNetrex(rotate_refresh_tokens=True, reuse_detection=True) as fake:
        path = tmp_path / "token.json"
        await FileTokenStore(path).save(_expired(fake))
        holder = await _holder("file", str(path))
        # the kernel drops the flock at once
        await _refresh_after_kill(fake, FileTokenStore(path), holder, bound=1.0)


@pytest.mark.redis
async def test_redis_lock_holder_killed_mid_refresh(redis_url: str):
    from netrex_async.stores.redis import RedisTokenStore

    key = f"netrex_async_test:holder-{uuid.uuid4().hex}"
    async with FakeNetrex(rotate_refresh_tokens=True, reuse_detection=True) as fake:
        async with RedisTokenStore(redis_url, key=key, prefix="") as store:
            await store.save(_expired(fake))
            try:
                holder = await _holder("redis", f"{redis_url} {key}")
                # renewed while the holder lived; one lease (2 s) after the kill it expires
                await _refresh_after_kill(fake, store, holder, bound=2.0 + 0.5)
            finally:
                await store.clear()
