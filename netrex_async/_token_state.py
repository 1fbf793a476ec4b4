"""What the TokenManager does with a token: pure decisions, no I/O, no clock of its own.

Two questions are answered here, each by one function of plain values, in the spirit of
google-auth's ``token_state``:

* :func:`decide`: a caller asks for a token. Use the one held, use it and start a
  refresh behind the caller's back, wait for a refresh, load the store, or give the last
  refresh error back at once (while a failed refresh backs off)?
* :func:`plan`: a refresh transaction holds the store's lock and has read the store.
  Keep the token held, adopt the stored one (another process refreshed), present a
  refresh token (and which), or give up (a person must authorize again)?

The manager only carries the answers out. Every rule of "Refresh, precisely" and "Faults,
precisely" that concerns a decision is here and is tested as a table of cases, without
a network, a store or a clock.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Container

import attrs

from ._token import Token

__all__ = [
    "Action",
    "CallerView",
    "Deadlines",
    "Phase",
    "Plan",
    "Step",
    "deadlines",
    "decide",
    "default_margin",
    "default_skew",
    "phase",
    "plan",
    "refresh_hold",
]


def default_margin(lifetime: float) -> float:
    """Refresh this long before expiry: the smaller of 300 s and half the lifetime."""
    return min(300.0, lifetime / 2)


def default_skew(lifetime: float) -> float:
    """Treat a token as expired this long before its expiry: min(5 s, a tenth of its life)."""
    return min(5.0, lifetime / 10)


class Phase(enum.Enum):
    """Where a token is in its life."""

    FRESH = "fresh"
    """Before ``expires_at - margin``: use it, nothing else."""
    STALE = "stale"
    """Before ``expires_at - skew``: still good; time to refresh."""
    EXPIRED = "expired"
    """From ``expires_at - skew`` on: no caller gets it while a refresh can help."""


@attrs.frozen
class Deadlines:
    """A token's phase boundaries on the manager's monotonic time line.

    Attributes:
        fresh_until: When the token turns stale (``inf``: it never does).
        stale_until: When it counts as expired (``inf``: never).
        margin: The margin used, in seconds (0 for a token without expiry).
    """

    fresh_until: float
    stale_until: float
    margin: float


_NEVER = Deadlines(fresh_until=float("inf"), stale_until=float("inf"), margin=0.0)


def deadlines(
    token: Token,
    *,
    wall_now: float,
    now: float,
    margin: float | None = None,
    skew: float | None = None,
) -> Deadlines:
    """Map ``token``'s expiry (epoch seconds, stamped by the wall clock) onto the
    monotonic line at this moment: ``wall_now`` and ``now`` are the same instant on both.

    The margin defaults to :func:`default_margin` and is capped at nine tenths of the
    lifetime; the skew defaults to :func:`default_skew` and is capped at half the margin,
    so every token, however short, has a fresh, a stale and an expired phase.
    """
    lifetime = token.lifetime
    if lifetime is None or token.expires_at is None:
        return _NEVER
    lifetime = max(lifetime, 1e-3)
    m = default_margin(lifetime) if margin is None else margin
    m = min(m, lifetime * 0.9)
    s = default_skew(lifetime) if skew is None else skew
    s = min(s, m * 0.5)
    expires = now + (token.expires_at - wall_now)
    return Deadlines(fresh_until=expires - m, stale_until=expires - s, margin=m)


def phase(d: Deadlines, now: float) -> Phase:
    """The phase at ``now`` of a token with deadlines ``d``."""
    if now < d.fresh_until:
        return Phase.FRESH
    if now < d.stale_until:
        return Phase.STALE
    return Phase.EXPIRED


class Action(enum.Enum):
    """What :meth:`TokenManager.token` does."""

    USE = "use"
    """Return the token held."""
    USE_AND_REFRESH = "use_and_refresh"
    """Return the token held, and start a refresh that no caller waits for."""
    REFRESH = "refresh"
    """Wait for a refresh (start it, or join the one in flight)."""
    LOAD = "load"
    """No token is held: wait for the store to be read."""
    FAIL = "fail"
    """Raise the last refresh error at once: a failed refresh is backing off."""


@attrs.frozen(kw_only=True)
class CallerView:
    """What :func:`decide` knows when a caller asks for a token.

    Attributes:
        now: The manager's monotonic time.
        held: The deadlines of the token held, or ``None`` when none is held.
        can_refresh: The token held has a refresh token.
        rejected: The API refused the token held (a 401 was reported for it).
        hold_until: No new refresh starts before this time: either a refresh succeeded
            moments ago (no storms, however the clocks disagree) or one failed and is
            backing off.
        last_failed: The last refresh failed (so the hold is a back-off).
    """

    now: float
    held: Deadlines | None
    can_refresh: bool = True
    rejected: bool = False
    hold_until: float = float("-inf")
    last_failed: bool = False


def decide(view: CallerView) -> Action:
    """What to do for a caller who wants a token now.

    * No token held: :attr:`Action.LOAD` (:attr:`Action.FAIL` while a failed load
      backs off).
    * Fresh, and not rejected: :attr:`Action.USE`.
    * Within a hold: a refresh just succeeded, so the newest token is used even if it
      looks stale or expired (its stamps and our clock disagree, or it was issued with a
      tiny lifetime): :attr:`Action.USE`. A refresh just failed: a token that still works
      is used; an expired or rejected one gives the last error, :attr:`Action.FAIL`.
    * Rejected (outside a hold): :attr:`Action.REFRESH`.
    * Stale: :attr:`Action.USE_AND_REFRESH` when it has a refresh token, else
      :attr:`Action.USE`.
    * Expired: :attr:`Action.REFRESH` (the transaction also finds a token another
      process stored, or tells that the grant is gone).
    """
    held = view.held
    if held is None:
        backing_off = view.last_failed and view.now < view.hold_until
        return Action.FAIL if backing_off else Action.LOAD
    at = phase(held, view.now)
    if at is Phase.FRESH and not view.rejected:
        return Action.USE
    if view.now < view.hold_until:
        if not view.last_failed:
            return Action.USE
        if view.rejected or at is Phase.EXPIRED:
            return Action.FAIL
        return Action.USE
    if view.rejected:
        return Action.REFRESH
    if at is Phase.STALE:
        return Action.USE_AND_REFRESH if view.can_refresh else Action.USE
    return Action.REFRESH


def refresh_hold(
    *, interval: float, cap: float, failed: bool, in_row: int, arrived_fresh: bool = True
) -> float:
    """Seconds after a refresh before the next may start.

    After a success: ``interval`` when the new token arrived fresh, doubling for each
    refresh in a row whose token arrived already stale or expired (so a provider or clock
    that makes every token look dead costs a few requests a minute, not thousands a
    second). After a failure: ``interval`` doubling with each failure in a row. Both are
    capped at ``cap``.

    Args:
        interval: The shortest spacing of two refreshes.
        cap: The longest hold.
        failed: The refresh failed.
        in_row: Failures in a row (``failed``), or refreshes in a row whose token did
            not arrive fresh (success), this one included.
        arrived_fresh: The new token was fresh on arrival (success only).
    """
    if not failed and arrived_fresh:
        return min(interval, cap)
    doublings = max(in_row - 1, 0) if failed else max(in_row, 1)
    return min(cap, interval * 2.0 ** min(doublings, 32))


class Step(enum.Enum):
    """What a refresh transaction does once it holds the lock and has read the store."""

    KEEP = "keep"
    """Nothing to refresh: the token in :attr:`Plan.token` is good (install it if it is
    not the one held, and write it back if :attr:`Plan.restore`)."""
    ADOPT = "adopt"
    """Another process stored a newer, usable token: use it."""
    REFRESH = "refresh"
    """Present the refresh token of :attr:`Plan.token`."""
    GIVE_UP = "give_up"
    """No refresh can help: a person must authorize again (:attr:`Plan.reason`)."""


@attrs.frozen(kw_only=True)
class Plan:
    """The answer of :func:`plan`.

    Attributes:
        step: What to do.
        token: The token the step concerns (``None`` only for :attr:`Step.GIVE_UP`).
        restore: Write the held token to the store: it is missing there (a Redis that
            restarted empty) or older (a save that failed after a rotation).
        reason: Why, for :attr:`Step.GIVE_UP` (no secret in it).
    """

    step: Step
    token: Token | None = None
    restore: bool = False
    reason: str = ""


def plan(
    held: Token | None,
    stored: Token | None,
    *,
    expired: Callable[[Token], bool],
    force: bool,
    rejected: Container[str] = (),
    spent: Container[str] = (),
    dead: Container[str] = (),
) -> Plan:
    """Decide a refresh transaction.

    Args:
        held: The token this manager holds (``None`` before the first load).
        stored: The token the store holds now.
        expired: Whether a token counts as expired now.
        force: Refresh even if the token is not expired (a stale or proactive refresh,
            a rejected token, an explicit refresh); otherwise only an expired token is.
        rejected: Access tokens the API refused.
        spent: Refresh tokens this process presented and saw rotated out: a stored token
            carrying one is *older* than the one held, never to be adopted, and its
            refresh token is never presented again (reuse revokes the grant).
        dead: Refresh tokens the provider refused.

    The rules, in order:

    1. Nothing held, nothing stored: give up (authorize first).
    2. A stored token that differs from the one held, whose refresh token is not spent
       and which the API has not refused, is newer: adopt it if it is not expired;
       otherwise refresh with its refresh token (the newest one).
    3. Otherwise the token held is the base (the stored one when nothing is held). It is
       written back if the store lost it or holds an older one.
    4. Not forced and not expired: keep it.
    5. No refresh token (a temporary grant), a refused or a spent one: give up.
    6. Otherwise refresh with it.
    """
    if held is None and stored is None:
        return Plan(step=Step.GIVE_UP, reason="no token is stored")
    newer = (
        stored is not None
        and (held is None or stored.access_token != held.access_token)
        and (stored.refresh_token is None or stored.refresh_token not in spent)
        and stored.access_token not in rejected
    )
    if newer:
        assert stored is not None
        if not expired(stored):
            return Plan(step=Step.ADOPT, token=stored)
        base = stored
        restore = False
    elif held is not None:
        base = held
        restore = stored is None or (
            stored.access_token != held.access_token
            and stored.refresh_token is not None
            and stored.refresh_token in spent
        )
    else:
        # Nothing held; the stored token was refused by the API or is older than a
        # token this process once held (both only after a restart of the manager).
        assert stored is not None
        base = stored
        restore = False
    if not force and not expired(base) and base.access_token not in rejected:
        return Plan(step=Step.KEEP, token=base, restore=restore)
    rt = base.refresh_token
    if rt is None:
        if not force or expired(base):
            return Plan(
                step=Step.GIVE_UP,
                token=base,
                reason="the token has expired and this grant is temporary (no refresh "
                "token): authorize again",
            )
        if base.access_token in rejected:
            return Plan(
                step=Step.GIVE_UP,
                token=base,
                reason="the API refused the token and this grant is temporary (no "
                "refresh token): authorize again",
            )
        return Plan(step=Step.KEEP, token=base, restore=restore)
    if rt in dead:
        return Plan(
            step=Step.GIVE_UP,
            token=base,
            reason="the provider refused this grant's refresh token: authorize again",
        )
    if rt in spent:
        return Plan(
            step=Step.GIVE_UP,
            token=base,
            reason="the only refresh token at hand was already rotated out (presenting it "
            "again would revoke the grant): authorize again",
        )
    return Plan(step=Step.REFRESH, token=base, restore=restore)
