"""TokenManager: fresh, stale and expired phases, single flight, background, events."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from netrex_async import (
    MemoryTokenStore,
    NetrexError,
    ReauthorizationNeeded,
    ReauthorizationRequired,
    RefreshFailed,
    StaticToken,
    TokenAdopted,
    TokenEndpointError,
    TokenManager,
    TokenRefreshed,
    TransportError,
)
from netrex_async._manager import default_margin, default_skew

from ._fakes import ScriptedOAuth, make_token


class CountingStore(MemoryTokenStore):
    def __init__(self, token=None):
        super().__init__(token)
        self.loads = 0
        self.saves = 0
        self.locks = 0

    async def load(self):
        self.loads += 1
        return await super().load()

    async def save(self, token):
        self.saves += 1
        await super().save(token)

    def lock(self):
        self.locks += 1
        return super().lock()


def manager(oauth, store, **kw):
    kw.setdefault("background", False)
    return TokenManager(oauth, store, **kw)  # type: ignore[arg-type]


def test_default_margin_and_skew():
    assert default_margin(60) == 30
    assert default_margin(3600) == 300
    assert default_skew(3600) == 5
    assert default_skew(1) == pytest.approx(0.1)
    # a one-second token has all three phases
    assert 0 < default_skew(1) < default_margin(1) < 1


async def test_fast_path_takes_no_lock_and_does_no_io():
    store = CountingStore(make_token(1, lifetime=3600))
    oauth = ScriptedOAuth()
    async with manager(oauth, store) as m:
        assert await m.token() == "access-1-secret"
        loads, locks = store.loads, store.locks
        for _ in range(1000):
            assert await m.token() == "access-1-secret"
        assert (store.loads, store.locks, oauth.calls) == (loads, locks, 0)


async def test_empty_store_requires_authorization():
    m = manager(ScriptedOAuth(), MemoryTokenStore())
    with pytest.raises(ReauthorizationRequired, match="no token is stored"):
        await m.token()
    assert m.stats.reauthorization_required


@pytest.mark.looptime
async def test_stale_token_one_refresh_and_nobody_waits():
    # lifetime 10 s, margin 9 s: fresh for 1 s; we start it 2 s old -> stale, not expired
    token = make_token(1, lifetime=10, now=time.time() - 2)
    oauth = ScriptedOAuth(delay=0.3)
    async with manager(oauth, MemoryTokenStore(token), margin=9, skew=1) as m:
        loop = asyncio.get_running_loop()
        started = loop.time()
        results = await asyncio.gather(*(m.token() for _ in range(500)))
        elapsed = loop.time() - started
        assert set(results) == {"access-1-secret"}, "stale callers keep the valid token"
        # On the virtual clock, time moves only while every task waits on a timer: a
        # caller that waited for the refresh (0.3 s) would have moved it by 0.3 s.
        assert elapsed < 0.3, "stale callers must not wait for the refresh"
        await asyncio.wait_for(oauth.started.wait(), 1)
        await asyncio.sleep(0.5)
        assert oauth.calls == 1
        assert await m.token() == "access-1001-secret"


async def test_expired_token_everyone_waits_for_one_refresh():
    token = make_token(1, lifetime=10, now=time.time() - 11)
    oauth = ScriptedOAuth(delay=0.05)
    store = CountingStore(token)
    async with manager(oauth, store) as m:
        results = await asyncio.gather(*(m.token() for _ in range(2000)))
        assert set(results) == {"access-1001-secret"}
        assert oauth.calls == 1
        assert store.saves == 1
        assert (await store.load()).access_token == "access-1001-secret"
        assert m.stats.refreshes == 1


@pytest.mark.looptime
async def test_failed_refresh_reaches_all_waiters_and_does_not_poison():
    token = make_token(1, lifetime=10, now=time.time() - 11)
    oauth = ScriptedOAuth(delay=0.05)
    oauth.fail_next.append(TransportError("token endpoint down"))
    async with manager(oauth, MemoryTokenStore(token)) as m:
        results = await asyncio.gather(*(m.token() for _ in range(50)), return_exceptions=True)
        assert all(isinstance(r, TransportError) for r in results)
        assert oauth.calls == 1
        # While the failed refresh backs off (min_refresh_interval), callers get its
        # error at once instead of a refresh each.
        with pytest.raises(TransportError, match="token endpoint down"):
            await m.token()
        assert oauth.calls == 1
        await asyncio.sleep(1.0)
        assert await m.token() == "access-1002-secret"
        assert oauth.calls == 2
        assert m.stats.failures == 1


async def test_invalidate_burst_causes_one_refresh():
    oauth = ScriptedOAuth(delay=0.05)
    async with manager(oauth, MemoryTokenStore(make_token(1, lifetime=3600))) as m:
        old = await m.token()
        await asyncio.gather(*(m.invalidate(old) for _ in range(300)))
        assert oauth.calls == 1
        assert await m.token() == "access-1001-secret"
        await m.invalidate(old)  # an old token: already replaced, nothing to do
        assert oauth.calls == 1
        assert m.stats.invalidations == 1


async def test_rejected_token_in_store_is_not_adopted_back():
    token = make_token(1, lifetime=3600)
    oauth = ScriptedOAuth()
    store = MemoryTokenStore(token)
    async with manager(oauth, store) as m:
        await m.invalidate(await m.token())
        assert oauth.calls == 1
        assert await m.token() != token.access_token


async def test_cancelled_waiter_does_not_cancel_the_refresh():
    token = make_token(1, lifetime=10, now=time.time() - 11)
    oauth = ScriptedOAuth(delay=0.2)
    store = CountingStore(token)
    async with manager(oauth, store) as m:
        first = asyncio.create_task(m.token())
        await asyncio.wait_for(oauth.started.wait(), 1)
        others = [asyncio.create_task(m.token()) for _ in range(20)]
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        results = await asyncio.wait_for(asyncio.gather(*others), 2)
        assert set(results) == {"access-1001-secret"}
        assert oauth.calls == 1
        assert store.saves == 1


async def test_all_waiters_cancelled_refresh_still_completes_and_saves():
    token = make_token(1, lifetime=10, now=time.time() - 11)
    oauth = ScriptedOAuth(delay=0.2)
    store = CountingStore(token)
    async with manager(oauth, store) as m:
        waiters = [asyncio.create_task(m.token()) for _ in range(5)]
        await asyncio.wait_for(oauth.started.wait(), 1)
        for w in waiters:
            w.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
        await asyncio.sleep(0.4)
        assert store.saves == 1
        assert await m.token() == "access-1001-secret"
        assert oauth.calls == 1


async def test_temporary_grant_expiry_requires_reauthorization_without_loop():
    token = make_token(1, lifetime=10, refresh=False, now=time.time() - 11)
    oauth = ScriptedOAuth()
    events = []
    async with manager(oauth, MemoryTokenStore(token), hooks=[events.append]) as m:
        for _ in range(3):
            with pytest.raises(ReauthorizationRequired, match="temporary"):
                await m.token()
        assert oauth.calls == 0
        assert any(isinstance(e, ReauthorizationNeeded) for e in events)


async def test_temporary_grant_stale_is_served_without_refresh():
    token = make_token(1, lifetime=10, refresh=False, now=time.time() - 6)
    oauth = ScriptedOAuth()
    async with manager(oauth, MemoryTokenStore(token)) as m:
        assert await m.token() == "access-1-secret"
        await asyncio.sleep(0.05)
        assert oauth.calls == 0


async def test_invalid_grant_adopts_a_token_another_process_rotated():
    token = make_token(1, lifetime=10, now=time.time() - 11)
    store = MemoryTokenStore(token)
    oauth = ScriptedOAuth()
    rotated = make_token(77, lifetime=3600)

    def other_process_wins(_):
        # between our load and our refresh, another process rotated the grant
        store._token = rotated

    oauth.on_call = other_process_wins
    oauth.refuse()
    events = []
    async with manager(oauth, store, hooks=[events.append]) as m:
        assert await m.token() == rotated.access_token
        assert m.stats.adoptions == 1
        await m.drain_hooks()
        assert [type(e) for e in events] == [TokenAdopted]


async def test_invalid_grant_without_rotation_requires_reauthorization_once():
    token = make_token(1, lifetime=10, now=time.time() - 11)
    oauth = ScriptedOAuth()
    oauth.refuse()
    events = []
    async with manager(oauth, MemoryTokenStore(token), hooks=[events.append]) as m:
        with pytest.raises(ReauthorizationRequired, match="refused the refresh token"):
            await m.token()
        with pytest.raises(ReauthorizationRequired):
            await m.token()
        assert oauth.calls == 1, "a refused refresh token is not sent again"
        assert m.stats.reauthorization_required
        await m.drain_hooks()
        assert isinstance(events[-1], ReauthorizationNeeded)
        # a person logs in again: the manager recovers
        await m.set_token(make_token(5, lifetime=3600))
        assert await m.token() == "access-5-secret"
        assert not m.stats.reauthorization_required


async def test_adopts_token_refreshed_by_another_manager_on_the_same_store():
    store = MemoryTokenStore(make_token(1, lifetime=600))
    a_oauth, b_oauth = ScriptedOAuth(), ScriptedOAuth()
    skip = [0.0]

    def mono():
        return time.monotonic() + skip[0]

    async with (
        manager(a_oauth, store, monotonic=mono) as a,
        manager(b_oauth, store, monotonic=mono) as b,
    ):
        assert await a.token() == await b.token() == "access-1-secret"
        skip[0] = 600  # both hold a token that has now expired
        await asyncio.gather(a.token(), b.token())
        assert a_oauth.calls + b_oauth.calls == 1
        assert await a.token() == await b.token()
        assert a.stats.adoptions + b.stats.adoptions == 1


@pytest.mark.looptime
async def test_background_refresh_before_expiry_without_waiting(caplog):
    caplog.set_level(logging.DEBUG, logger="netrex_async")
    # Each refresh takes 0.1 s: a caller made to wait for one would show it in `worst`.
    oauth = ScriptedOAuth(lifetime=1.0, delay=0.1)
    events = []
    store = MemoryTokenStore(make_token(1, lifetime=1.0))
    # (refreshes of a one-second token every half second: allowed by a shorter spacing)
    async with TokenManager(
        oauth,  # type: ignore[arg-type]
        store,
        hooks=[events.append],
        jitter=0,
        min_refresh_interval=0.2,
    ) as m:
        loop = asyncio.get_running_loop()
        worst = 0.0
        end = loop.time() + 2.6
        seen = set()
        while loop.time() < end:
            t0 = loop.time()
            seen.add(await m.token())
            worst = max(worst, loop.time() - t0)
            await asyncio.sleep(0.005)
        # refreshed at half-life each time: ~0.5, 1.0, 1.5, 2.0, 2.5 s
        assert 4 <= oauth.calls <= 6
        # Virtual time moves only while every task waits on a timer: a caller that
        # waited for a refresh would show it here; one that did not shows 0.
        assert worst == 0, "a proactive refresh must not make callers wait"
        assert len(seen) == oauth.calls + 1
        assert all(isinstance(e, TokenRefreshed) for e in events)
        assert sum(e.reason == "proactive" for e in events) >= len(events) - 1
    records = [r for r in caplog.records if getattr(r, "event", None) == "token_refreshed"]
    assert len(records) == oauth.calls
    assert all(r.levelno == logging.INFO for r in records)


async def test_failed_proactive_refresh_is_retried_while_token_works(caplog):
    caplog.set_level(logging.WARNING, logger="netrex_async")
    oauth = ScriptedOAuth(lifetime=60)
    oauth.fail_next.append(TokenEndpointError("server said no"))
    events = []
    store = MemoryTokenStore(make_token(1, lifetime=2.0))
    async with TokenManager(oauth, store, hooks=[events.append], jitter=0) as m:  # type: ignore[arg-type]
        assert await m.token() == "access-1-secret"
        await asyncio.sleep(2.0)
        assert oauth.calls == 2
        assert await m.token() == "access-1002-secret"
    failed = [e for e in events if isinstance(e, RefreshFailed)]
    assert len(failed) == 1 and failed[0].will_retry and failed[0].attempt == 1
    assert isinstance(events[-1], TokenRefreshed)
    warnings = [r for r in caplog.records if getattr(r, "event", None) == "refresh_failed"]
    assert warnings and warnings[0].levelno == logging.WARNING
    assert m.stats.failures == 1 and m.stats.refreshes == 1


async def test_hook_that_raises_is_logged_and_refresh_goes_on(caplog):
    def bad_hook(event):
        raise RuntimeError("hook bug")

    async def async_hook(event):
        seen.append(event)

    seen = []
    token = make_token(1, lifetime=10, now=time.time() - 11)
    async with manager(ScriptedOAuth(), MemoryTokenStore(token), hooks=[bad_hook, async_hook]) as m:
        assert await m.token() == "access-1001-secret"
    assert [type(e) for e in seen] == [TokenRefreshed]
    assert any(getattr(r, "event", None) == "hook_failed" for r in caplog.records)


async def test_stats_snapshot_is_frozen():
    async with manager(ScriptedOAuth(), MemoryTokenStore(make_token(1, lifetime=3600))) as m:
        await m.token()
        s = m.stats
        assert s.grant == make_token(1).fingerprint
        with pytest.raises(AttributeError):
            s.refreshes = 5  # type: ignore[misc]
        await m.refresh()
        assert s.refreshes == 0 and m.stats.refreshes == 1
        assert m.stats.last_refresh_at is not None


async def test_aclose_stops_background_task():
    m = TokenManager(ScriptedOAuth(), MemoryTokenStore(make_token(1, lifetime=3600)))  # type: ignore[arg-type]
    async with m:
        await m.token()
        task = m._bg_task
        assert task is not None and not task.done()
    assert task.done()
    with pytest.raises(RuntimeError, match="closed"):
        await m._token_slow()


async def test_unknown_expiry_is_fresh_until_invalidated():
    oauth = ScriptedOAuth(lifetime=None)
    async with manager(oauth, MemoryTokenStore(make_token(1, lifetime=None))) as m:
        assert await m.token() == "access-1-secret"
        await m.invalidate("access-1-secret")
        assert oauth.calls == 1


async def test_static_token():
    src = StaticToken("user-token-secret")
    assert await src.token() == "user-token-secret"
    assert "user-token-secret" not in repr(src)
    await src.invalidate("another")
    with pytest.raises(ReauthorizationRequired, match="user token") as e:
        await src.invalidate("user-token-secret")
    assert "user-token-secret" not in str(e.value)
    with pytest.raises(ValueError):
        StaticToken(" ")


@pytest.mark.parametrize(
    "token",
    ["ab c", "ab\tc", "abc\t", "\tabc", "ab\nc", "ab\x00c", "ab\x7fc", "ab\u00a0c", "ab\u2028c"],
)
def test_static_token_refuses_whitespace_and_control_characters_anywhere(token):
    with pytest.raises(ValueError, match="whitespace or control characters") as e:
        StaticToken(token)
    assert token not in str(e.value)


def test_static_token_takes_any_printable_token():
    assert repr(StaticToken("ab-c_1.2~3+/=")).startswith("StaticToken(fingerprint=")


async def test_a_slow_hook_does_not_delay_callers():
    release = asyncio.Event()

    async def slow_hook(event):
        await release.wait()

    token = make_token(1, lifetime=10, now=time.time() - 11)
    async with manager(ScriptedOAuth(), MemoryTokenStore(token), hooks=[slow_hook]) as m:
        assert await asyncio.wait_for(m.token(), 1) == "access-1001-secret"
        release.set()
        await m.drain_hooks()


async def test_a_token_refused_right_after_a_401_refresh_is_not_refreshed_again(caplog):
    oauth = ScriptedOAuth()
    async with manager(oauth, MemoryTokenStore(make_token(1, lifetime=3600))) as m:
        await m.invalidate(await m.token())
        assert oauth.calls == 1
        for _ in range(5):  # the API keeps refusing the new token too
            await m.invalidate(await m.token())
        assert oauth.calls == 1
    assert any(getattr(r, "event", None) == "token_rejected_again" for r in caplog.records)


async def test_waiters_of_a_refresh_stopped_by_aclose_get_a_clear_error():
    token = make_token(1, lifetime=10, now=time.time() - 11)
    oauth = ScriptedOAuth(delay=30)
    m = manager(oauth, MemoryTokenStore(token))
    waiter = asyncio.create_task(m.token())
    await asyncio.wait_for(oauth.started.wait(), 1)
    m._flight.task.cancel()  # what aclose() does to a refresh that will not finish
    with pytest.raises(NetrexError, match="cancelled before it finished"):
        await waiter
    await m.aclose()


async def test_nothing_is_logged_on_the_fast_path(caplog):
    caplog.set_level(logging.DEBUG, logger="netrex_async")
    async with manager(ScriptedOAuth(), MemoryTokenStore(make_token(1, lifetime=3600))) as m:
        await m.token()
        caplog.clear()
        for _ in range(100):
            await m.token()
        assert caplog.records == []


async def test_a_grant_the_api_refuses_logs_one_warning_per_hold_off_window(caplog):
    # #13: 1,000 calls refused with a token a 401 just bought logged 1,000 WARNINGs.
    caplog.set_level(logging.WARNING, logger="netrex_async")
    oauth = ScriptedOAuth()
    async with manager(oauth, MemoryTokenStore(make_token(1, lifetime=3600))) as m:
        await m.invalidate(await m.token())  # a 401: refreshed once
        bought = await m.token()
        assert oauth.calls == 1
        for _ in range(1000):  # the API refuses the new token too, call after call
            await m.invalidate(bought)
        assert oauth.calls == 1  # the hold-off: no refresh per call
    again = [r for r in caplog.records if getattr(r, "event", None) == "token_rejected_again"]
    assert len(again) == 1
