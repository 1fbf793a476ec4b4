"""Retrying transient faults, with tenacity kept private.

One :class:`RetryPolicy` value says how hard to try; :func:`retrying` turns it into a
tenacity loop. :func:`set_testing` turns every back-off off (for test suites), in the
manner of stamina's switch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import attrs
import tenacity

__all__ = ["RetryPolicy", "is_testing", "retrying", "set_testing"]

_TESTING = False


def set_testing(testing: bool) -> bool:
    """Turn back-off waits off (``True``) or on again; returns the previous setting.

    Retries still happen, with the same attempt limits, but without sleeping: for test
    suites that exercise transient faults and must stay fast.
    """
    global _TESTING
    old, _TESTING = _TESTING, bool(testing)
    return old


def is_testing() -> bool:
    """Whether :func:`set_testing` has turned back-off off."""
    return _TESTING


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How transient faults (network errors, timeouts, 5xx, 429) are retried.

    Args:
        attempts: Total tries, the first included (1 disables retrying).
        max_time: Give up once this many seconds have passed since the first try.
        initial: First back-off in seconds; it doubles each time, with full jitter.
        max_wait: Longest single back-off.
        max_retry_after: Longest ``Retry-After`` honoured; a longer one ends retrying.
    """

    attempts: int = attrs.field(default=4, validator=attrs.validators.ge(1))
    max_time: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))
    initial: float = attrs.field(default=0.2, validator=attrs.validators.ge(0))
    max_wait: float = attrs.field(default=5.0, validator=attrs.validators.ge(0))
    max_retry_after: float = attrs.field(default=30.0, validator=attrs.validators.ge(0))


class RetryAfter(Exception):
    """Mixed into internal transient errors that carry a server-given delay."""

    retry_after: float | None = None


def retrying(
    policy: RetryPolicy,
    retry_on: Callable[[BaseException], bool],
    *,
    before_sleep: Callable[[int, BaseException, float], None] | None = None,
) -> tenacity.AsyncRetrying:
    """A tenacity loop for ``policy``: retry while ``retry_on(exc)``; reraise the last.

    A ``retry_after`` attribute on the exception (seconds) replaces the back-off for that
    wait, when it fits within ``policy.max_retry_after``.
    """
    jitter = tenacity.wait_random_exponential(multiplier=policy.initial, max=policy.max_wait)

    def wait(state: tenacity.RetryCallState) -> float:
        if _TESTING:
            return 0.0
        exc = state.outcome.exception() if state.outcome else None
        hint = getattr(exc, "retry_after", None)
        if isinstance(hint, int | float) and 0 <= hint <= policy.max_retry_after:
            return float(hint)
        return float(jitter(state))

    def should_retry(state: tenacity.RetryCallState) -> bool:
        if state.outcome is None or not state.outcome.failed:
            return False
        exc = state.outcome.exception()
        if exc is None or not retry_on(exc):
            return False
        hint = getattr(exc, "retry_after", None)
        return not (isinstance(hint, int | float) and hint > policy.max_retry_after)

    def log_sleep(state: tenacity.RetryCallState) -> None:
        if before_sleep is not None and state.outcome is not None:
            exc = state.outcome.exception()
            if exc is not None:
                sleep = state.next_action.sleep if state.next_action else 0.0
                before_sleep(state.attempt_number, exc, sleep)

    return tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(policy.attempts)
        | tenacity.stop_after_delay(policy.max_time),
        wait=wait,
        retry=should_retry,
        reraise=True,
        sleep=asyncio.sleep,
        before_sleep=log_sleep,
    )
