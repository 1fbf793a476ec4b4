"""The deprecated internal `retrying()` loop (still used by _client.py): attempts, time, jitter.

The one entry point, `_retry.call()`, is tested in tests/retry/ on a virtual clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from netrex_async._retry import RetryPolicy, is_testing, retrying, set_testing


class Flaky(Exception):
    def __init__(self, retry_after: float | None = None) -> None:
        super().__init__("flaky")
        self.retry_after = retry_after


class Fatal(Exception):
    pass


@pytest.fixture(name="backoff_on")
def _backoff_on() -> Iterator[None]:
    old = set_testing(False)
    try:
        yield
    finally:
        set_testing(old)


def test_set_testing_returns_the_old_value() -> None:
    old = set_testing(True)
    try:
        assert is_testing()
        assert set_testing(False) is True
        assert not is_testing()
        assert set_testing(True) is False
    finally:
        set_testing(old)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"attempts": 0},
        {"max_time": 0},
        {"initial": -1},
        {"max_wait": -0.1},
        {"max_retry_after": -1},
    ],
)
def test_policy_validation(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


async def _run(
    policy: RetryPolicy,
    errors: list[BaseException | None],
    *,
    sleeps: list[float] | None = None,
    slow: float = 0.0,
) -> tuple[int, list[tuple[int, float]]]:
    """Run a loop whose attempts raise ``errors`` in turn; returns (calls, before_sleep log)."""
    calls = 0
    log: list[tuple[int, float]] = []
    loop = retrying(
        policy,
        lambda e: isinstance(e, Flaky),
        before_sleep=lambda n, exc, sleep: log.append((n, sleep)),
    )
    if sleeps is not None:

        async def record(seconds: float) -> None:
            sleeps.append(seconds)

        loop.sleep = record  # type: ignore[method-assign]
    async for attempt in loop:
        with attempt:
            calls += 1
            if slow:
                await asyncio.sleep(slow)
            err = errors[min(calls - 1, len(errors) - 1)]
            if err is not None:
                raise err
    return calls, log


@pytest.mark.asyncio
@pytest.mark.usefixtures("no_backoff")
async def test_attempts_are_bounded_and_the_last_error_reraised() -> None:
    with pytest.raises(Flaky):
        await _run(RetryPolicy(attempts=3), [Flaky()])
    calls, log = await _run(RetryPolicy(attempts=3), [Flaky(), Flaky(), None])
    assert calls == 3
    assert [n for n, _ in log] == [1, 2]


@pytest.mark.asyncio
@pytest.mark.usefixtures("no_backoff")
async def test_one_attempt_means_no_retry() -> None:
    with pytest.raises(Flaky):
        await _run(RetryPolicy(attempts=1), [Flaky(), None])


@pytest.mark.asyncio
@pytest.mark.usefixtures("no_backoff")
async def test_other_errors_are_not_retried() -> None:
    calls = 0

    async def go() -> None:
        nonlocal calls
        async for attempt in retrying(RetryPolicy(), lambda e: isinstance(e, Flaky)):
            with attempt:
                calls += 1
                raise Fatal

    with pytest.raises(Fatal):
        await go()
    assert calls == 1


@pytest.mark.asyncio
@pytest.mark.usefixtures("backoff_on")
async def test_time_is_bounded() -> None:
    sleeps: list[float] = []
    with pytest.raises(Flaky):
        await _run(RetryPolicy(attempts=50, max_time=0.05), [Flaky()], sleeps=sleeps, slow=0.03)
    assert len(sleeps) <= 2


@pytest.mark.asyncio
@pytest.mark.usefixtures("backoff_on")
async def test_backoff_has_jitter_and_a_ceiling() -> None:
    sleeps: list[float] = []
    policy = RetryPolicy(attempts=40, initial=1.0, max_wait=3.0)
    await _run(policy, [Flaky()] * 39 + [None], sleeps=sleeps)
    assert len(sleeps) == 39
    assert all(0 <= s <= 3.0 for s in sleeps)
    assert len(set(sleeps)) > 10  # random, not a fixed ladder


@pytest.mark.asyncio
@pytest.mark.usefixtures("backoff_on")
async def test_retry_after_replaces_the_backoff() -> None:
    sleeps: list[float] = []
    calls, log = await _run(
        RetryPolicy(max_retry_after=30),
        [Flaky(retry_after=7), Flaky(retry_after=0), None],
        sleeps=sleeps,
    )
    assert calls == 3
    assert sleeps == [7.0, 0.0]
    assert [s for _, s in log] == [7.0, 0.0]


@pytest.mark.asyncio
@pytest.mark.usefixtures("backoff_on")
async def test_a_retry_after_too_long_ends_retrying() -> None:
    sleeps: list[float] = []
    with pytest.raises(Flaky) as info:
        await _run(RetryPolicy(max_retry_after=10), [Flaky(retry_after=11), None], sleeps=sleeps)
    assert info.value.retry_after == 11
    assert sleeps == []


@pytest.mark.asyncio
@pytest.mark.usefixtures("no_backoff")
async def test_testing_switch_turns_every_wait_off() -> None:
    sleeps: list[float] = []
    await _run(RetryPolicy(initial=5), [Flaky(retry_after=9), Flaky(), None], sleeps=sleeps)
    assert sleeps == [0.0, 0.0]
