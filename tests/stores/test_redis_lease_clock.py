"""RedisTokenStore's lease arithmetic on a virtual event-loop clock (looptime).

The renewal's schedule and the moment a lease counts as lost are timing logic: here they
run against a lock whose renewals answer, fail or hang as each test says, on a loop clock
that only moves when every task sleeps, so minutes of leases take milliseconds and the
times asserted are exact. The real-Redis side of leases is in test_redis_faults.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import LockNotOwnedError

from netrex_async import TokenStoreError
from netrex_async.stores.redis import RedisTokenStore, _Hold

pytestmark = pytest.mark.looptime

LEASE = 30.0


class ScriptedLock:
    """Stands for redis-py's lock: each renewal runs the next step of a script."""

    def __init__(self, *steps: Callable[[], Awaitable[Any]]) -> None:
        self.steps = list(steps)
        self.start = asyncio.get_running_loop().time()
        #: When each renewal was sent, in seconds since the lock was taken.
        self.sent: list[float] = []

    async def reacquire(self) -> bool:
        self.sent.append(asyncio.get_running_loop().time() - self.start)
        step = self.steps.pop(0) if self.steps else ok
        await step()
        return True


async def ok() -> None:
    return None


async def hang() -> None:
    await asyncio.sleep(3600)


def slow(seconds: float) -> Callable[[], Awaitable[None]]:
    async def step() -> None:
        await asyncio.sleep(seconds)

    return step


def fail(error: Exception) -> Callable[[], Awaitable[None]]:
    async def step() -> None:
        raise error

    return step


def holding(lock: ScriptedLock, **options: Any) -> tuple[RedisTokenStore, _Hold]:
    """A store (never connected) that holds ``lock`` from now on, renewing it."""
    store = RedisTokenStore("redis://127.0.0.1:1", key="k", lock_expiry=LEASE, **options)
    loop = asyncio.get_running_loop()
    hold = _Hold(lock, b"owner", loop.time() + LEASE)  # type: ignore[arg-type]
    hold.renewer = loop.create_task(store._renew_loop(hold))
    store._hold = hold
    return store, hold


def lost_at(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == "store.lease_lost"]


async def test_renewed_every_third_of_the_lease_and_counted_from_the_send() -> None:
    lock = ScriptedLock(*[slow(2)] * 6)  # every renewal takes 2 s to answer
    store, hold = holding(lock)
    await asyncio.sleep(LEASE * 2 + 1)
    # every 10 s, after the previous renewal's 2 s answer
    assert lock.sent == pytest.approx([10, 22, 34, 46, 58])
    assert hold.lost is None
    # valid from the last send (58 s), not from its answer (60 s)
    assert hold.valid_until - lock.start == pytest.approx(58 + LEASE)
    await store.aclose()


async def test_a_hung_renewal_loses_the_lease_when_it_runs_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis stops answering at 10 s: lost at 0 + 30 s, before the 41.4 s cut-off."""
    lock = ScriptedLock(hang)
    store, hold = holding(lock)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.sleep(LEASE - 0.1)
    assert hold.lost is None
    await asyncio.sleep(0.2)
    assert hold.lost is not None
    assert "before it ran out" in hold.lost
    assert [r.created for r in lost_at(caplog)]  # logged once
    t = loop.time()
    with pytest.raises(TokenStoreError, match="was lost"):
        await store.check_lease()
    assert loop.time() == t  # no round trip: already known
    assert started + LEASE <= t
    await store.aclose()


async def test_a_failed_renewal_is_tried_again_while_time_is_left() -> None:
    lock = ScriptedLock(fail(RedisConnectionError("reset")), fail(RedisConnectionError("reset")))
    store, hold = holding(lock)
    await asyncio.sleep(LEASE + 5)  # failures at 10 and 20 s; at 30 s the lease ran out
    assert lock.sent == pytest.approx([10, 20])  # so the third is not even sent
    assert hold.lost is not None
    assert "ran out before it could be renewed" in hold.lost
    await store.aclose()

    lock = ScriptedLock(fail(RedisConnectionError("reset")))
    store, hold = holding(lock)
    await asyncio.sleep(LEASE + 5)
    assert lock.sent == pytest.approx([10, 20, 30])
    assert hold.lost is None  # one failure, then renewed in time
    assert hold.valid_until - lock.start == pytest.approx(30 + LEASE)
    await store.check_lease()
    await store.aclose()


async def test_a_lock_owned_by_another_is_lost_at_once() -> None:
    lock = ScriptedLock(ok, fail(LockNotOwnedError("not owned")))
    store, hold = holding(lock)
    await asyncio.sleep(15)
    assert hold.lost is None
    await asyncio.sleep(10)  # the renewal at 20 s finds another owner
    assert hold.lost is not None
    assert "another owner" in hold.lost
    assert hold.renewer is not None
    assert hold.renewer.done()  # nothing more to renew
    with pytest.raises(TokenStoreError, match="was lost"):
        await store.check_lease()
    await store.aclose()


async def test_check_lease_is_cut_off_where_the_lease_ends() -> None:
    """A check that hangs gives up when the lease would run out, not later."""
    lock = ScriptedLock(hang, hang)
    store, hold = holding(lock, operation_timeout=100)
    loop = asyncio.get_running_loop()
    await asyncio.sleep(5)
    started = loop.time()
    with pytest.raises(TokenStoreError, match="was lost"):
        await store.check_lease()
    assert loop.time() - started == pytest.approx(LEASE - 5)
    await store.aclose()
