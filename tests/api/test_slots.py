"""The client's connection slots: first come, first served, and no slot lost to a cancel."""

from __future__ import annotations

import asyncio
import random

import pytest

from netrex_async._client import _Slots


async def take(slots: _Slots) -> None:
    if slots.free > 0:
        slots.free -= 1
    else:
        await slots.wait()


async def test_waiters_are_served_in_order_of_arrival():
    slots = _Slots(1)
    await take(slots)
    order: list[int] = []

    async def waiter(n: int) -> None:
        await take(slots)
        order.append(n)
        await asyncio.sleep(0)
        slots.release()

    tasks = [asyncio.create_task(waiter(n)) for n in range(5)]
    await asyncio.sleep(0)
    slots.release()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]
    assert slots.free == 1


async def test_a_waiter_cancelled_before_its_turn_takes_nothing():
    slots = _Slots(1)
    await take(slots)
    first = asyncio.create_task(take(slots))
    second = asyncio.create_task(take(slots))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    slots.release()  # skips the cancelled waiter: the slot goes to the second
    await second
    with pytest.raises(asyncio.CancelledError):
        await first
    assert slots.free == 0
    slots.release()
    assert slots.free == 1


async def test_a_waiter_cancelled_after_it_was_handed_a_slot_passes_it_on():
    slots = _Slots(1)
    await take(slots)
    first = asyncio.create_task(take(slots))
    second = asyncio.create_task(take(slots))
    await asyncio.sleep(0)
    slots.release()  # handed to the first, which has not run yet...
    first.cancel()  # ...and is cancelled before it does
    with pytest.raises(asyncio.CancelledError):
        await first
    await second  # the first's slot went on to the second
    slots.release()
    assert slots.free == 1


async def test_random_cancellations_never_leak_or_exceed_a_slot():
    rng = random.Random(7)
    slots = _Slots(3)
    holding = 0
    most = 0

    async def user() -> None:
        nonlocal holding, most
        await take(slots)
        holding += 1
        most = max(most, holding)
        try:
            for _ in range(rng.randrange(3)):
                await asyncio.sleep(0)
        finally:
            holding -= 1
            slots.release()

    tasks = [asyncio.create_task(user()) for _ in range(300)]
    for _ in range(40):
        await asyncio.sleep(0)
        for task in rng.sample(tasks, 5):
            task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert most <= 3
    assert holding == 0
    assert slots.free == 3
