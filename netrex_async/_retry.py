"""Retrying transient faults: one entry point, with tenacity kept private.

One :class:`RetryPolicy` value says how hard to try; :func:`call` runs an attempt
function under it. A :class:`Transient` raised by an attempt is the one retryable
failure; anything else passes through at once. :func:`call` owns the attempt limit, the
overall deadline (counted from the start of the first attempt), ``Retry-After``, the
retry log lines and the testing switch (:func:`set_testing`, in the manner of stamina's).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
from collections.abc import Awaitable, Callable
from typing import TypeVar

import attrs
import tenacity

from ._errors import NetrexError, TransportError

__all__ = [
    "CLEANUP_SLACK",
    "RetryPolicy",
    "Transient",
    "call",
    "is_testing",
    "retrying",
    "set_testing",
    "time_left",
    "worst_case",
]

T = TypeVar("T")

_TESTING = False

#: Seconds :func:`call` may run past ``max_time``: the deadline cancels the attempt in
#: flight, and its unwinding (closing a connection, leaving ``async with`` blocks) takes
#: a moment of its own. Attempts that do I/O on cancellation must keep it this short.
CLEANUP_SLACK = 1.0

# When the innermost running call() gives up, in event-loop time (None: no call running).
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "netrex_async_retry_deadline", default=None
)


def set_testing(testing: bool) -> bool:
    """Turn back-off waits off (``True``) or on again; returns the previous setting.

    Retries still happen, with the same attempt limits and deadlines, but without
    sleeping: for test suites that exercise transient faults and must stay fast.
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

    A call under this policy ends within :attr:`deadline` seconds of its start (plus
    :data:`CLEANUP_SLACK` for the attempt in flight to unwind; see :func:`worst_case`),
    whatever the server does: the first attempt counts too.

    Args:
        attempts: Total tries, the first included (1 disables retrying).
        max_time: The deadline of the whole call, in seconds from the start of the first
            attempt, every attempt and back-off included. An attempt still running at
            the deadline is cancelled.
        initial: First back-off in seconds; it doubles each time, with full jitter.
        max_wait: Longest single back-off.
        max_retry_after: Longest ``Retry-After`` honoured; a longer one (or one that does
            not fit before the deadline) ends retrying at once.

    Raises:
        ValueError: A value out of range (``attempts < 1``, ``max_time <= 0``, a
            negative wait).
    """

    attempts: int = attrs.field(default=4, validator=attrs.validators.ge(1))
    max_time: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))
    initial: float = attrs.field(default=0.2, validator=attrs.validators.ge(0))
    max_wait: float = attrs.field(default=5.0, validator=attrs.validators.ge(0))
    max_retry_after: float = attrs.field(default=30.0, validator=attrs.validators.ge(0))

    @property
    def deadline(self) -> float:
        """Seconds a call may take from the start of its first attempt: ``max_time``.

        The whole call, first attempt included; not a budget that starts counting after
        the first attempt, nor a per-attempt timeout.
        """
        return self.max_time


def worst_case(policy: RetryPolicy) -> float:
    """The longest a :func:`call` under ``policy`` can take, in seconds.

    That is ``policy.max_time`` plus :data:`CLEANUP_SLACK`, the bounded time the attempt
    cancelled at the deadline takes to unwind.
    """
    return policy.max_time + CLEANUP_SLACK


def time_left() -> float | None:
    """Seconds until the deadline of the innermost :func:`call` running in this task.

    ``None`` outside a call. An attempt uses it to cap timeouts of its own (so that a
    per-attempt client timeout never outlasts the call's deadline). Inside nested calls it
    is the nearest of their deadlines.
    """
    deadline = _DEADLINE.get()
    if deadline is None:
        return None
    return max(0.0, deadline - asyncio.get_running_loop().time())


class Transient(Exception):
    """A retryable failure; ``final`` is the :class:`NetrexError` raised if retrying ends.

    Args:
        final: The error the caller sees when no retry follows. Its message must carry
            no secret (it is logged at each retry).
        retry_after: Seconds the server asked to wait (``Retry-After``), if it did.

    Raises:
        TypeError: ``final`` is not a :class:`NetrexError`.
    """

    final: NetrexError
    retry_after: float | None

    def __init__(self, final: NetrexError, *, retry_after: float | None = None) -> None:
        if not isinstance(final, NetrexError):
            raise TypeError(f"Transient(final=...) takes a NetrexError, not {type(final)!r}")
        super().__init__(str(final))
        self.final = final
        self.retry_after = retry_after


class _DeadlinePassed(Exception):
    """Internal: the deadline ended an attempt (never leaves :func:`call`)."""

    def __init__(self, last: NetrexError | None) -> None:
        super().__init__("deadline")
        self.last = last


async def _attempt(fn: Callable[[], Awaitable[T]], deadline: float) -> T:
    """One attempt of ``fn``, cancelled at ``deadline`` (event-loop time)."""
    scope = asyncio.timeout_at(deadline)
    try:
        async with scope:
            return await fn()
    except Exception as e:
        # CancelledError is no Exception: a caller's cancellation passes through as it is.
        # Anything else (above all the TimeoutError the scope makes of its own
        # cancellation) means the deadline ended this attempt, if the scope expired.
        if scope.expired():
            raise _DeadlinePassed(e.final if isinstance(e, Transient) else None) from None
        raise


async def call(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    logger: logging.Logger,
    event: str,
    what: str,
    retry: bool = True,
) -> T:
    """Run ``fn`` until it returns, retrying each :class:`Transient` it raises.

    Attempts are bounded by ``policy.attempts`` and the whole call by ``policy.max_time``
    from the start of the first attempt: an attempt still running then is cancelled.
    Back-off is exponential with full jitter (``initial`` doubling, at most ``max_wait``);
    a ``retry_after`` of the :class:`Transient` replaces it when it is at most
    ``policy.max_retry_after``. A wait that would not end before the deadline is not
    started: retrying ends at once. Each retry logs one DEBUG line on ``logger`` with
    ``extra={"event": event, "attempt": n, "sleep": s}`` and the text of the failure's
    ``final`` error (never the exception object, whose chain might hold a secret).

    Args:
        fn: One attempt; it raises :class:`Transient` for a retryable failure.
        policy: Attempts, deadline, back-off and ``Retry-After`` limits.
        logger: Where retry lines go.
        event: The ``event`` field of those lines, such as ``"oauth_retry"``.
        what: What is being done, for log lines and the deadline error, such as
            ``"POST https://host/oauth2/token"``; it must carry no secret.
        retry: ``False`` makes exactly one attempt (still under the deadline).

    Raises:
        TransportError: The deadline passed during an attempt.
        NetrexError: The ``final`` error of the last :class:`Transient`, when retrying
            ended (attempts used up, a ``Retry-After`` too long, no time left).
        Exception: Whatever else ``fn`` raised, unchanged, at once.
        asyncio.CancelledError: The caller was cancelled.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + policy.max_time
    attempts = policy.attempts if retry else 1
    backoff = tenacity.wait_random_exponential(multiplier=policy.initial, max=policy.max_wait)
    # The wait after each failed attempt, decided once: tenacity asks for it in both its
    # ``wait`` and its ``stop``, in an order that differs between its versions. None: stop.
    decided: dict[int, float | None] = {}
    previous: list[NetrexError] = []  # the final error of the last retried Transient

    def decide(state: tenacity.RetryCallState) -> float | None:
        exc = state.outcome.exception() if state.outcome is not None else None
        if not isinstance(exc, Transient) or state.attempt_number >= attempts:
            return None
        hint = exc.retry_after
        if hint is not None and math.isfinite(hint) and hint >= 0:
            if hint > policy.max_retry_after:
                return None
            seconds = float(hint)
        else:
            seconds = float(backoff(state))
        if _TESTING:
            seconds = 0.0
        if loop.time() + seconds >= deadline:
            return None  # the next attempt could not even start in time
        return seconds

    def next_wait(state: tenacity.RetryCallState) -> float | None:
        n = state.attempt_number
        if n not in decided:
            decided[n] = decide(state)
        return decided[n]

    def wait(state: tenacity.RetryCallState) -> float:
        return next_wait(state) or 0.0

    def stop(state: tenacity.RetryCallState) -> bool:
        return next_wait(state) is None

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        assert isinstance(exc, Transient)  # nothing else is retried
        previous[:] = [exc.final]
        seconds = wait(state)
        logger.debug(
            "%s: retrying after a transient fault (attempt %d, next in %.3g s): %s",
            what,
            state.attempt_number,
            seconds,
            str(exc.final),  # the text only: the exception object drags its chain along
            extra={"event": event, "attempt": state.attempt_number, "sleep": seconds},
        )

    async def sleep(seconds: float) -> None:
        # Never past the deadline, whatever the clock did since the wait was decided.
        await asyncio.sleep(max(0.0, min(seconds, deadline - loop.time())))

    outer = _DEADLINE.get()
    token = _DEADLINE.set(deadline if outer is None else min(deadline, outer))
    number = 0
    ended: Transient | _DeadlinePassed
    try:
        async for attempt in tenacity.AsyncRetrying(
            stop=stop,
            wait=wait,
            retry=tenacity.retry_if_exception_type(Transient),
            reraise=True,
            sleep=sleep,
            before_sleep=before_sleep,
        ):
            with attempt:
                number = attempt.retry_state.attempt_number
                return await _attempt(fn, deadline)
        raise AssertionError("unreachable")  # pragma: no cover
    except (Transient, _DeadlinePassed) as e:
        ended = e
    finally:
        _DEADLINE.reset(token)
    # Raised out here, not in the ``except`` block, so that nothing of the attempt's
    # exception (which may chain an aiohttp error quoting secrets) is kept as context.
    if isinstance(ended, Transient):
        raise ended.final
    last = ended.last or (previous[0] if previous else None)
    text = f"{what} gave up after {policy.max_time:g} s (the retry deadline), in attempt {number}"
    if last is not None:
        text += f"; {'it' if ended.last else 'the attempt before'} failed: {last}"
    raise TransportError(text)


def retrying(
    policy: RetryPolicy,
    retry_on: Callable[[BaseException], bool],
    *,
    before_sleep: Callable[[int, BaseException, float], None] | None = None,
) -> tenacity.AsyncRetrying:
    """Deprecated, internal: a bare tenacity loop for ``policy``; use :func:`call`.

    Kept only until its last user (``_client.py``) moves to :func:`call`; it will be
    removed. It does not keep :func:`call`'s promises: its ``max_time`` is checked only
    between attempts, so a hung attempt is not bounded by it. Retries while
    ``retry_on(exc)``; reraises the last error. A ``retry_after`` attribute on the
    exception (seconds) replaces the back-off for that wait, when it fits within
    ``policy.max_retry_after``.
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
