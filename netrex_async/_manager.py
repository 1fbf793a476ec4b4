"""Token sources: a static user token, and the refreshing TokenManager."""

from __future__ import annotations

import asyncio
import collections
import math
import random
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, Self, runtime_checkable

import attrs

from . import _log
from ._errors import InvalidGrant, NetrexError, ReauthorizationRequired
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
from ._redact import fingerprint, safe_text
from ._retry import is_testing
from ._stores._base import TokenStore
from ._token import Token

__all__ = ["StaticToken", "TokenManager", "TokenSource"]

_INF = math.inf
#: A token obtained because of a 401 and refused at once is not refreshed again for
#: this many seconds: the API is refusing the grant, not the token.
REJECTED_AGAIN_HOLDOFF = 30.0


@runtime_checkable
class TokenSource(Protocol):
    """Anything that hands out bearer tokens for the API.

    :class:`NetrexClient` asks ``await token()`` before each request and, when the API
    answers 401, reports the token it sent with ``await invalidate(token)``.
    """

    async def token(self) -> str:
        """A bearer token that is valid now."""
        ...

    async def invalidate(self, access_token: str) -> None:
        """Report that the API rejected ``access_token``; replace it if it is current."""
        ...


@attrs.frozen(repr=False)
class StaticToken:
    """A user token created in the web UI (``</> API``): no expiry known, no refresh.

    The provider recommends this mode "for most API use cases". When the API rejects
    the token (401), :meth:`invalidate` raises :class:`ReauthorizationRequired`: only a
    person can create a new one.
    """

    _token: str = attrs.field(alias="token")

    @_token.validator
    def _check(self, attribute: attrs.Attribute[str], value: str) -> None:
        if not isinstance(value, str) or not value.strip():
            raise ValueError("a user token must be a non-empty string")
        if value != value.strip() or any(c in value for c in "\r\n\x00"):
            raise ValueError("a user token must not contain whitespace or control characters")

    def __repr__(self) -> str:
        return f"StaticToken(fingerprint={fingerprint(self._token)!r})"

    async def token(self) -> str:
        """The user token."""
        return self._token

    async def invalidate(self, access_token: str) -> None:
        """The API rejected the user token.

        Raises:
            ReauthorizationRequired: Always, when ``access_token`` is this token.
        """
        if access_token == self._token:
            _log.manager.error(
                "the API rejected the user token (HTTP 401)",
                extra={"event": "reauthorization_required", "grant": fingerprint(self._token)},
            )
            raise ReauthorizationRequired(
                "the API rejected the user token (HTTP 401): it was deleted or has expired; "
                "create a new one in the web UI (</> API)"
            )


def _hook_tuple(hooks: Iterable[Hook]) -> tuple[Hook, ...]:
    return tuple(hooks)


def default_margin(lifetime: float) -> float:
    """Refresh this long before expiry: the smaller of 300 s and half the lifetime."""
    return min(300.0, lifetime / 2)


def default_skew(lifetime: float) -> float:
    """Treat a token as expired this long before its expiry: min(5 s, a tenth of its life)."""
    return min(5.0, lifetime / 10)


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

    The manager borrows ``oauth`` and ``store``: it closes neither.

    Args:
        oauth: The client that talks to the token endpoint.
        store: Where the grant's token lives; it must hold a token (after a login) before
            the first :meth:`token` call, or be given one with :meth:`set_token`.
        margin: Seconds before expiry when a token becomes stale; default
            ``min(300, lifetime / 2)``. Capped at nine tenths of the lifetime.
        skew: Seconds before expiry when a token counts as expired; default
            ``min(5, lifetime / 10)``. Capped below the margin.
        background: Run the proactive refresh task.
        hooks: Callables (plain or async) called with each :data:`TokenEvent`, in order,
            in a task of their own so that a slow hook never delays a caller
            (:meth:`drain_hooks` waits for them).
        jitter: Fraction of the margin (at most 30 s) by which the background refresh is
            moved earlier at random, so a fleet does not refresh in step.
    """

    oauth: OAuth2Client
    store: TokenStore
    margin: float | None = attrs.field(default=None, kw_only=True)
    skew: float | None = attrs.field(default=None, kw_only=True)
    background: bool = attrs.field(default=True, kw_only=True)
    hooks: Sequence[Hook] = attrs.field(default=(), kw_only=True, converter=_hook_tuple)
    jitter: float = attrs.field(default=0.1, kw_only=True)
    clock: Callable[[], float] = attrs.field(default=time.time, kw_only=True)
    monotonic: Callable[[], float] = attrs.field(default=time.monotonic, kw_only=True)

    _token: Token | None = attrs.field(init=False, default=None)
    _access: str = attrs.field(init=False, default="")
    _fresh_until: float = attrs.field(init=False, default=-_INF)
    _stale_until: float = attrs.field(init=False, default=-_INF)
    _refresh_task: asyncio.Task[None] | None = attrs.field(init=False, default=None)
    _bg_task: asyncio.Task[None] | None = attrs.field(init=False, default=None)
    _changed: asyncio.Event = attrs.field(init=False, factory=asyncio.Event)
    _rejected: collections.deque[str] = attrs.field(
        init=False, factory=lambda: collections.deque(maxlen=16)
    )
    _dead_refresh: collections.deque[str] = attrs.field(
        init=False, factory=lambda: collections.deque(maxlen=16)
    )
    _closed: bool = attrs.field(init=False, default=False)
    _hooks_task: asyncio.Task[None] | None = attrs.field(init=False, default=None)
    _after_401: tuple[str, float] | None = attrs.field(init=False, default=None)
    _refreshes: int = attrs.field(init=False, default=0)
    _failures: int = attrs.field(init=False, default=0)
    _failures_in_row: int = attrs.field(init=False, default=0)
    _adoptions: int = attrs.field(init=False, default=0)
    _invalidations: int = attrs.field(init=False, default=0)
    _last_refresh_at: float | None = attrs.field(init=False, default=None)
    _reauth: bool = attrs.field(init=False, default=False)

    def __repr__(self) -> str:
        grant = self._token.fingerprint if self._token else None
        return f"TokenManager(grant={grant!r}, store={self.store!r})"

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._ensure_background()
        return self

    async def aclose(self) -> None:
        """Stop the background task; let a refresh in flight finish (up to 10 s) and its
        hooks run (up to 5 s). Idempotent.

        A refresh is never cut in the middle of its save: its new refresh token would
        be lost to the other processes sharing the grant.
        """
        self._closed = True
        bg, self._bg_task = self._bg_task, None
        if bg is not None:
            bg.cancel()
            await asyncio.gather(bg, return_exceptions=True)
        task = self._refresh_task
        if task is not None and not task.done():
            await asyncio.wait({task}, timeout=10)
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        hooks = self._hooks_task
        if hooks is not None and not hooks.done():
            await asyncio.wait({hooks}, timeout=5)
            hooks.cancel()
            await asyncio.gather(hooks, return_exceptions=True)

    # -- the public source -------------------------------------------------------------

    async def token(self) -> str:
        """A bearer token valid now, refreshing first only if it has expired.

        Raises:
            ReauthorizationRequired: No token is stored, or the grant is dead.
            OAuthError, TransportError, TokenStoreError: The refresh of an expired token
                failed (every waiting caller gets the same error; the next call retries).
        """
        if self.monotonic() < self._fresh_until:
            return self._access
        return await self._token_slow()

    async def invalidate(self, access_token: str) -> None:
        """The API rejected ``access_token``: refresh, unless it was already replaced.

        A burst of 401s for the same token causes one refresh. A token that a 401 has
        just bought and that is refused at once too is not refreshed again for
        ``REJECTED_AGAIN_HOLDOFF`` seconds (logged at WARNING, ``token_rejected_again``):
        the API refuses the grant, and a refresh per call would not help.
        """
        if self._token is None or self._token.access_token != access_token:
            task = self._refresh_task
            if task is not None and not task.done():
                await asyncio.shield(task)
            return
        after_401 = self._after_401
        if (
            after_401 is not None
            and after_401[0] == access_token
            and self.monotonic() - after_401[1] < REJECTED_AGAIN_HOLDOFF
        ):
            # The token a 401 just bought is refused too: the API refuses this grant
            # for another reason (rights, account). Do not burn a refresh per call.
            _log.manager.warning(
                "the API rejected a token refreshed for a 401 moments ago; "
                "not refreshing again for %.0f s",
                REJECTED_AGAIN_HOLDOFF,
                extra={"event": "token_rejected_again", "grant": self._token.fingerprint},
            )
            return
        if access_token not in self._rejected:
            self._rejected.append(access_token)
            self._invalidations += 1
            _log.manager.info(
                "the API rejected the current token; refreshing",
                extra={"event": "token_invalidated", "grant": self._token.fingerprint},
            )
        self._fresh_until = self._stale_until = -_INF
        await self._join_refresh("invalidated")
        if self._token is not None and self._token.access_token != access_token:
            self._after_401 = (self._token.access_token, self.monotonic())

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
        )

    async def refresh(self) -> Token:
        """Refresh now, whatever the token's age (joins a refresh already running).

        Raises:
            ReauthorizationRequired: The grant is gone.
            OAuthError: The token endpoint refused the refresh.
            TransportError: The provider could not be reached (after retries).
            TokenStoreError: The store could not be read, locked or written.
        """
        if self._token is None:
            before = self._refreshes
            await self._join_refresh("load")
            loaded = self.current  # (a property: mypy keeps _token narrowed to None here)
            if self._refreshes != before and loaded is not None:
                return loaded  # the stored token had expired: loading refreshed it
        held = self._token
        self._fresh_until = self._stale_until = -_INF
        try:
            await self._join_refresh("forced")
        except BaseException:
            # A failed forced refresh must not make a token that still works look
            # expired: callers would then wait for (and fail with) every next refresh.
            if held is not None and self._token is held and held.access_token not in self._rejected:
                self._install(held)
            raise
        assert self._token is not None
        return self._token

    async def set_token(self, token: Token) -> None:
        """Make ``token`` the grant's token: save it to the store and use it.

        For a fresh login: ``await manager.set_token(await oauth.exchange(url, request))``.
        """
        async with self.store.lock():
            await self.store.save(token)
        self._reauth = False
        self._install(token)

    # -- internals ---------------------------------------------------------------------

    def _ensure_background(self) -> None:
        if self.background and self._bg_task is None and not self._closed:
            self._bg_task = asyncio.get_running_loop().create_task(
                self._background(), name="netrex_async proactive refresh"
            )

    def _phases(self, token: Token) -> tuple[float, float, float]:
        lifetime = token.lifetime
        if lifetime is None or token.expires_at is None:
            return _INF, _INF, 0.0
        lifetime = max(lifetime, 1e-3)
        margin = default_margin(lifetime) if self.margin is None else self.margin
        margin = min(margin, lifetime * 0.9)
        skew = default_skew(lifetime) if self.skew is None else self.skew
        skew = min(skew, margin * 0.5)
        remaining = token.expires_at - self.clock()
        expires_mono = self.monotonic() + remaining
        return expires_mono - margin, expires_mono - skew, margin

    def _install(self, token: Token) -> None:
        fresh, stale, _ = self._phases(token)
        self._token = token
        self._access = token.access_token
        self._stale_until = stale
        self._fresh_until = fresh
        self._changed.set()

    def _expired(self, token: Token) -> bool:
        return self.monotonic() >= self._phases(token)[1]

    async def _token_slow(self) -> str:
        if self._closed:
            raise RuntimeError("this TokenManager is closed")
        self._ensure_background()
        if self._token is None:
            await self._join_refresh("load")
        now = self.monotonic()
        if now < self._fresh_until:
            return self._access
        if now < self._stale_until:
            if self._token is not None and self._token.can_refresh:
                self._start_refresh("stale")
            return self._access
        await self._join_refresh("expired")
        return self._access

    def _start_refresh(self, reason: str) -> asyncio.Task[None]:
        task = self._refresh_task
        if task is None or task.done():
            task = asyncio.get_running_loop().create_task(
                self._transaction(reason), name=f"netrex_async refresh ({reason})"
            )
            task.add_done_callback(_consume_outcome)
            self._refresh_task = task
        return task

    async def _join_refresh(self, reason: str) -> None:
        # The refresh runs in its own task: a cancelled caller stops waiting, but the
        # refresh goes on for the others and is never cut half-way.
        task = self._start_refresh(reason)
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if task.cancelled() and (me is None or not me.cancelling()):
                # Not this caller's cancellation: aclose() (or loop shutdown) stopped it.
                raise NetrexError(
                    "the token refresh was cancelled before it finished (is the "
                    "TokenManager closing?); the next call tries again"
                ) from None
            raise

    async def _transaction(self, reason: str) -> None:
        started = self.monotonic()
        events: list[TokenEvent] = []
        try:
            await self._locked_transaction(reason, started, events)
        except ReauthorizationRequired as e:
            self._reauth = True
            grant = self._token.fingerprint if self._token else None
            _log.manager.error(
                "re-authorization required: %s",
                e,
                extra={"event": "reauthorization_required", "grant": grant},
            )
            events.append(ReauthorizationNeeded(grant=grant, reason=str(e)))
            raise
        except Exception as e:
            self._failures += 1
            self._failures_in_row += 1
            tok = self._token
            will_retry = tok is not None and self.background and not self._expired(tok)
            grant = tok.fingerprint if tok else "none"
            text = f"{type(e).__name__}: {safe_text(e, limit=300)}"
            (_log.manager.warning if will_retry else _log.manager.error)(
                "token refresh failed%s: %s",
                " (will retry while the token still works)" if will_retry else "",
                text,
                extra={
                    "event": "refresh_failed",
                    "grant": grant,
                    "attempt": self._failures_in_row,
                    "will_retry": will_retry,
                    "expires_in": tok.expires_in(self.clock()) if tok else None,
                },
            )
            events.append(
                RefreshFailed(
                    grant=grant, error=text, will_retry=will_retry, attempt=self._failures_in_row
                )
            )
            raise
        finally:
            if events and self.hooks:
                self._dispatch(events)

    async def _locked_transaction(
        self, reason: str, started: float, events: list[TokenEvent]
    ) -> None:
        async with self.store.lock():
            stored = await self.store.load()
            held = self._token
            if held is None:
                if stored is None:
                    raise ReauthorizationRequired(
                        f"no token is stored in {_describe(self.store)}: authorize first "
                        "(for example `netrex-async login`)"
                    )
                self._install(stored)
                if not self._expired(stored) and stored.access_token not in self._rejected:
                    return
                held = stored
            elif (
                stored is not None
                and stored.access_token != held.access_token
                and stored.access_token not in self._rejected
            ):
                if not self._expired(stored):
                    self._adopt(stored, events)
                    return
                held = stored  # its refresh token is the newest one
            if held.refresh_token is None:
                raise ReauthorizationRequired(
                    "the token has expired and this grant is temporary (no refresh token): "
                    "authorize again"
                )
            if held.refresh_token in self._dead_refresh:
                raise ReauthorizationRequired(
                    "the provider refused this grant's refresh token: authorize again"
                )
            _log.manager.debug(
                "refreshing token",
                extra={"event": "refresh_start", "grant": held.fingerprint, "reason": reason},
            )
            try:
                new = await self.oauth.refresh(held)
            except InvalidGrant as e:
                again = await self.store.load()
                if (
                    again is not None
                    and again.refresh_token != held.refresh_token
                    and again.access_token not in self._rejected
                ):
                    self._adopt(again, events)
                    return
                self._dead_refresh.append(held.refresh_token)
                raise ReauthorizationRequired(
                    f"the provider refused the refresh token ({e.error or 'invalid_grant'}): "
                    "the grant was revoked or has expired; authorize again"
                ) from None
            # A new refresh token exists only here now: finish saving it even if this
            # task is cancelled, or every process sharing the grant would lose it; and
            # keep the lock until it is saved, or another process could load the old
            # token and present the rotated-out refresh token (reuse: the grant dies).
            saving = asyncio.ensure_future(self.store.save(new))
            try:
                await asyncio.shield(saving)
            except asyncio.CancelledError:
                await _settle(saving)
                if not saving.cancelled() and saving.exception() is None:
                    self._install(new)
                raise
            self._install(new)
        self._refreshes += 1
        self._failures_in_row = 0
        self._reauth = False
        self._last_refresh_at = self.clock()
        duration = self.monotonic() - started
        _log.manager.info(
            "token refreshed (%s); expires in %s",
            reason,
            "unknown" if new.expires_at is None else f"{new.expires_at - self.clock():.0f} s",
            extra={
                "event": "token_refreshed",
                "grant": new.fingerprint,
                "reason": reason,
                "expires_in": new.expires_in(self.clock()),
                "duration": duration,
                "store": _describe(self.store),
            },
        )
        events.append(
            TokenRefreshed(
                grant=new.fingerprint, expires_at=new.expires_at, duration=duration, reason=reason
            )
        )

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

    async def drain_hooks(self) -> None:
        """Wait until every hook has been called for the events so far."""
        task = self._hooks_task
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    def _adopt(self, token: Token, events: list[TokenEvent]) -> None:
        self._install(token)
        self._adoptions += 1
        self._failures_in_row = 0
        self._reauth = False
        _log.manager.info(
            "adopted the token another process refreshed",
            extra={
                "event": "token_adopted",
                "grant": token.fingerprint,
                "expires_in": token.expires_in(self.clock()),
                "store": _describe(self.store),
            },
        )
        events.append(TokenAdopted(grant=token.fingerprint, expires_at=token.expires_at))

    async def _background(self) -> None:
        failures = 0
        while not self._closed:
            self._changed.clear()
            tok = self._token
            if tok is None or tok.expires_at is None or not tok.can_refresh or self._reauth:
                await self._changed.wait()
                continue
            now = self.monotonic()
            if failures:
                backoff = 0.01 if is_testing() else min(60.0, 0.5 * 2 ** (failures - 1))
                delay = min(backoff, max(0.01, (self._stale_until - now) / 2))
            else:
                margin = self._phases(tok)[2]
                early = random.uniform(0, min(self.jitter * margin, 30.0)) if self.jitter else 0
                # Wake a little before the fresh phase ends, so that callers find the
                # new token already there rather than start a stale refresh themselves.
                delay = self._fresh_until - now - early - min(0.05 * margin, 1.0)
            if delay > 0:
                try:
                    await asyncio.wait_for(self._changed.wait(), delay)
                    continue  # a new token arrived: plan again
                except TimeoutError:
                    pass
            if self._token is not tok and not failures:
                continue
            try:
                await self._join_refresh("proactive")
                failures = 0
            except ReauthorizationRequired:
                failures = 0
            except NetrexError:
                failures += 1
            except Exception:  # a bug in a store or hook must not end the loop
                _log.manager.exception(
                    "unexpected error in proactive refresh", extra={"event": "refresh_crashed"}
                )
                failures += 1


def _describe(store: TokenStore) -> str:
    return str(getattr(store, "description", type(store).__name__))


async def _settle(future: asyncio.Future[None]) -> None:
    """Wait until ``future`` is done, however often the waiting task is cancelled."""
    while not future.done():
        try:
            await asyncio.wait({future})
        except asyncio.CancelledError:
            continue


def _consume_outcome(task: asyncio.Task[None]) -> None:
    # Waiters get the outcome through shield(); mark it retrieved so asyncio does not
    # report "exception was never retrieved" when no one was waiting.
    if not task.cancelled():
        task.exception()
