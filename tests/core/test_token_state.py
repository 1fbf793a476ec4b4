"""The manager's decisions as tables: no network, no store, no clock."""

from __future__ import annotations

import math

import pytest

from netrex_async import Token
from netrex_async._token_state import (
    Action,
    CallerView,
    Deadlines,
    Phase,
    Step,
    deadlines,
    decide,
    phase,
    plan,
    refresh_hold,
)

INF = math.inf
D = Deadlines(fresh_until=100.0, stale_until=110.0, margin=20.0)


def tok(n: int, *, expires_at: float | None = 1000.0, refresh: bool = True) -> Token:
    return Token(
        access_token=f"access-{n}",
        refresh_token=f"refresh-{n}" if refresh else None,
        issued_at=0.0,
        expires_at=expires_at,
    )


# -- phases ------------------------------------------------------------------------------


def test_deadlines_map_the_wall_clock_onto_the_monotonic_line():
    t = tok(1, expires_at=3600.0)
    d = deadlines(t, wall_now=600.0, now=10.0)
    # 3000 s left at wall 600 = monotonic 10: expiry at monotonic 3010
    assert d.stale_until == 3010.0 - 5.0
    assert d.fresh_until == 3010.0 - 300.0
    assert d.margin == 300.0


def test_a_tiny_lifetime_still_has_three_phases():
    t = Token(access_token="a", issued_at=0.0, expires_at=1.0)
    d = deadlines(t, wall_now=0.0, now=0.0)
    assert 0 < d.fresh_until < d.stale_until < 1.0
    assert [phase(d, x) for x in (0.0, 0.7, 0.95)] == [Phase.FRESH, Phase.STALE, Phase.EXPIRED]


def test_settings_are_capped_so_phases_never_vanish():
    t = Token(access_token="a", issued_at=0.0, expires_at=10.0)
    d = deadlines(t, wall_now=0.0, now=0.0, margin=600, skew=600)
    assert d.fresh_until == pytest.approx(1.0)  # margin capped at 9/10 of the lifetime
    assert d.stale_until == pytest.approx(5.5)  # skew capped at half the margin


def test_a_token_without_expiry_is_always_fresh():
    d = deadlines(tok(1, expires_at=None), wall_now=0.0, now=0.0)
    assert phase(d, 1e12) is Phase.FRESH


# -- the caller ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("view", "action"),
    [
        (CallerView(now=0, held=None), Action.LOAD),
        (CallerView(now=0, held=None, hold_until=5, last_failed=True), Action.FAIL),
        (CallerView(now=50, held=D), Action.USE),
        (CallerView(now=105, held=D), Action.USE_AND_REFRESH),
        (CallerView(now=105, held=D, can_refresh=False), Action.USE),
        (CallerView(now=120, held=D), Action.REFRESH),
        (CallerView(now=50, held=D, rejected=True), Action.REFRESH),
        # a refresh just succeeded: use the newest token whatever it looks like
        (CallerView(now=120, held=D, hold_until=121), Action.USE),
        (CallerView(now=105, held=D, hold_until=121), Action.USE),
        (CallerView(now=50, held=D, rejected=True, hold_until=121), Action.USE),
        # a refresh just failed: a working token is used, an expired or rejected one fails
        (CallerView(now=105, held=D, hold_until=121, last_failed=True), Action.USE),
        (CallerView(now=120, held=D, hold_until=121, last_failed=True), Action.FAIL),
        (CallerView(now=50, held=D, rejected=True, hold_until=121, last_failed=True), Action.FAIL),
        # the hold is over
        (CallerView(now=122, held=D, hold_until=121, last_failed=True), Action.REFRESH),
    ],
)
def test_decide(view, action):
    assert decide(view) is action


def test_refresh_hold_spaces_and_backs_off():
    kw = {"interval": 1.0, "cap": 60.0}
    assert refresh_hold(failed=False, in_row=0, **kw) == 1.0
    # tokens that arrive already stale or expired: 2, 4, 8... capped
    assert [refresh_hold(failed=False, in_row=n, arrived_fresh=False, **kw) for n in (1, 2, 3)] == [
        2.0,
        4.0,
        8.0,
    ]
    assert [refresh_hold(failed=True, in_row=n, **kw) for n in (1, 2, 3, 4)] == [1, 2, 4, 8]
    assert refresh_hold(failed=True, in_row=100, **kw) == 60.0


# -- the transaction ----------------------------------------------------------------------


def never(_: Token) -> bool:
    return False


def always(_: Token) -> bool:
    return True


def test_nothing_anywhere_gives_up():
    p = plan(None, None, expired=never, force=False)
    assert p.step is Step.GIVE_UP
    assert p.token is None


def test_first_load_adopts_the_stored_token():
    stored = tok(1)
    p = plan(None, stored, expired=never, force=False)
    assert (p.step, p.token) == (Step.ADOPT, stored)


def test_first_load_of_an_expired_token_refreshes_it():
    stored = tok(1)
    p = plan(None, stored, expired=always, force=False)
    assert (p.step, p.token) == (Step.REFRESH, stored)


def test_a_newer_stored_token_is_adopted_even_when_forced():
    held, stored = tok(1), tok(2)
    p = plan(held, stored, expired=never, force=True, rejected={"access-1"})
    assert (p.step, p.token) == (Step.ADOPT, stored)


def test_an_expired_newer_stored_token_lends_its_refresh_token():
    held, stored = tok(1), tok(2)
    p = plan(held, stored, expired=always, force=False)
    assert (p.step, p.token) == (Step.REFRESH, stored)


def test_an_older_stored_token_is_never_adopted_and_is_overwritten():
    # The save of token 2 failed after the provider rotated refresh-1 out: the store
    # still holds token 1. It must not be adopted, nor its refresh token presented.
    held, stored = tok(2), tok(1)
    p = plan(held, stored, expired=always, force=False, spent={"refresh-1"})
    assert (p.step, p.token, p.restore) == (Step.REFRESH, held, True)
    p = plan(held, stored, expired=never, force=False, spent={"refresh-1"})
    assert (p.step, p.token, p.restore) == (Step.KEEP, held, True)


def test_a_store_that_lost_the_token_gets_it_back():
    held = tok(1)
    p = plan(held, None, expired=never, force=False)
    assert (p.step, p.token, p.restore) == (Step.KEEP, held, True)


def test_same_token_not_forced_and_not_expired_is_kept():
    held = tok(1)
    p = plan(held, tok(1), expired=never, force=False)
    assert (p.step, p.restore) == (Step.KEEP, False)


def test_forced_refresh_presents_the_held_refresh_token():
    held = tok(1)
    p = plan(held, held, expired=never, force=True)
    assert (p.step, p.token) == (Step.REFRESH, held)


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"dead": {"refresh-1"}}, "refused"),
        ({"spent": {"refresh-1"}}, "rotated out"),
    ],
)
def test_refused_or_spent_refresh_tokens_are_never_presented(kw, reason):
    held = tok(1)
    p = plan(held, held, expired=always, force=False, **kw)
    assert p.step is Step.GIVE_UP
    assert reason in p.reason


def test_an_expired_temporary_grant_gives_up():
    held = tok(1, refresh=False)
    p = plan(held, held, expired=always, force=False)
    assert p.step is Step.GIVE_UP
    assert "temporary" in p.reason


def test_a_stale_temporary_grant_is_kept_until_it_expires():
    held = tok(1, refresh=False)
    p = plan(held, held, expired=never, force=True)
    assert p.step is Step.KEEP


def test_a_rejected_temporary_grant_gives_up():
    held = tok(1, refresh=False)
    p = plan(held, held, expired=never, force=True, rejected={"access-1"})
    assert p.step is Step.GIVE_UP


def test_a_rejected_stored_token_is_not_adopted():
    held, stored = tok(1), tok(2)
    p = plan(held, stored, expired=never, force=True, rejected={"access-1", "access-2"})
    assert (p.step, p.token) == (Step.REFRESH, held)


def test_decisions_do_not_depend_on_infinity_tricks():
    # "force" says refresh; no deadline is ever set to minus infinity to say it.
    d = deadlines(tok(1), wall_now=0.0, now=0.0)
    assert all(math.isfinite(x) for x in (d.fresh_until, d.stale_until))
    assert decide(CallerView(now=0.0, held=d, rejected=True)) is Action.REFRESH
