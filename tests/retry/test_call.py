"""The one retry entry point, ``_retry.call``, on a virtual event-loop clock.

Every test runs under ``looptime``: the loop's clock only moves when the loop would sleep,
so deadlines, back-offs and ``Retry-After`` waits are checked to the exact second, in
milliseconds of real time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator

import pytest

from netrex_async._errors import NetrexError, TokenEndpointError, TransportError
from netrex_async._retry import (
    CLEANUP_SLACK,
    RetryPolicy,
    Transient,
    call,
    set_testing,
    time_left,
    worst_case,
)

pytestmark = pytest.mark.looptime

LOG = logging.getLogger("netrex_async.tests.retry")
WHAT = "POST https://netrex.test/oauth2/token"


@pytest.fixture(autouse=True)
def _backoff_on() -> Iterator[None]:
    """Real waits (on the virtual clock) unless a test turns them off."""
    old = set_testing(False)
    try:
        yield
    finally:
        set_testing(old)


def now() -> float:
    return asyncio.get_running_loop().time()


class Script:
    """An attempt function that plays one step per attempt and records when each began."""

    def __init__(self, *steps: Callable[[], Awaitable[str]]) -> None:
        self.steps = steps
        self.starts: list[float] = []

    async def __call__(self) -> str:
        self.starts.append(now())
        step = self.steps[min(len(self.starts), len(self.steps)) - 1]
        return await step()


def transient(
    message: str = "HTTP 503 from the token endpoint", retry_after: float | None = None
) -> Callable[[], Awaitable[str]]:
    async def step() -> str:
        raise Transient(TokenEndpointError(message, status=503), retry_after=retry_after)

    return step


def ok(value: str = "ok") -> Callable[[], Awaitable[str]]:
    async def step() -> str:
        return value

    return step


def hang() -> Callable[[], Awaitable[str]]:
    async def step() -> str:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    return step


def slow(seconds: float, then: Callable[[], Awaitable[str]]) -> Callable[[], Awaitable[str]]:
    async def step() -> str:
        await asyncio.sleep(seconds)
        return await then()

    return step


async def run(script: Script, policy: RetryPolicy, **kwargs: bool) -> str:
    return await call(script, policy, logger=LOG, event="test_retry", what=WHAT, **kwargs)


# -- the deadline counts from the start of the first attempt ------------------------------


async def test_a_first_attempt_that_hangs_ends_exactly_at_max_time() -> None:
    script = Script(hang())
    with pytest.raises(TransportError) as info:
        await run(script, RetryPolicy(max_time=30))
    assert now() == 30
    assert script.starts == [0]
    assert str(info.value) == f"{WHAT} gave up after 30 s (the retry deadline), in attempt 1"
    assert info.value.__cause__ is None
    assert info.value.__context__ is None


async def test_a_later_attempt_that_hangs_ends_at_the_deadline_too() -> None:
    script = Script(transient("HTTP 503 busy"), transient("HTTP 502 bad gateway"), hang())
    with pytest.raises(TransportError, match="in attempt 3") as info:
        await run(script, RetryPolicy(max_time=12.5, initial=1, max_wait=2))
    assert now() == 12.5
    assert len(script.starts) == 3
    # the failure before the hung attempt is named, by its text
    assert str(info.value).endswith("; the attempt before failed: HTTP 502 bad gateway")
    assert info.value.__context__ is None


async def test_slow_attempts_are_cut_at_the_deadline_not_after() -> None:
    # Each attempt takes 20 s and then fails: the old loop started a last attempt at
    # 20 s and ended at 40 s against a max_time of 30.
    script = Script(slow(20, transient()))
    with pytest.raises(TransportError, match="gave up after 30 s"):
        await run(script, RetryPolicy(max_time=30, initial=0))
    assert now() == 30
    assert script.starts == [0, 20]


async def test_time_left_is_the_remaining_deadline_inside_an_attempt() -> None:
    seen: list[float | None] = []

    async def step() -> str:
        seen.append(time_left())
        await asyncio.sleep(4)
        seen.append(time_left())
        if len(seen) < 4:
            raise Transient(TransportError("reset"), retry_after=1)
        return "ok"

    assert time_left() is None
    assert await run(Script(step), RetryPolicy(max_time=20)) == "ok"
    assert seen == [20, 16, 15, 11]
    assert time_left() is None


async def test_an_attempt_that_returns_at_the_deadline_edge_is_kept() -> None:
    script = Script(slow(29.5, ok("late but fine")))
    assert await run(script, RetryPolicy(max_time=30)) == "late but fine"
    assert now() == 29.5


# -- attempts -----------------------------------------------------------------------------


async def test_attempts_count_the_first_one() -> None:
    script = Script(transient("HTTP 503 number one"), transient("HTTP 503 the last"))
    with pytest.raises(TokenEndpointError, match="the last") as info:
        await run(script, RetryPolicy(attempts=3, initial=0.1, max_wait=1))
    assert len(script.starts) == 3
    assert info.value.__context__ is None
    assert info.value.__cause__ is None


async def test_success_after_transients_returns_the_value() -> None:
    script = Script(transient(), transient(), ok("third time"))
    assert await run(script, RetryPolicy(attempts=3)) == "third time"
    assert len(script.starts) == 3


async def test_retry_false_makes_exactly_one_attempt() -> None:
    script = Script(transient("HTTP 503 once"), ok())
    with pytest.raises(TokenEndpointError, match="once"):
        await run(script, RetryPolicy(attempts=4), retry=False)
    assert script.starts == [0]


async def test_retry_false_still_has_the_deadline() -> None:
    with pytest.raises(TransportError, match="gave up after 7 s"):
        await run(Script(hang()), RetryPolicy(max_time=7), retry=False)
    assert now() == 7


# -- what passes through ------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [ValueError("bad"), TokenEndpointError("invalid_grant", status=400), TimeoutError()],
)
async def test_other_errors_pass_through_at_once_unchanged(error: Exception) -> None:
    async def step() -> str:
        raise error

    script = Script(step)
    with pytest.raises(type(error)) as info:
        await run(script, RetryPolicy(attempts=5))
    assert info.value is error
    assert script.starts == [0]
    assert now() == 0


async def test_a_callers_cancellation_is_a_cancellation() -> None:
    script = Script(hang())
    task = asyncio.create_task(run(script, RetryPolicy(max_time=30)))
    await asyncio.sleep(3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert now() == 3


async def test_a_cancellation_during_a_backoff_is_a_cancellation() -> None:
    script = Script(transient(retry_after=10), ok())
    task = asyncio.create_task(run(script, RetryPolicy(max_time=30)))
    await asyncio.sleep(4)  # in the 10 s wait
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert script.starts == [0]


async def test_a_caller_timeout_outside_stays_the_callers() -> None:
    # The caller's own asyncio.timeout, shorter than the deadline, is its own business:
    # it sees its TimeoutError, not our deadline error.
    with pytest.raises(TimeoutError) as info:
        async with asyncio.timeout(5):
            await run(Script(hang()), RetryPolicy(max_time=30))
    assert not isinstance(info.value, NetrexError)
    assert now() == 5


# -- back-off and Retry-After --------------------------------------------------------------


async def test_retry_after_replaces_the_backoff() -> None:
    script = Script(transient(retry_after=7), transient(retry_after=2), ok())
    assert await run(script, RetryPolicy(initial=100, max_wait=100)) == "ok"
    assert script.starts == [0, 7, 9]


async def test_retry_after_longer_than_the_limit_ends_at_once() -> None:
    script = Script(transient("HTTP 429 later", retry_after=31), ok())
    with pytest.raises(TokenEndpointError, match="429 later"):
        await run(script, RetryPolicy(max_retry_after=30, max_time=120))
    assert now() == 0
    assert script.starts == [0]


async def test_retry_after_that_does_not_fit_before_the_deadline_ends_at_once() -> None:
    # 20 s gone, 10 s left: a Retry-After of 30 (within max_retry_after) would only
    # sleep into the deadline. The final error comes at once, not 10 s later.
    script = Script(slow(20, transient("HTTP 429 slow down", retry_after=30)), ok())
    with pytest.raises(TokenEndpointError, match="429 slow down"):
        await run(script, RetryPolicy(max_retry_after=30, max_time=30))
    assert now() == 20
    assert script.starts == [0]


async def test_backoff_never_passes_the_deadline() -> None:
    for _ in range(50):
        start = now()
        script = Script(transient())
        with pytest.raises((TokenEndpointError, TransportError)):
            await run(script, RetryPolicy(attempts=1000, max_time=10, initial=1, max_wait=4))
        assert now() - start < 10
        waits = [b - a for a, b in zip(script.starts, script.starts[1:], strict=False)]
        assert all(0 <= w <= 4 for w in waits)


async def test_backoff_is_exponential_with_full_jitter_and_a_ceiling() -> None:
    waits: list[list[float]] = []
    for _ in range(40):
        script = Script(*[transient()] * 6, ok())
        await run(script, RetryPolicy(attempts=7, max_time=1000, initial=1, max_wait=8))
        waits.append([b - a for a, b in zip(script.starts, script.starts[1:], strict=False)])
    for n, ceiling in enumerate([1, 2, 4, 8, 8, 8]):
        column = [w[n] for w in waits]
        assert all(0 <= w <= ceiling for w in column)
        assert len(set(column)) > 20  # random, not a fixed ladder
    assert max(w[3] for w in waits) > 4  # it does grow past the earlier ceilings


async def test_the_testing_switch_turns_every_wait_off_but_keeps_the_limits() -> None:
    set_testing(True)
    script = Script(transient(retry_after=9), transient(), ok())
    assert await run(script, RetryPolicy(initial=5)) == "ok"
    assert script.starts == [0, 0, 0]
    script = Script(transient())
    with pytest.raises(TokenEndpointError):
        await run(script, RetryPolicy(attempts=3))
    assert len(script.starts) == 3
    with pytest.raises(TransportError, match="deadline"):
        await run(Script(hang()), RetryPolicy(max_time=5))
    assert now() == 5
    script = Script(transient(retry_after=31))
    with pytest.raises(TokenEndpointError):
        await run(script, RetryPolicy(max_retry_after=30))
    assert len(script.starts) == 1


# -- logging ------------------------------------------------------------------------------


async def test_one_debug_line_per_retry_with_the_final_text_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOG.name)
    script = Script(transient("HTTP 503 first", retry_after=3), transient("HTTP 502 second"), ok())
    await run(script, RetryPolicy(initial=0.5, max_wait=0.5))
    lines = [r for r in caplog.records if getattr(r, "event", None) == "test_retry"]
    assert [(r.levelno, r.attempt, r.exc_info) for r in lines] == [  # type: ignore[attr-defined]
        (logging.DEBUG, 1, None),
        (logging.DEBUG, 2, None),
    ]
    assert lines[0].sleep == 3  # type: ignore[attr-defined]
    assert 0 <= lines[1].sleep <= 0.5  # type: ignore[attr-defined]
    gap = script.starts[2] - script.starts[1]
    assert gap == pytest.approx(lines[1].sleep, abs=0.001)  # type: ignore[attr-defined]
    assert "HTTP 503 first" in lines[0].getMessage()
    assert WHAT in lines[0].getMessage()
    assert all(not isinstance(a, BaseException) for r in lines for a in r.args or ())


# -- the bound ----------------------------------------------------------------------------


def test_worst_case_is_max_time_plus_the_cleanup_slack() -> None:
    assert worst_case(RetryPolicy()) == 30 + CLEANUP_SLACK
    assert worst_case(RetryPolicy(max_time=2.5)) == 2.5 + CLEANUP_SLACK
    assert RetryPolicy(max_time=12).deadline == 12
    assert 0 < CLEANUP_SLACK <= 2


async def test_an_attempt_that_turns_the_deadline_into_a_transient_still_ends_there() -> None:
    # An attempt that catches the deadline's cancellation and reports a transient fault
    # (as a wrapper around some client might): the call ends at the deadline all the same,
    # naming that fault, and does not retry into overtime.
    async def step() -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise Transient(TransportError("read timed out")) from None
        raise AssertionError("unreachable")

    script = Script(step)
    with pytest.raises(TransportError) as info:
        await run(script, RetryPolicy(max_time=9))
    assert now() == 9
    assert script.starts == [0]
    assert str(info.value).endswith("in attempt 1; it failed: read timed out")


async def test_nested_calls_see_the_nearest_deadline() -> None:
    seen: list[float | None] = []

    async def inner() -> str:
        seen.append(time_left())
        return "inner"

    async def outer() -> str:
        await asyncio.sleep(6)
        return await call(inner, RetryPolicy(max_time=60), logger=LOG, event="e", what="inner")

    assert await run(Script(outer), RetryPolicy(max_time=10)) == "inner"
    assert seen == [4]


def test_a_transient_takes_a_netrex_error_only() -> None:
    with pytest.raises(TypeError, match="NetrexError"):
        Transient(ValueError("no"))  # type: ignore[arg-type]
    t = Transient(TransportError("reset"), retry_after=2.5)
    assert (str(t), t.retry_after) == ("reset", 2.5)


SECRET = "rt-Secr3t-in-a-chained-error-0a1b2c3d"


@pytest.mark.parametrize("ending", ["attempts", "deadline"])
async def test_no_chained_secret_leaves_the_call(
    ending: str, secret_registry: object, caplog: pytest.LogCaptureFixture
) -> None:
    # An attempt raises its Transient while handling an error that quotes a secret (as
    # an aiohttp error may quote a URL): neither the final error nor the deadline error,
    # nor any log line, may carry that error along.
    caplog.set_level(logging.DEBUG, logger=LOG.name)

    async def leaky() -> str:
        try:
            raise OSError(f"connection reset while sending refresh_token={SECRET}")
        except OSError:
            raise Transient(TransportError("connection reset")) from None

    steps = [leaky] if ending == "attempts" else [leaky, hang()]
    with pytest.raises(TransportError) as info:
        await run(Script(*steps), RetryPolicy(attempts=3, max_time=10))
    assert ("deadline" in str(info.value)) == (ending == "deadline")
    assert info.value.__context__ is None
    assert info.value.__cause__ is None
    secret_registry.add(SECRET)  # type: ignore[attr-defined]
    secret_registry.check(info.value, *caplog.records)  # type: ignore[attr-defined]
