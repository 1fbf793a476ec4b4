"""What a TokenManager tells the outside: frozen events, hooks, and a stats snapshot.

Events are frozen values in the manner of aiohttp's tracing parameters. None carries a
secret: grants are named by :attr:`Token.fingerprint`, a short hash.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeAlias

import attrs

from . import _log

__all__ = [
    "Hook",
    "ManagerStats",
    "ReauthorizationNeeded",
    "RefreshFailed",
    "TokenAdopted",
    "TokenEvent",
    "TokenRefreshed",
]


@attrs.frozen(kw_only=True)
class TokenRefreshed:
    """This process refreshed the grant's token and saved it to the store.

    Attributes:
        grant: Fingerprint of the grant (see :attr:`Token.fingerprint`).
        expires_at: Epoch seconds when the new token expires, or ``None`` if unknown.
        duration: Seconds the refresh transaction took (lock, reload, request, save).
        reason: ``"proactive"`` (background), ``"stale"``, ``"expired"``, ``"invalidated"``
            (a 401 rejected the old token) or ``"forced"`` (:meth:`TokenManager.refresh`).
    """

    grant: str
    expires_at: float | None
    duration: float
    reason: str


@attrs.frozen(kw_only=True)
class RefreshFailed:
    """A refresh attempt failed.

    Attributes:
        grant: Fingerprint of the grant.
        error: The exception's type and message (already free of secrets).
        will_retry: Whether the manager will try again by itself (the token still works).
        attempt: How many refreshes in a row have failed, this one included.
    """

    grant: str
    error: str
    will_retry: bool
    attempt: int


@attrs.frozen(kw_only=True)
class ReauthorizationNeeded:
    """The grant is dead: a person must authorize the app again.

    Attributes:
        grant: Fingerprint of the grant, or ``None`` when no token was ever stored.
        reason: Why, in words fit for an alert.
    """

    grant: str | None
    reason: str


@attrs.frozen(kw_only=True)
class TokenAdopted:
    """Another process (or the store's owner) refreshed the grant; this one took its token.

    Attributes:
        grant: Fingerprint of the grant.
        expires_at: When the adopted token expires.
    """

    grant: str
    expires_at: float | None


TokenEvent: TypeAlias = TokenRefreshed | RefreshFailed | ReauthorizationNeeded | TokenAdopted
#: A hook is called with each event; it may be a plain function or a coroutine function.
Hook: TypeAlias = Callable[[TokenEvent], Awaitable[None] | None]


@attrs.frozen(kw_only=True)
class ManagerStats:
    """A snapshot of a :class:`TokenManager`'s counters, for metrics exporters.

    Attributes:
        refreshes: Successful refreshes done by this process.
        failures: Failed refresh attempts.
        adoptions: Tokens taken from the store because another process refreshed.
        invalidations: Tokens reported rejected by the API (401) while current.
        last_refresh_at: Epoch seconds of the last successful refresh, or ``None``.
        expires_at: Expiry of the current token, or ``None`` (unknown, or no token).
        grant: Fingerprint of the current grant, or ``None``.
        reauthorization_required: Whether the grant is known to be dead.
        unsaved: A refreshed token is in use but not yet in the store (a failed save is
            being retried; the old refresh token is never presented again meanwhile).
        save_failures: Failed attempts to save a refreshed token.
    """

    refreshes: int = 0
    failures: int = 0
    adoptions: int = 0
    invalidations: int = 0
    last_refresh_at: float | None = None
    expires_at: float | None = None
    grant: str | None = None
    reauthorization_required: bool = False
    unsaved: bool = False
    save_failures: int = 0


async def emit(hooks: Sequence[Hook], event: TokenEvent) -> None:
    """Call every hook with ``event``; a hook that raises is logged, never propagated."""
    for hook in hooks:
        try:
            result = hook(event)
            if inspect.isawaitable(result):
                await result
        except Exception:
            _log.manager.exception(
                "token event hook %r raised; the refresh goes on",
                getattr(hook, "__qualname__", hook),
                extra={"event": "hook_failed", "hook_event": type(event).__name__},
            )
