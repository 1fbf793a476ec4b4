"""RedisCheckpoint: a cursor in Redis, one collector per key, fenced commits, a standby
that takes over a lease after the holder died. Real Redis (db 15, keys of the test's own),
real processes for the kill."""

from __future__ import annotations

import asyncio
import subprocess
import time

import pytest
import redis.asyncio as aioredis
from store_helpers import REDIS_PREFIX

from netrex_async import CheckpointLost, MemoryCheckpoint, NetrexClient, TokenStoreError
from netrex_async._checkpoints import Checkpoint
from netrex_async.stores.redis import RedisCheckpoint
from netrex_async.testing import FakeNetrex

pytestmark = pytest.mark.redis

QUERY = "query($after: ID, $limit: Int) { events(afterId: $after, limit: $limit) { id } }"


def checkpoint(url: str, key: str, **options: object) -> RedisCheckpoint:
    return RedisCheckpoint(url, key=key, prefix=REDIS_PREFIX, **options)  # type: ignore[arg-type]


async def test_round_trip_and_clear(redis_url: str, redis_key: str) -> None:
    async with checkpoint(redis_url, redis_key) as cp:
        assert isinstance(cp, Checkpoint)
        assert await cp.load() is None
        await cp.save("17")  # outside lock(): a plain SET (tools, tests)
        assert await cp.load() == "17"
        async with cp.lock():
            await cp.save(18)
        assert await cp.load() == 18
        await cp.clear()
        assert await cp.load() is None
    assert "password" not in repr(cp)


async def test_a_corrupt_value_is_an_error_naming_the_key_and_left_alone(
    redis_url: str, redis_key: str
) -> None:
    raw = aioredis.Redis.from_url(redis_url)
    try:
        await raw.set(REDIS_PREFIX + redis_key, b'{"version": 1, "cur')
        async with checkpoint(redis_url, redis_key) as cp:
            with pytest.raises(TokenStoreError, match="checkpoint in Redis .* is corrupt") as e:
                await cp.load()
            assert REDIS_PREFIX + redis_key in str(e.value)
        assert await raw.get(REDIS_PREFIX + redis_key) == b'{"version": 1, "cur'
    finally:
        await raw.aclose()


async def test_a_commit_after_the_lease_was_lost_writes_nothing(
    redis_url: str, redis_key: str
) -> None:
    raw = aioredis.Redis.from_url(redis_url)
    try:
        async with checkpoint(redis_url, redis_key) as cp, cp.lock():
            await cp.save("1")
            # Another collector owns the lock now (the lease ran out, someone took it).
            await raw.set(cp.lock_key, b"someone-else")
            with pytest.raises(CheckpointLost, match="nothing was committed"):
                await cp.save("2")
            with pytest.raises(CheckpointLost):
                await cp.save("3")  # and it stays lost
            assert await cp.load() == "1"
            await raw.delete(cp.lock_key)
    finally:
        await raw.aclose()


async def test_a_standby_takes_over_when_the_holder_stops(redis_url: str, redis_key: str) -> None:
    async with (
        checkpoint(redis_url, redis_key) as first,
        checkpoint(redis_url, redis_key, lock_timeout=0.2) as second,
    ):
        got_it = asyncio.Event()

        async def standby() -> None:
            async with second.lock():
                got_it.set()

        async with first.lock():
            task = asyncio.create_task(standby())
            await asyncio.sleep(1.0)  # several attempts of 0.2 s, each busy
            assert not got_it.is_set()
        await asyncio.wait_for(task, 5)


@pytest.mark.slow
async def test_a_killed_holder_is_taken_over_within_the_lease(
    redis_url: str, redis_key: str, python: list[str]
) -> None:
    lease = 1.5
    holder = subprocess.Popen(
        [*python, "redis-hold", redis_url, redis_key, REDIS_PREFIX, str(lease)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert await asyncio.to_thread(holder.stdout.readline) == "locked\n"
        async with checkpoint(redis_url, redis_key, lock_timeout=0.5) as cp:
            got_it, done = asyncio.Event(), asyncio.Event()

            async def standby() -> None:
                async with cp.lock():
                    got_it.set()
                    await done.wait()

            task = asyncio.create_task(standby())
            await asyncio.sleep(2 * lease)
            assert not got_it.is_set()  # the holder renews its lease while it lives
            holder.kill()
            killed = time.monotonic()
            await asyncio.wait_for(got_it.wait(), 10)
            taken = time.monotonic() - killed
            done.set()
            await task
        assert taken <= lease + 1.0
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


async def test_collect_with_a_redis_checkpoint_resumes_and_stops_when_lost(
    redis_url: str, redis_key: str
) -> None:
    async with FakeNetrex() as fake:
        for _ in range(16):
            fake.add_event("1")
        token = fake.issue_token()
        options = {
            "items": "events",
            "cursor": "after",
            "key": "id",
            "every": 0.05,
            "page_size": 5,
            "page_size_variable": "limit",
        }
        async with (
            NetrexClient(token.access_token, provider=fake.provider) as client,
            checkpoint(redis_url, redis_key) as cp,
        ):
            async with client.collect(QUERY, checkpoint=cp, **options) as batches:  # type: ignore[arg-type]
                await anext(batches)
                await anext(batches)  # commits "5"
            assert await cp.load() == "5"
            raw = aioredis.Redis.from_url(redis_url)
            try:
                async with client.collect(QUERY, checkpoint=cp, **options) as batches:  # type: ignore[arg-type]
                    assert [e["id"] for e in await anext(batches)] == ["6", "7", "8", "9", "10"]
                    await raw.set(cp.lock_key, b"a-collector-that-took-over")
                    with pytest.raises(CheckpointLost):
                        await anext(batches)
                await raw.delete(cp.lock_key)
            finally:
                await raw.aclose()
            assert await cp.load() == "5"
    assert isinstance(MemoryCheckpoint(), Checkpoint)
