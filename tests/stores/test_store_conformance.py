"""The conformance suite every TokenStore must pass: memory, file and Redis.

Each test gets a ``backend`` (see conftest.py) whose ``make()`` returns another store
instance on the same place, as another process would have.
"""

from __future__ import annotations

import asyncio
import random
import time

import pytest
from store_helpers import SECRET_MARK, Backend, make_token

from netrex_async import Token, TokenStore, TokenStoreError

pytestmark = pytest.mark.asyncio


def same(a: Token | None, b: Token | None) -> bool:
    assert a is not None
    assert b is not None
    return a.to_dict() == b.to_dict()


async def test_is_a_token_store(backend: Backend) -> None:
    store = backend.make()
    assert isinstance(store, TokenStore)
    assert isinstance(store.description, str)
    assert store.description
    assert SECRET_MARK not in repr(store)


async def test_empty_load_returns_none(backend: Backend) -> None:
    assert await backend.make().load() is None


async def test_round_trip(backend: Backend) -> None:
    a, b = backend.make(), backend.make()
    token = make_token()
    await a.save(token)
    assert same(await a.load(), token)
    assert same(await b.load(), token)
    loaded = await b.load()
    assert loaded is not None
    assert loaded.lifetime == pytest.approx(token.lifetime)


async def test_round_trip_without_refresh_token_or_expiry(backend: Backend) -> None:
    store = backend.make()
    token = Token(access_token=f"only-{SECRET_MARK}", issued_at=123.5)
    await store.save(token)
    assert same(await store.load(), token)


async def test_save_replaces(backend: Backend) -> None:
    a, b = backend.make(), backend.make()
    first, second = make_token(1), make_token(2)
    await a.save(first)
    await b.save(second)
    assert same(await a.load(), second)


async def test_save_rejects_non_tokens(backend: Backend) -> None:
    with pytest.raises(TypeError):
        await backend.make().save({"access_token": "x"})


async def test_clear(backend: Backend) -> None:
    a, b = backend.make(), backend.make()
    await a.save(make_token())
    await b.clear()
    assert await a.load() is None


async def test_clear_when_empty(backend: Backend) -> None:
    store = backend.make()
    await store.clear()
    await store.clear()
    assert await store.load() is None


async def _exclusive(stores: list[TokenStore], rounds: int) -> None:
    inside = 0
    entries = 0

    async def worker(store: TokenStore) -> None:
        nonlocal inside, entries
        for _ in range(rounds):
            async with store.lock():
                inside += 1
                entries += 1
                assert inside == 1, "two holders at once"
                await asyncio.sleep(0.002)
                assert inside == 1, "two holders at once"
                inside -= 1

    await asyncio.gather(*(worker(s) for s in stores))
    assert entries == rounds * len(stores)


async def test_lock_exclusive_between_instances(backend: Backend) -> None:
    await _exclusive([backend.make(), backend.make()], rounds=10)


async def test_lock_exclusive_between_tasks_of_one_instance(backend: Backend) -> None:
    store = backend.make()
    await _exclusive([store, store, store], rounds=5)


async def test_lock_timeout_names_the_store(backend: Backend) -> None:
    if not backend.has_lock_timeout:
        pytest.skip(f"{backend.name} store has no lock timeout")
    holder = backend.make()
    waiter = backend.make(lock_timeout=0.2)
    async with holder.lock():
        started = time.monotonic()
        with pytest.raises(TokenStoreError) as info:
            async with waiter.lock():
                pytest.fail("entered a held lock")
        waited = time.monotonic() - started
    assert 0.15 <= waited < 2.0
    assert info.value.store == waiter.description
    assert waiter.description in str(info.value)
    # The holder's release made it free again.
    async with waiter.lock():
        pass


async def test_lock_timeout_counts_the_wait_for_tasks_of_this_process(
    backend: Backend,
) -> None:
    if not backend.has_lock_timeout:
        pytest.skip(f"{backend.name} store has no lock timeout")
    store = backend.make(lock_timeout=0.2)
    async with store.lock():
        started = time.monotonic()
        with pytest.raises(TokenStoreError):
            async with store.lock():
                pytest.fail("entered a held lock")
        assert time.monotonic() - started < 2.0


async def test_lock_released_after_an_exception(backend: Backend) -> None:
    store = backend.make()
    with pytest.raises(RuntimeError, match="boom"):
        async with store.lock():
            raise RuntimeError("boom")
    other = backend.make(**({"lock_timeout": 0.5} if backend.has_lock_timeout else {}))
    async with asyncio.timeout(2):
        async with other.lock():
            pass


async def test_cancelled_holder_releases(backend: Backend) -> None:
    store = backend.make()
    entered = asyncio.Event()

    async def hold() -> None:
        async with store.lock():
            entered.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(hold())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with asyncio.timeout(2):
        async with backend.make().lock():
            pass


async def test_cancelled_waiter_does_not_leak_the_lock(backend: Backend) -> None:
    holder, waiter = backend.make(), backend.make()
    entered = False

    async def wait_for_lock() -> None:
        nonlocal entered
        async with waiter.lock():
            entered = True

    async with holder.lock():
        task = asyncio.create_task(wait_for_lock())
        await asyncio.sleep(0.15)  # the waiter is now polling
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not entered
    await asyncio.sleep(0.1)  # give a late worker (if any) its chance to grab the lock
    async with asyncio.timeout(2):
        async with backend.make().lock():
            pass


async def test_waiters_cancelled_at_random_moments_never_leak(backend: Backend) -> None:
    """Cancel waiters at random points (queued, polling, just acquiring), many times."""
    rng = random.Random(5)
    stores = [backend.make() for _ in range(3)]

    async def user(store: TokenStore, hold: float) -> None:
        async with store.lock():
            await asyncio.sleep(hold)

    for _ in range(15):
        tasks = [
            asyncio.create_task(user(rng.choice(stores), rng.uniform(0, 0.01))) for _ in range(4)
        ]
        await asyncio.sleep(rng.uniform(0, 0.03))
        for task in tasks:
            if rng.random() < 0.6:
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(0.05)
    for store in stores:
        async with asyncio.timeout(2):
            async with store.lock():
                pass


async def test_aclose_is_idempotent(backend: Backend) -> None:
    store = backend.make()
    await store.aclose()
    await store.aclose()


async def test_async_with(backend: Backend) -> None:
    store = backend.make()
    token = make_token()
    async with store as entered:
        assert entered is store
        await entered.save(token)
    assert same(await backend.make().load(), token)


CORRUPT = {
    "empty": b"",
    "truncated": b'{"version": 1, "access_token": "at-SeCrEt-x", "issued_',
    "not JSON": b"at-SeCrEt-garbage",
    "JSON list": b'["at-SeCrEt-in-a-list"]',
    "wrong type": b'{"access_token": 12345, "issued_at": 1.0}',
    "secret in a wrong field": b'{"access_token": "at-SeCrEt-1", "issued_at": "rt-SeCrEt-2"}',
    "not UTF-8": b"\xff\xfe\x00SeCrEt",
}


@pytest.mark.parametrize("raw", CORRUPT.values(), ids=CORRUPT.keys())
async def test_load_of_a_corrupt_value_raises(backend: Backend, raw: bytes) -> None:
    if not backend.can_be_corrupt:
        pytest.skip(f"a {backend.name} store holds Token objects only")
    store = backend.make()
    await backend.corrupt(raw)
    with pytest.raises(TokenStoreError) as info:
        await store.load()
    text = str(info.value)
    assert info.value.store == store.description
    assert store.description in text
    assert "corrupt" in text
    assert SECRET_MARK not in text
    # Cleared by the caller's decision, it works again.
    await store.clear()
    assert await store.load() is None
