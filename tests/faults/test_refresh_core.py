"""The refresh core under faults, on a virtual clock (looptime): hours of token
lifetimes, back-offs and hangs run in milliseconds, deterministically.

Each test is one case of issue #12's "What was found". Every case asserts what the
promise says: the grant is alive at the end, no refresh token was presented twice,
every call ended within its bound, every error was a NetrexError.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from netrex_async import (
    ClosedError,
    NetrexError,
    TokenManager,
    TokenStoreError,
)
from netrex_async._manager import _settle_bounded

from ._parts import FaultyStore, LeasedStore, RotatingProvider, callers, virtual_wall

pytestmark = pytest.mark.looptime


def _manager(oauth: RotatingProvider, store: FaultyStore, **kw: object) -> TokenManager:
    kw.setdefault("jitter", 0)
    return TokenManager(oauth, store, **kw)  # type: ignore[arg-type]


async def _settle(m: TokenManager) -> None:
    # Wait for the refresh in flight, its save included (public API only, so the same
    # test runs against older releases, which had no settle()).
    for _ in range(3):
        await asyncio.sleep(0)
    settle = getattr(m, "settle", None)
    if settle is not None:
        await settle()


# -- 1. a failed save after a successful rotation must not kill the grant ---------------


@pytest.mark.parametrize("fault", ["fail", "hang"])
async def test_failed_saves_after_rotation_keep_the_grant(fault):
    oauth = RotatingProvider(lifetime=60)
    store = FaultyStore(oauth.first())
    # Disk full / a read-only replica / a restarted Redis: the next saves fail or hang.
    setattr(store, f"{fault}_saves", 6)
    results: list[object] = []
    async with _manager(oauth, store) as m:
        async with callers(m.token, 20, 0.5, results):
            await asyncio.sleep(5 * 60)  # five token lifetimes
        await _settle(m)
        token = await m.token()
    oauth.assert_alive()
    assert not [r for r in results if isinstance(r, BaseException)], "a caller saw an error"
    assert oauth.is_valid(token)
    # Every token handed out was valid at the provider while it was in use: the last one
    # is, and none was refused (a refused one would have ended the grant above).
    assert oauth.calls >= 5
    stored = await store.load()
    assert stored is not None and stored.refresh_token == oauth.current.refresh_token


async def test_a_bounded_wait_for_a_hung_save_ends_on_a_virtual_clock(monkeypatch):
    # The hanging-saves case above, made certain: a save cut by the retry deadline is
    # waited for until its own bound. looptime's clock sits on a microsecond grid and
    # stands still while callbacks run, and asyncio runs a timer up to its clock
    # resolution early: a wait "until loop.time() reaches the deadline" whose deadline
    # falls between two grid points waits its last 1e-14 s again and again, for ever
    # (the variant above hung so at random, about one run in four).
    loop = asyncio.get_running_loop()
    await asyncio.sleep(60.172806)  # on the grid...
    limit = 5.0
    assert loop.time() + limit > round(loop.time() + limit, 6)  # ...the deadline is not
    waits = 0
    wait = asyncio.wait

    async def counted(*args: Any, **kw: Any) -> Any:
        nonlocal waits
        waits += 1
        assert waits < 50, "the bounded wait spins on a clock that stands still"
        return await wait(*args, **kw)

    monkeypatch.setattr(asyncio, "wait", counted)
    hung = asyncio.create_task(asyncio.Event().wait())
    started = loop.time()
    await _settle_bounded({hung}, limit)
    assert loop.time() - started == pytest.approx(limit, abs=1e-5)
    assert waits == 1 and not hung.done()
    # Poked (cancelled) meanwhile, it still waits out its bound, then passes the
    # cancellation on.
    waiter = asyncio.create_task(_settle_bounded({hung}, limit))
    await asyncio.sleep(1)
    waiter.cancel()
    started = loop.time()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert loop.time() - started == pytest.approx(limit - 1, abs=1e-5)
    hung.cancel()


async def test_the_old_refresh_token_is_never_presented_while_a_save_fails():
    oauth = RotatingProvider(lifetime=60)
    store = FaultyStore(oauth.first(), fail_saves=10**6)  # the store never recovers
    async with _manager(oauth, store) as m:
        await m.token()
        for _ in range(10):
            await asyncio.sleep(60)
            assert oauth.is_valid(await m.token())
        oauth.assert_alive()
        assert m.stats.unsaved
        store.fail_saves = 0  # the disk has room again
        await asyncio.sleep(120)  # the background save lands (back-off at most 60 s)
        assert not m.stats.unsaved
    oauth.assert_alive()
    assert (await store.load()) == m.current


# -- 2. aclose() must not hang -----------------------------------------------------------


async def test_aclose_returns_in_bounded_time_when_save_hangs_for_ever():
    oauth = RotatingProvider(lifetime=60)
    store = FaultyStore(oauth.first(), hang_saves=10**6)
    m = _manager(oauth, store, close_timeout=5)
    async with m:
        await m.token()
        await asyncio.sleep(50)  # the proactive refresh ran; its save hangs
        assert oauth.calls == 1
        assert oauth.is_valid(await m.token())  # callers do not wait for the save
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(m.aclose(), 15)  # the context manager closed it already
    assert loop.time() - started < 1
    # and a fresh manager stuck the same way closes within its bound
    m2 = _manager(oauth, FaultyStore(oauth.current, hang_saves=10**6), close_timeout=5)
    async with m2:
        await m2.refresh()
        started = loop.time()
    assert loop.time() - started <= 5 + 1 + 0.5


async def test_aclose_inside_wait_for_ends_even_if_the_store_hangs():
    oauth = RotatingProvider(lifetime=60)
    store = FaultyStore(oauth.first(), hang_saves=10**6)
    m = _manager(oauth, store)
    await m.__aenter__()
    await m.refresh()
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(m.aclose(), 15)
    assert loop.time() - started <= m.close_timeout + 1 + 0.5


# -- 3. a lock must never be outlived -----------------------------------------------------


def test_a_lease_shorter_than_the_worst_refresh_is_refused():
    async def build() -> None:
        oauth = RotatingProvider(worst_case=62.8)
        with pytest.raises(ValueError, match=r"up to 83\.8 s.*lease of 60 s"):
            TokenManager(oauth, LeasedStore(oauth.first(), lease=60))  # type: ignore[arg-type]
        # a long enough lease is fine
        TokenManager(oauth, LeasedStore(oauth.first(), lease=120))  # type: ignore[arg-type]

    asyncio.run(build())


async def test_a_lost_lease_never_presents_the_refresh_token():
    oauth = RotatingProvider(lifetime=60)
    store = FaultyStore(oauth.first(), lease_lost=True)
    m = _manager(oauth, store, background=False)
    await asyncio.sleep(61)
    with pytest.raises(TokenStoreError, match="lost"):
        await m.token()
    assert oauth.presented == []
    store.lease_lost = False
    await asyncio.sleep(1)
    assert oauth.is_valid(await m.token())
    oauth.assert_alive()


# -- 4. no refresh storms, however the clocks disagree -----------------------------------


async def test_a_tiny_expires_in_does_not_storm():
    oauth = RotatingProvider(lifetime=0.001, delay=0.001)
    store = FaultyStore(oauth.first())
    results: list[object] = []
    async with _manager(oauth, store) as m:
        async with callers(m.token, 20, 0.01, results):
            await asyncio.sleep(3)
    assert oauth.calls <= 4  # at most about one a second, backing off: 0 s, 1 s, 3 s
    assert not [r for r in results if isinstance(r, BaseException)]
    oauth.assert_alive()


@pytest.mark.parametrize(
    ("stamp", "judge"),
    [(0.0, 3600.0), (-3600.0, 0.0), (0.0, -3600.0)],
    ids=["judge-1h-ahead", "stamps-1h-behind", "judge-1h-behind"],
)
async def test_clocks_that_disagree_do_not_storm(stamp, judge):
    oauth = RotatingProvider(lifetime=3600, delay=0.001, clock=virtual_wall(stamp))
    store = FaultyStore(oauth.first())
    results: list[object] = []
    async with _manager(oauth, store, clock=virtual_wall(judge)) as m:
        async with callers(m.token, 20, 0.01, results):
            await asyncio.sleep(3)
    assert oauth.calls <= 4
    assert not [r for r in results if isinstance(r, BaseException)]
    oauth.assert_alive()


async def test_one_clock_stamps_and_judges_by_default():
    oauth = RotatingProvider(lifetime=3600, clock=virtual_wall(-3600.0))
    m = _manager(oauth, FaultyStore(oauth.first()), background=False)
    await m.token()
    await asyncio.sleep(60)
    await m.token()
    assert oauth.calls == 0  # the manager judged with the provider client's own clock


async def test_a_provider_that_is_down_is_asked_with_back_off():
    oauth = RotatingProvider(lifetime=60, delay=0.001)
    oauth.down = 10**6
    store = FaultyStore(oauth.first())
    results: list[object] = []
    async with _manager(oauth, store) as m:
        await asyncio.sleep(61)  # expired; every refresh since has failed
        async with callers(m.token, 100, 0.5, results):
            await asyncio.sleep(120)
    # back-off 1, 2, 4 ... 60 s: a handful of requests, not one per caller
    assert oauth.calls <= 12
    assert results and all(isinstance(r, NetrexError) for r in results)


# -- 6. errors during and after aclose() are NetrexErrors --------------------------------


async def test_calls_in_flight_during_aclose_get_a_netrex_error():
    oauth = RotatingProvider(lifetime=60, delay=3600)  # the token request hangs
    store = FaultyStore(oauth.first())
    m = _manager(oauth, store, background=False)
    await asyncio.sleep(61)
    waiter = asyncio.create_task(m.token())
    invalidator = asyncio.create_task(m.invalidate(oauth.first().access_token))
    await asyncio.sleep(1)
    await m.aclose()
    for task in (waiter, invalidator):
        assert not task.cancelled(), "a caller that was not cancelled got CancelledError"
        assert isinstance(task.exception(), ClosedError)
    with pytest.raises(ClosedError):
        await m.token()
    with pytest.raises(ClosedError):
        await m.invalidate("x")
    assert isinstance(ClosedError("x"), NetrexError)
    assert isinstance(ClosedError("x"), RuntimeError)  # what it used to be


async def test_a_token_refused_right_after_a_refresh_is_replaced_after_the_spacing():
    # A proactive refresh just happened, then the API refuses the new token (the
    # provider expired it early): the callers wait out the spacing, then one refresh
    # replaces it; nobody is handed the refused token back.
    oauth = RotatingProvider(lifetime=3600)
    store = FaultyStore(oauth.first())
    m = _manager(oauth, store, background=False)
    loop = asyncio.get_running_loop()
    new = await m.refresh()
    assert oauth.calls == 1
    started = loop.time()
    await asyncio.gather(*(m.invalidate(new.access_token) for _ in range(50)))
    assert oauth.calls == 2  # one refresh for all fifty, after the spacing
    assert loop.time() - started == pytest.approx(m.min_refresh_interval, abs=0.01)
    assert await m.token() != new.access_token
    oauth.assert_alive()
    await m.aclose()
