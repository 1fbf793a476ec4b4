"""The refreshing TokenManager (the protocol and StaticToken live in ``_sources``).

The manager decides nothing by itself: :mod:`._token_state` says what to do with a token
(:func:`~._token_state.decide` for a caller, :func:`~._token_state.plan` for a refresh
transaction); the manager carries it out, with every wait bounded.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any, Self, TypeVar

import attrs

from . import _log
from ._errors import (
    ClosedError,
    InvalidGrant,
    NetrexError,
    ReauthorizationRequired,
    TokenStoreError,
)
from ._events import (
    Hook,
    ManagerStats,
    ReauthorizationNeeded,
    RefreshFailed,
    TokenAdopted,
    TokenEvent,
    TokenRefreshed,
    emit,
)
from ._lifecycle import AsyncClosing
from ._oauth import OAuth2Client
from ._redact import safe_text
from ._retry import RetryPolicy, Transient, call, is_testing
from ._sources import StaticToken, TokenSource
from ._stores._base import TokenStore
from ._token import Token
from ._token_state import (
    Action,
    CallerView,
    Deadlines,
    Phase,
    Step,
    deadlines,
    decide,
    default_margin,
    default_skew,
    phase,
    plan,
    refresh_hold,
)

__all__ = ["StaticToken", "TokenManager", "TokenSource", "default_margin", "default_skew"]

T = TypeVar("T")

#: A token obtained because of a 401 and refused at once is not refreshed again for
#: this many seconds: the API is refusing the grant, not the token.
REJECTED_AGAIN_HOLDOFF = 30.0
#: Default shortest spacing of two refreshes of one grant, in seconds.
MIN_REFRESH_INTERVAL = 0.5
#: Slack added to a worst case for the scheduling and bookkeeping around the awaits.
_SLACK = 1.0


def _hook_tuple(hooks: Iterable[Hook]) -> tuple[Hook, ...]:
    return tuple(hooks)


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{attribute.name} must be a positive number of seconds, not {value!r}")


def _optional_seconds(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"{attribute.name} must be None or seconds >= 0, not {value!r}")


@attrs.define(eq=False)
class _Flight:
    """One refresh transaction in flight, and the future its waiters wait on.

    ``ready`` resolves as soon as a token is installed (before it is saved) or the
    refresh failed: callers never wait for a slow or failing store once the provider
    has answered.
    """

    reason: str
    ready: asyncio.Future[None]
    task: asyncio.Task[None] | None = None


class _Limiter:
    """One log line per window for a repeated warning, with the count of those held back."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._since: dict[str, float] = {}
        self._held: collections.Counter[str] = collections.Counter()

    def allow(self, key: str, now: float) -> tuple[bool, int]:
        """Whether to log now, and how many were held back since the last line."""
        since = self._since.get(key)
        if since is not None and now - since < self.window:
            self._held[key] += 1
            return False, 0
        self._since[key] = now
        return True, self._held.pop(key, 0)


@attrs.define(repr=False, eq=False)
class TokenManager(AsyncClosing):
    """A :class:`TokenSource` for an OAuth2 grant: refreshes before the token runs out.

    A token is *fresh* until ``expires_at - margin``, *stale* until ``expires_at - skew``,
    then *expired*. Fresh: :meth:`token` returns the cached token without a lock or I/O.
    Stale: one task refreshes while every caller keeps using the still-valid token.
    Expired: every caller waits for that one refresh. A background task refreshes at
    ``expires_at - margin`` (with jitter), retrying a failed refresh while the token still
    works, so callers normally never wait at all.

    Each refresh is one transaction on the store: ``lock() -> load()`` (adopting the token
    another process has just refreshed) ``-> refresh -> save() -> unlock``, so one grant is
    never refreshed twice at once, in one process or across processes sharing the store.

    Under faults (see "Faults and bounds" in the docs):

    * A new token is never thrown away: it is used at once, before it is saved; a failed
      save is retried (under the lock for up to ``save_timeout``, then in the
      background with back-off until it lands) and the rotated-out refresh token is
      never presented again.
    * No storms: two refreshes of the grant are at least ``min_refresh_interval``
      apart; while new tokens arrive already stale (or fresh for less than half that
      spacing) the spacing is 1 s, then doubles, and so it does while refreshes fail,
      up to ``max_refresh_interval``: at most about one refresh a second, however the
      clocks disagree and however short ``expires_in`` is. Tokens shorter than a
      second (tests) need a shorter ``min_refresh_interval``.
    * Every wait is bounded: each store call by ``store_timeout``, a token request by
      the OAuth2 client's retry deadline, :meth:`aclose` by ``close_timeout`` (plus a
      second). A store whose lock has a lease (Redis) must outlast :attr:`worst_case`;
      the manager refuses to be built otherwise.

    The manager borrows ``oauth`` and ``store``: it closes neither.

    Args:
        oauth: The client that talks to the token endpoint.
        store: Where the grant's token lives; it must hold a token (after a login) before
            the first :meth:`token` call, or be given one with :meth:`set_token`.
        margin: Seconds before expiry when a token becomes stale; default
            ``min(300, lifetime / 2)``. Capped at nine tenths of the lifetime.
        skew: Seconds before expiry when a token counts as expired; default
            ``min(5, lifetime / 10)``. Capped at half the margin.
        background: Run the proactive refresh task.
        hooks: Callables (plain or async) called with each :data:`TokenEvent`, in order,
            in a task of their own so that a slow hook never delays a caller
            (:meth:`drain_hooks` waits for them).
        jitter: Fraction of the margin (at most 30 s) by which the background refresh is
            moved earlier at random, so a fleet does not refresh in step.
        clock: The wall clock that judges token stamps; default: the OAuth2 client's
            ``clock``, the one that stamps them (one clock source for both).
        monotonic: The time line of deadlines; default: the running event loop's clock.
        min_refresh_interval: Shortest spacing of two refreshes, in seconds (0.5).
        max_refresh_interval: Longest back-off between refreshes, in seconds.
        store_timeout: Longest wait for one store call (load, save, lease check).
        save_timeout: How long a new token's save is retried under the lock before the
            lock is let go and the save goes on in the background.
        close_timeout: How long :meth:`aclose` lets a refresh in flight finish.
    """

    oauth: OAuth2Client
    store: TokenStore
    margin: float | None = attrs.field(default=None, kw_only=True, validator=_optional_seconds)
    skew: float | None = attrs.field(default=None, kw_only=True, validator=_optional_seconds)
    background: bool = attrs.field(default=True, kw_only=True)
    hooks: Sequence[Hook] = attrs.field(default=(), kw_only=True, converter=_hook_tuple)
    jitter: float = attrs.field(default=0.1, kw_only=True)
    clock: Callable[[], float] | None = attrs.field(default=None, kw_only=True)
    monotonic: Callable[[], float] | None = attrs.field(default=None, kw_only=True)
    min_refresh_interval: float = attrs.field(
        default=MIN_REFRESH_INTERVAL, kw_only=True, validator=_positive
    )
    max_refresh_interval: float = attrs.field(default=60.0, kw_only=True, validator=_positive)
    store_timeout: float = attrs.field(default=5.0, kw_only=True, validator=_positive)
    save_timeout: float = attrs.field(default=10.0, kw_only=True, validator=_positive)
    close_timeout: float = attrs.field(default=5.0, kw_only=True, validator=_positive)

    _wall: Callable[[], float] = attrs.field(init=False, default=time.time)
    _now: Callable[[], float] = attrs.field(init=False, default=time.monotonic)
    _token: Token | None = attrs.field(init=False, default=None)
    _access: str = attrs.field(init=False, default="")
    _deadlines: Deadlines | None = attrs.field(init=False, default=None)
    _fresh_until: float = attrs.field(init=False, default=float("-inf"))
    _flight: _Flight | None = attrs.field(init=False, default=None)
    _bg_task: asyncio.Task[None] | None = attrs.field(init=False, default=None)
    _persist_task: asyncio.Task[None] | None = attrs.field(init=False, default=None)
    _changed: asyncio.Event = attrs.field(init=False, factory=asyncio.Event)
    _rejected: collections.deque[str] = attrs.field(
        init=False, factory=lambda: collections.deque(maxlen=16)
    )
    _dead: collections.deque[str] = attrs.field(
        init=False, factory=lambda: collections.deque(maxlen=16)
    )
    _spent: collections.deque[str] = attrs.field(
        init=False, factory=lambda: collections.deque(maxlen=64)
    )
    _unsaved: Token | None = attrs.field(init=False, default=None)
    _closed: bool = attrs.field(init=False, default=False)
    _hooks_task: asyncio.Task[None] | None = attrs.field(init=False, default=None)
    _after_401: tuple[str, float] | None = attrs.field(init=False, default=None)
    _hold_until: float = attrs.field(init=False, default=float("-inf"))
    _last_error: NetrexError | None = attrs.field(init=False, default=None)
    _stale_in_row: int = attrs.field(init=False, default=0)
    _refreshes: int = attrs.field(init=False, default=0)
    _failures: int = attrs.field(init=False, default=0)
    _failures_in_row: int = attrs.field(init=False, default=0)
    _save_failures: int = attrs.field(init=False, default=0)
    _adoptions: int = attrs.field(init=False, default=0)
    _invalidations: int = attrs.field(init=False, default=0)
    _last_refresh_at: float | None = attrs.field(init=False, default=None)
    _reauth: bool = attrs.field(init=False, default=False)
    _warnings: _Limiter = attrs.field(init=False, factory=lambda: _Limiter(REJECTED_AGAIN_HOLDOFF))

    def __attrs_post_init__(self) -> None:
        self._wall = self.clock or getattr(self.oauth, "clock", None) or time.time
        if self.monotonic is not None:
            self._now = self.monotonic
        if self.max_refresh_interval < self.min_refresh_interval:
            raise ValueError(
                f"max_refresh_interval ({self.max_refresh_interval:g} s) must not be shorter "
                f"than min_refresh_interval ({self.min_refresh_interval:g} s)"
            )
        lease = getattr(self.store, "lease", None)
        worst = self.worst_case
        if lease is not None and worst is not None and worst >= lease:
            raise ValueError(
                f"a refresh can hold the lock of {_describe(self.store)} for up to "
                f"{worst:.1f} s (the token request's retry deadline, the store calls and "
                f"the save), longer than the lock's lease of {lease:g} s: another process "
                "could refresh with the same refresh token. Give the store a longer lease "
                "(lock_expiry) or the OAuth2 client a shorter retry deadline "
                "(RetryPolicy.max_time)"
            )

    def __repr__(self) -> str:
        grant = self._token.fingerprint if self._token else None
        return f"TokenManager(grant={grant!r}, store={self.store!r})"

    @property
    def worst_case(self) -> float | None:
        """Longest time, in seconds, one refresh transaction holds the store's lock.

        The store calls (load, lease check) at ``store_timeout`` each, the token request
        at the OAuth2 client's ``worst_case``, and the save at ``save_timeout``; ``None``
        when the OAuth2 client states no bound.
        """
        request = getattr(self.oauth, "worst_case", None)
        if not isinstance(request, int | float):
            return None
        return 2 * self.store_timeout + float(request) + self.save_timeout + _SLACK

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._bind_loop()
        self._ensure_background()
        return self

    async def aclose(self) -> None:
        """Stop the background work, within ``close_timeout`` seconds (plus one).

        A refresh in flight may finish (its new token saved) within that time; past
        it, the refresh is cancelled and its waiters get :class:`ClosedError`. A token
        whose save is still failing gets one last try. Hooks get what time is left.
        Idempotent; calls after it raise :class:`ClosedError`.
        """
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.close_timeout
        for task in (self._bg_task, self._persist_task):
            if task is not None:
                task.cancel()
        await _settle_bounded({t for t in (self._bg_task, self._persist_task) if t}, 1.0)
        self._bg_task = self._persist_task = None
        flight = self._flight
        if flight is not None and flight.task is not None and not flight.task.done():
            await asyncio.wait({flight.task}, timeout=max(deadline - loop.time(), 0.0))
            if not flight.task.done():
                flight.task.cancel()
                await _settle_bounded({flight.task}, 1.0)
        if self._unsaved is not None:
            await self._last_save(max(deadline - loop.time(), 0.1))
        hooks = self._hooks_task
        if hooks is not None and not hooks.done():
            await asyncio.wait({hooks}, timeout=max(deadline - loop.time(), 0.1))
            if not hooks.done():
                hooks.cancel()
                await _settle_bounded({hooks}, 0.5)

    # -- the public source -------------------------------------------------------------

    async def token(self) -> str:
        """A bearer token valid now, refreshing first only if it has expired.

        Raises:
            ReauthorizationRequired: No token is stored, or the grant is dead.
            OAuthError, TransportError, TokenStoreError: The refresh of an expired token
                failed (every waiting caller gets the same error; while the failed
                refresh backs off, callers get it at once).
            ClosedError: The manager is closed.
        """
        if self._now() < self._fresh_until:
            return self._access
        return await self._token_slow()

    async def invalidate(self, access_token: str) -> None:
        """The API rejected ``access_token``: refresh, unless it was already replaced.

        A burst of 401s for the same token causes one refresh. A token that a 401 has
        just bought and that is refused at once too is not refreshed again for
        ``REJECTED_AGAIN_HOLDOFF`` seconds (logged at WARNING, ``token_rejected_again``,
        once per hold-off window with the count of the calls since): the API refuses the
        grant, and a refresh per call would not help.

        Raises:
            ReauthorizationRequired, OAuthError, TransportError, TokenStoreError: The
                refresh failed.
            ClosedError: The manager is closed.
        """
        self._check_open()
        held = self._token
        if held is None or held.access_token != access_token:
            flight = self._flight
            if flight is not None and not flight.ready.done():
                await self._wait(flight)
            return
        now = self._now()
        after = self._after_401
        if (
            after is not None
            and after[0] == access_token
            and now - after[1] < REJECTED_AGAIN_HOLDOFF
        ):
            log_now, held_back = self._warnings.allow("token_rejected_again", now)
            if log_now:
                _log.manager.warning(
                    "the API rejected a token refreshed for a 401 moments ago; not "
                    "refreshing again for %.0f s%s",
                    REJECTED_AGAIN_HOLDOFF,
                    f" ({held_back} more such rejections since the last warning)"
                    if held_back
                    else "",
                    extra={
                        "event": "token_rejected_again",
                        "grant": held.fingerprint,
                        "suppressed": held_back,
                    },
                )
            return
        if access_token not in self._rejected:
            self._rejected.append(access_token)
            self._invalidations += 1
            _log.manager.info(
                "the API rejected the current token; refreshing",
                extra={"event": "token_invalidated", "grant": held.fingerprint},
            )
        action = decide(self._view(rejected=True))
        if action is Action.USE:
            # A refresh succeeded moments ago: the next waits for its spacing (at most
            # max_refresh_interval), then replaces the token the API refuses.
            await asyncio.sleep(max(self._hold_until - self._now(), 0.0))
            if self._token is not held:
                return
        elif action is Action.FAIL:
            self._raise_last()
        await self._wait(self._start("invalidated", force=True))
        if self._token is not None and self._token.access_token != access_token:
            self._after_401 = (self._token.access_token, self._now())

    # -- extras ------------------------------------------------------------------------

    @property
    def current(self) -> Token | None:
        """The token in use, or ``None`` before the first load."""
        return self._token

    @property
    def stats(self) -> ManagerStats:
        """A frozen snapshot of the counters."""
        tok = self._token
        return ManagerStats(
            refreshes=self._refreshes,
            failures=self._failures,
            adoptions=self._adoptions,
            invalidations=self._invalidations,
            last_refresh_at=self._last_refresh_at,
            expires_at=tok.expires_at if tok else None,
            grant=tok.fingerprint if tok else None,
            reauthorization_required=self._reauth,
            unsaved=self._unsaved is not None,
            save_failures=self._save_failures,
        )

    async def refresh(self) -> Token:
        """Refresh now, whatever the token's age (joins a refresh already running).

        Raises:
            ReauthorizationRequired: The grant is gone.
            OAuthError: The token endpoint refused the refresh.
            TransportError: The provider could not be reached (after retries).
            TokenStoreError: The store could not be read, locked or written.
            ClosedError: The manager is closed.
        """
        self._check_open()
        self._bind_loop()
        if self._token is None:
            before = self._refreshes
            await self._wait(self._start("load", force=False))
            loaded = self.current
            if self._refreshes != before and loaded is not None:
                return loaded  # the stored token had expired: loading refreshed it
        flight = self._flight
        if flight is None or flight.ready.done() or flight.reason == "load":
            flight = self._start("forced", force=True, fresh=True)
        await self._wait(flight)
        token = self.current
        assert token is not None
        return token

    async def set_token(self, token: Token) -> None:
        """Make ``token`` the grant's token: save it to the store and use it.

        For a fresh login: ``await manager.set_token(await oauth.exchange(url, request))``.

        Raises:
            TokenStoreError: The store could not be locked or written.
            ClosedError: The manager is closed.
        """
        if not isinstance(token, Token):
            raise TypeError(f"set_token() takes a Token, not {type(token).__name__}")
        self._check_open()
        self._bind_loop()
        async with self._locked():
            await self._store_call("save", self.store.save(token))
        self._reauth = False
        self._failures_in_row = 0
        self._hold_until = float("-inf")
        self._last_error = None
        self._unsaved = None
        self._install(token)

    async def settle(self) -> None:
        """Wait until the refresh in flight has finished, its save included.

        Callers get a new token as soon as it arrives, before it is saved; this waits
        for the rest (bounded like the refresh itself).
        """
        flight = self._flight
        if flight is not None and flight.task is not None:
            await asyncio.gather(flight.task, return_exceptions=True)

    async def drain_hooks(self) -> None:
        """Wait until every hook has been called for the events so far."""
        task = self._hooks_task
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    # -- the caller's path -------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("this TokenManager is closed")

    def _bind_loop(self) -> None:
        if self.monotonic is None:
            loop = asyncio.get_running_loop()
            # asyncio's own loop reads time.monotonic(): call it directly on the fast
            # path (one Python frame less); any other loop (uvloop, a virtual clock in
            # tests) is asked itself.
            plain = type(loop).time is asyncio.BaseEventLoop.time
            self._now = time.monotonic if plain else loop.time

    def _view(self, *, rejected: bool = False) -> CallerView:
        tok = self._token
        return CallerView(
            now=self._now(),
            held=self._deadlines,
            can_refresh=tok is not None and tok.can_refresh,
            rejected=rejected or (tok is not None and tok.access_token in self._rejected),
            hold_until=self._hold_until,
            last_failed=self._failures_in_row > 0,
        )

    async def _token_slow(self) -> str:
        self._check_open()
        self._bind_loop()
        self._ensure_background()
        while True:
            action = decide(self._view())
            if action is Action.USE:
                return self._access
            if action is Action.USE_AND_REFRESH:
                self._start("stale", force=True)
                return self._access
            if action is Action.FAIL:
                self._raise_last()
            reason = "load" if action is Action.LOAD else "expired"
            before = self._token
            await self._wait(self._start(reason, force=False))
            if self._token is not before or self._token is None:
                continue  # decide again with the token now held
            return self._access

    def _raise_last(self) -> None:
        error = self._last_error
        if error is None:  # pragma: no cover - FAIL is only decided after a failure
            raise NetrexError("the last token refresh failed; the next call tries again")
        raise error.with_traceback(None)

    def _start(self, reason: str, *, force: bool, fresh: bool = False) -> _Flight:
        """The refresh in flight, or a new one (``fresh``: never join a running one)."""
        flight = self._flight
        if flight is not None and not flight.ready.done() and not fresh:
            return flight
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        ready.add_done_callback(_consume_outcome)
        flight = _Flight(reason=reason, ready=ready)
        flight.task = loop.create_task(
            self._fly(flight, force), name=f"netrex_async refresh ({reason})"
        )
        self._flight = flight
        return flight

    async def _wait(self, flight: _Flight) -> None:
        # The refresh runs in its own task: a cancelled caller stops waiting, but the
        # refresh goes on for the others and is never cut half-way.
        await asyncio.shield(flight.ready)

    # -- the refresh transaction -------------------------------------------------------

    async def _fly(self, flight: _Flight, force: bool) -> None:
        started = self._now()
        events: list[TokenEvent] = []
        try:
            await self._transaction(flight, force, started, events)
        except asyncio.CancelledError:
            if not flight.ready.done():
                flight.ready.set_exception(
                    ClosedError(
                        "the token refresh was cancelled before it finished (the "
                        "TokenManager is closing)"
                    )
                )
            raise
        except Exception as e:
            if flight.ready.done():
                # The token was delivered; only the bookkeeping after it failed (an
                # unlock): nothing for the callers to see.
                _log.manager.warning(
                    "after the token refresh: %s: %s",
                    type(e).__name__,
                    safe_text(e, limit=300),
                    extra={"event": "refresh_cleanup_failed", "store": _describe(self.store)},
                )
                return
            if not isinstance(e, NetrexError):  # a bug in a store or OAuth2 client
                _log.manager.error(
                    "unexpected error in the token refresh: %s",
                    type(e).__name__,
                    extra={"event": "refresh_crashed"},
                )
                e = NetrexError(f"the token refresh failed unexpectedly: {type(e).__name__}")
            self._failed(e, reauth=isinstance(e, ReauthorizationRequired), events=events)
            flight.ready.set_exception(e)
        finally:
            if not flight.ready.done():  # pragma: no cover - every path resolves it
                flight.ready.set_result(None)
            if events and self.hooks:
                self._dispatch(events)

    async def _transaction(
        self, flight: _Flight, force: bool, started: float, events: list[TokenEvent]
    ) -> None:
        async with self._locked():
            stored = await self._store_call("read", self.store.load())
            held = self._token
            p = plan(
                held,
                stored,
                expired=self._expired,
                force=force,
                rejected=self._rejected,
                spent=self._spent,
                dead=self._dead,
            )
            if p.step is Step.GIVE_UP:
                if p.token is None:
                    raise ReauthorizationRequired(
                        f"no token is stored in {_describe(self.store)}: authorize first "
                        "(for example `netrex-async login`)"
                    )
                raise ReauthorizationRequired(p.reason)
            assert p.token is not None
            if p.step is Step.ADOPT and held is None:
                self._install(p.token)  # the first load: nothing was adopted
                flight.ready.set_result(None)
                return
            if p.step is Step.ADOPT:
                self._adopt(p.token, events)
                flight.ready.set_result(None)
                return
            if p.step is Step.KEEP:
                if p.token is not held:
                    self._install(p.token)
                flight.ready.set_result(None)
                if p.restore:
                    self._unsaved = p.token
                    await self._save_locked(p.token, why="restore")
                return
            await self._present(flight, p.token, started, events, restore=p.restore)

    async def _present(
        self,
        flight: _Flight,
        base: Token,
        started: float,
        events: list[TokenEvent],
        *,
        restore: bool,
    ) -> None:
        """Present ``base``'s refresh token; use the answer at once, then save it."""
        check = getattr(self.store, "check_lease", None)
        if check is not None:
            # A lost lease means another process may hold the lock now: presenting the
            # refresh token could then be a reuse that revokes the grant.
            await self._store_call("check the lease of", check())
        _log.manager.debug(
            "refreshing token",
            extra={"event": "refresh_start", "grant": base.fingerprint, "reason": flight.reason},
        )
        try:
            new = await self.oauth.refresh(base)
        except InvalidGrant as e:
            again = await self._reload_quietly()
            if (
                again is not None
                and again.refresh_token != base.refresh_token
                and (again.refresh_token is None or again.refresh_token not in self._spent)
                and again.access_token not in self._rejected
            ):
                self._adopt(again, events)
                flight.ready.set_result(None)
                return
            assert base.refresh_token is not None
            self._dead.append(base.refresh_token)
            raise ReauthorizationRequired(
                f"the provider refused the refresh token ({e.error or 'invalid_grant'}): "
                "the grant was revoked or has expired; authorize again"
            ) from None
        if base.refresh_token is not None and new.refresh_token != base.refresh_token:
            self._spent.append(base.refresh_token)
        # From here on the new refresh token is the only one that works: use it now,
        # whatever the store does; save it under the lock, then in the background.
        self._unsaved = new
        self._install(new)
        self._succeeded(new, flight.reason, started, events)
        flight.ready.set_result(None)
        await self._save_locked(new, why="refresh")

    async def _save_locked(self, token: Token, *, why: str) -> None:
        """Save ``token`` (lock held), retrying for up to ``save_timeout`` seconds; then
        leave it to the background with back-off."""
        attempts = 0

        async def once() -> None:
            nonlocal attempts
            attempts += 1
            try:
                await self._store_call("write", self.store.save(token), finish=True)
            except TokenStoreError as e:
                self._save_failures += 1
                raise Transient(e) from None

        policy = RetryPolicy(attempts=20, max_time=self.save_timeout, initial=0.1, max_wait=2.0)
        try:
            await call(
                once,
                policy,
                logger=_log.manager,
                event="save_retry",
                what=f"saving the new token in {_describe(self.store)}",
            )
        except NetrexError as e:
            self._save_failed(token, e, attempts)
            return
        if self._unsaved is token:
            self._unsaved = None
        if attempts > 1 or why == "restore":
            _log.manager.info(
                "token saved after %d attempt(s)%s",
                attempts,
                " (the store had lost it)" if why == "restore" else "",
                extra={"event": "token_saved", "grant": token.fingerprint, "attempt": attempts},
            )

    def _save_failed(self, token: Token, error: NetrexError, attempts: int) -> None:
        _log.manager.error(
            "the new token could not be saved (%s); it is in use, its save is retried "
            "in the background, and the old refresh token will not be used again",
            safe_text(error, limit=300),
            extra={
                "event": "token_unsaved",
                "grant": token.fingerprint,
                "attempt": attempts,
                "store": _describe(self.store),
            },
        )
        if not self._closed and (self._persist_task is None or self._persist_task.done()):
            self._persist_task = asyncio.get_running_loop().create_task(
                self._persist(), name="netrex_async save retry"
            )

    async def _persist(self) -> None:
        """Retry saving the unsaved token with back-off until it lands."""
        failures = 0
        while self._unsaved is not None and not self._closed:
            failures += 1
            pause = 0.0 if is_testing() else min(self.max_refresh_interval, 2.0**failures)
            await asyncio.sleep(pause)
            flight = self._flight
            if flight is not None and flight.task is not None and not flight.task.done():
                await asyncio.gather(flight.task, return_exceptions=True)
                continue
            # A transaction: under the lock it writes the held token back, because the
            # store holds the older one (or none).
            flight = self._start("save", force=False, fresh=True)
            assert flight.task is not None
            await asyncio.gather(flight.task, return_exceptions=True)

    async def _last_save(self, limit: float) -> None:
        token = self._unsaved
        if token is None:
            return
        try:
            async with asyncio.timeout(limit):
                async with self.store.lock():
                    await self.store.save(token)
            self._unsaved = None
        except (Exception, TimeoutError):
            _log.manager.error(
                "closing with a refreshed token that could not be saved: the store holds "
                "an older one, whose refresh token was rotated out",
                extra={"event": "token_lost_at_close", "grant": token.fingerprint},
            )

    async def _reload_quietly(self) -> Token | None:
        try:
            return await self._store_call("read", self.store.load())
        except NetrexError:
            return None

    def _locked(self) -> Any:
        return _GuardedLock(self.store, self._store_wrap)

    def _store_wrap(self, what: str, e: BaseException) -> TokenStoreError:
        return _store_error(self.store, what, e)

    async def _store_call(
        self,
        what: str,
        call: Coroutine[Any, Any, T],
        *,
        limit: float | None = None,
        finish: bool = False,
    ) -> T:
        """Run one store call within ``store_timeout``; any failure is a TokenStoreError.

        ``finish``: a write that must not be cut half-way by a cancellation of this
        task (a new token's save): the call is shielded, and a cancelled caller waits
        for it, within the same bound, before the cancellation goes on.
        """
        timeout = self.store_timeout if limit is None else max(min(limit, self.store_timeout), 0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        task = loop.create_task(call)
        try:
            async with asyncio.timeout(timeout):
                return await (asyncio.shield(task) if finish else task)
        except asyncio.CancelledError:
            if finish:
                await _settle_bounded({task}, deadline - loop.time())
            task.cancel()
            raise
        except TimeoutError:
            task.cancel()
            raise TokenStoreError(
                f"cannot {what} token in {_describe(self.store)}: no answer within {timeout:g} s",
                store=_describe(self.store),
            ) from None
        except NetrexError:
            raise
        except Exception as e:
            raise _store_error(self.store, what, e) from None

    # -- outcomes ----------------------------------------------------------------------

    def _expired(self, token: Token) -> bool:
        # The token held is judged on the monotonic line it was mapped onto when it
        # arrived; any other (a stored one) by its stamps against the same wall clock.
        if token is self._token and self._deadlines is not None:
            return phase(self._deadlines, self._now()) is Phase.EXPIRED
        d = deadlines(token, wall_now=self._wall(), now=0.0, margin=self.margin, skew=self.skew)
        return phase(d, 0.0) is Phase.EXPIRED

    def _install(self, token: Token) -> None:
        d = deadlines(
            token, wall_now=self._wall(), now=self._now(), margin=self.margin, skew=self.skew
        )
        self._token = token
        self._access = token.access_token
        self._deadlines = d
        self._fresh_until = d.fresh_until
        self._changed.set()

    def _succeeded(self, new: Token, reason: str, started: float, events: list[TokenEvent]) -> None:
        now = self._now()
        d = self._deadlines
        # A token fresh for less than half the spacing is a storm in the making (a tiny
        # expires_in, clocks that disagree): back off as if it had arrived stale.
        arrived_fresh = d is None or d.fresh_until - now >= self.min_refresh_interval / 2
        self._stale_in_row = 0 if arrived_fresh else self._stale_in_row + 1
        self._hold_until = now + refresh_hold(
            interval=self.min_refresh_interval,
            cap=self.max_refresh_interval,
            failed=False,
            in_row=self._stale_in_row,
            arrived_fresh=arrived_fresh,
        )
        if not arrived_fresh:
            log_now, held_back = self._warnings.allow("token_arrived_stale", now)
            if log_now:
                _log.manager.warning(
                    "the new token is already %s on arrival (a short expires_in, or clocks "
                    "that disagree); the next refresh waits %.1f s%s",
                    "expired" if d is not None and phase(d, now) is Phase.EXPIRED else "stale",
                    self._hold_until - now,
                    f" ({held_back} more since the last warning)" if held_back else "",
                    extra={"event": "token_arrived_stale", "grant": new.fingerprint},
                )
        self._refreshes += 1
        self._failures_in_row = 0
        self._last_error = None
        self._reauth = False
        self._last_refresh_at = self._wall()
        duration = now - started
        _log.manager.info(
            "token refreshed (%s); expires in %s",
            reason,
            "unknown" if new.expires_at is None else f"{new.expires_at - self._wall():.0f} s",
            extra={
                "event": "token_refreshed",
                "grant": new.fingerprint,
                "reason": reason,
                "expires_in": new.expires_in(self._wall()),
                "duration": duration,
                "store": _describe(self.store),
            },
        )
        events.append(
            TokenRefreshed(
                grant=new.fingerprint, expires_at=new.expires_at, duration=duration, reason=reason
            )
        )

    def _failed(self, e: NetrexError, *, reauth: bool, events: list[TokenEvent]) -> None:
        now = self._now()
        self._failures += 1
        self._failures_in_row += 1
        self._last_error = e
        self._hold_until = now + refresh_hold(
            interval=self.min_refresh_interval,
            cap=self.max_refresh_interval,
            failed=True,
            in_row=self._failures_in_row,
        )
        tok = self._token
        grant = tok.fingerprint if tok else None
        if reauth:
            self._reauth = True
            _log.manager.error(
                "re-authorization required: %s",
                e,
                extra={"event": "reauthorization_required", "grant": grant},
            )
            events.append(ReauthorizationNeeded(grant=grant, reason=str(e)))
            return
        d = self._deadlines
        will_retry = (
            tok is not None
            and self.background
            and d is not None
            and phase(d, now) is not Phase.EXPIRED
        )
        text = f"{type(e).__name__}: {safe_text(e, limit=300)}"
        (_log.manager.warning if will_retry else _log.manager.error)(
            "token refresh failed%s: %s",
            " (will retry while the token still works)" if will_retry else "",
            text,
            extra={
                "event": "refresh_failed",
                "grant": grant or "none",
                "attempt": self._failures_in_row,
                "will_retry": will_retry,
                "expires_in": tok.expires_in(self._wall()) if tok else None,
                "retry_in": self._hold_until - now,
            },
        )
        events.append(
            RefreshFailed(
                grant=grant or "none",
                error=text,
                will_retry=will_retry,
                attempt=self._failures_in_row,
            )
        )

    def _adopt(self, token: Token, events: list[TokenEvent]) -> None:
        self._install(token)
        self._adoptions += 1
        self._failures_in_row = 0
        self._last_error = None
        self._hold_until = float("-inf")
        self._reauth = False
        _log.manager.info(
            "adopted the token another process refreshed",
            extra={
                "event": "token_adopted",
                "grant": token.fingerprint,
                "expires_in": token.expires_in(self._wall()),
                "store": _describe(self.store),
            },
        )
        events.append(TokenAdopted(grant=token.fingerprint, expires_at=token.expires_at))

    def _dispatch(self, events: list[TokenEvent]) -> None:
        # Hooks run in a task of their own, in order: a slow hook (a pager call) must
        # not hold up the callers waiting for this refresh.
        previous = self._hooks_task

        async def run() -> None:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            for event in events:
                await emit(self.hooks, event)

        self._hooks_task = asyncio.get_running_loop().create_task(
            run(), name="netrex_async token event hooks"
        )

    # -- the proactive refresh ---------------------------------------------------------

    def _ensure_background(self) -> None:
        if self.background and self._bg_task is None and not self._closed:
            self._bg_task = asyncio.get_running_loop().create_task(
                self._background(), name="netrex_async proactive refresh"
            )

    async def _background(self) -> None:
        while not self._closed:
            self._changed.clear()
            tok, d = self._token, self._deadlines
            if tok is None or d is None or tok.expires_at is None or not tok.can_refresh:
                await self._changed.wait()
                continue
            now = self._now()
            if self._reauth and now >= self._hold_until:
                await self._changed.wait()  # a person must act: wait for a new token
                continue
            if self._failures_in_row:
                # Back off, but retry more often as expiry nears, never below the spacing.
                delay = self._hold_until - now
            else:
                margin = d.margin
                early = random.uniform(0, min(self.jitter * margin, 30.0)) if self.jitter else 0
                # Wake a little before the fresh phase ends, so that callers find the
                # new token already there rather than start a stale refresh themselves.
                delay = d.fresh_until - now - early - min(0.05 * margin, 1.0)
                delay = max(delay, self._hold_until - now)
            if delay > 0:
                try:
                    await asyncio.wait_for(self._changed.wait(), delay)
                    continue  # a new token arrived: plan again
                except TimeoutError:
                    pass
            if self._token is not tok and not self._failures_in_row:
                continue
            with contextlib.suppress(NetrexError):  # recorded and backed off already
                await self._wait(self._start("proactive", force=True))
            if self._flight is not None and self._flight.task is not None:
                # Let the save finish before planning the next refresh.
                await asyncio.gather(self._flight.task, return_exceptions=True)


class _GuardedLock:
    """``store.lock()`` whose failures are all :class:`TokenStoreError`."""

    def __init__(
        self, store: TokenStore, wrap: Callable[[str, BaseException], TokenStoreError]
    ) -> None:
        self._cm = store.lock()
        self._wrap = wrap

    async def __aenter__(self) -> None:
        try:
            await self._cm.__aenter__()
        except (NetrexError, asyncio.CancelledError):
            raise
        except Exception as e:
            raise self._wrap("lock", e) from None

    async def __aexit__(self, *exc: Any) -> None:
        try:
            await self._cm.__aexit__(*exc)
        except (NetrexError, asyncio.CancelledError):
            raise
        except Exception as e:
            raise self._wrap("unlock", e) from None


def _store_error(store: TokenStore, what: str, e: BaseException) -> TokenStoreError:
    return TokenStoreError(
        f"cannot {what} token in {_describe(store)}: {type(e).__name__}",
        store=_describe(store),
    )


def _describe(store: TokenStore) -> str:
    return str(getattr(store, "description", type(store).__name__))


async def _settle_bounded(tasks: set[asyncio.Task[Any]], limit: float) -> None:
    """Wait up to ``limit`` seconds for cancelled ``tasks``, however often we are poked."""
    if not tasks:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    pending = {t for t in tasks if not t.done()}
    cancelled = False
    # Waited again only after a poke: a wait that ran its course ends it. (Not "until
    # loop.time() reaches the deadline": asyncio runs a timer up to its clock resolution
    # early, so on a clock that stands still while callbacks run (a virtual clock such as
    # looptime's, whose time sits on a microsecond grid the float deadline may miss) the
    # last sliver of a wait would fire at once, for ever.)
    while pending and loop.time() < deadline:
        try:
            await asyncio.wait(pending, timeout=deadline - loop.time())
            break
        except asyncio.CancelledError:
            pending = {t for t in pending if not t.done()}
            cancelled = True  # finish the bounded wait, then pass the cancellation on
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: nobody else will look
    if cancelled:
        raise asyncio.CancelledError


def _consume_outcome(future: asyncio.Future[None]) -> None:
    # Waiters get the outcome through shield(); mark it retrieved so asyncio does not
    # report "exception was never retrieved" when no one was waiting.
    if not future.cancelled():
        future.exception()
