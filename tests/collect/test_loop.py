"""The collector loop (``NetrexClient.collect``) on a virtual event-loop clock (looptime).

The API is a scripted stand-in with the shape of ``events(afterId:, limit:)`` (ids 1, 2,
3...), so that every poll's time, every back-off and every commit point is checked to the
exact second, in milliseconds of real time. The real client and fake provider are in
``test_collect_fake.py``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any

import pytest

from netrex_async import (
    ApiError,
    CheckpointLost,
    ClosedError,
    MemoryCheckpoint,
    NetrexClient,
    NetrexError,
    ReauthorizationRequired,
    TokenStoreError,
    TransportError,
    _collect,
)

pytestmark = pytest.mark.looptime

QUERY = "query($after: ID, $limit: Int) { events(afterId: $after, limit: $limit) { id } }"
LATENCY = 0.1


class Api:
    """What ``collect()`` needs of a client: ``graphql()``, over events 1..n."""

    def __init__(self, events: int = 0) -> None:
        self.ids = list(range(1, events + 1))
        self.calls: list[tuple[float, dict[str, Any]]] = []
        self.failures: collections.deque[BaseException] = collections.deque()
        self.default_limit = 50

    def add(self, count: int) -> None:
        last = self.ids[-1] if self.ids else 0
        self.ids.extend(range(last + 1, last + 1 + count))

    async def graphql(
        self, query: str, variables: dict[str, Any] | None = None, *, operation_name: Any = None
    ) -> Any:
        variables = dict(variables or {})
        self.calls.append((asyncio.get_running_loop().time(), variables))
        await asyncio.sleep(LATENCY)
        if self.failures:
            raise self.failures.popleft()
        after = int(variables.get("after") or 0)
        limit = variables.get("limit", self.default_limit)
        return {"events": [{"id": str(i)} for i in self.ids if i > after][:limit]}

    def times(self) -> list[float]:
        return [round(t, 3) for t, _ in self.calls]


def run(api: Api, checkpoint: Any, **kwargs: Any) -> _collect.Collection:
    options: dict[str, Any] = {
        "items": "events",
        "cursor": "after",
        "key": "id",
        "checkpoint": checkpoint,
        "every": 30.0,
    }
    options.update(kwargs)
    # collect() only needs graphql(): the bound method of a real client, given the stand-in.
    return NetrexClient.collect(api, QUERY, **options)  # type: ignore[arg-type]


def ids(batch: list[dict[str, str]]) -> list[int]:
    return [int(item["id"]) for item in batch]


async def test_a_backlog_is_paged_at_once_while_pages_are_full_then_polled_every() -> None:
    api = Api(250)
    checkpoint = MemoryCheckpoint()
    got: list[list[int]] = []
    async with run(api, checkpoint, page_size=100, page_size_variable="limit") as batches:
        async for batch in batches:
            got.append(ids(batch))
            if len(got) == 3:
                api.add(5)  # arrive while the collector waits for the next poll
            if len(got) == 4:
                break
    assert [len(b) for b in got] == [100, 100, 50, 5]
    assert got[0][0] == 1 and got[3] == [251, 252, 253, 254, 255]
    # Three pages without a pause (each takes LATENCY), then the next poll 30 s after
    # the start of the last one that was not full.
    assert api.times() == [0.0, 0.1, 0.2, 30.2]
    assert [c[1] for c in api.calls[:2]] == [{"limit": 100}, {"limit": 100, "after": "100"}]
    # The fourth batch was in hand when the loop was left: not committed.
    assert checkpoint.cursor == "250"


async def test_without_page_size_a_backlog_ends_with_an_empty_page() -> None:
    api = Api(120)
    api.default_limit = 50
    got: list[list[int]] = []
    async with run(api, MemoryCheckpoint()) as batches:
        async for batch in batches:
            got.append(ids(batch))
            if len(got) == 3:
                asyncio.get_running_loop().call_later(10, api.add, 1)
            if len(got) == 4:
                break
    # 50, 50, 20 (not known to be the end), then an empty page, then every 30 s.
    assert [len(b) for b in got] == [50, 50, 20, 1]
    assert api.times() == [0.0, 0.1, 0.2, 0.3, 30.3]


async def test_the_cursor_is_committed_only_when_the_next_batch_is_asked_for() -> None:
    api = Api(30)
    checkpoint = MemoryCheckpoint()
    seen: list[Any] = []
    async with run(api, checkpoint, page_size=10, page_size_variable="limit") as batches:
        async for batch in batches:
            seen.append((ids(batch)[-1], checkpoint.cursor))
            if len(seen) == 3:
                break
    # While batch n is in hand, the checkpoint holds batch n-1's cursor.
    assert seen == [(10, None), (20, "10"), (30, "20")]
    assert checkpoint.cursor == "20"
    # The next collector starts again with the batch that was in hand: none skipped.
    async with run(api, checkpoint, page_size=10, page_size_variable="limit") as batches:
        first = await anext(batches)
    assert ids(first) == list(range(21, 31))


async def test_an_exception_in_the_callers_body_commits_nothing() -> None:
    api = Api(30)
    checkpoint = MemoryCheckpoint()
    batches = run(api, checkpoint, page_size=10, page_size_variable="limit")
    with pytest.raises(ZeroDivisionError):
        async with batches:
            async for batch in batches:
                if ids(batch)[0] == 11:
                    1 / 0  # noqa: B018 - the sink failed with this batch
    assert checkpoint.cursor == "10"


async def test_cancelling_the_collector_commits_nothing_and_frees_the_checkpoint() -> None:
    api = Api(30)
    checkpoint = MemoryCheckpoint()
    handled: list[int] = []
    in_hand = asyncio.Event()

    async def consume() -> None:
        async with run(api, checkpoint, page_size=10, page_size_variable="limit") as batches:
            async for batch in batches:
                handled.append(ids(batch)[-1])
                if len(handled) == 2:
                    in_hand.set()
                    await asyncio.sleep(3600)  # a slow sink, cancelled meanwhile

    task = asyncio.create_task(consume())
    await in_hand.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert checkpoint.cursor == "10"
    # The lock was released: another collector starts at once, with batch 2 again.
    async with asyncio.timeout(1):
        async with run(api, checkpoint, page_size=10, page_size_variable="limit") as batches:
            assert ids(await anext(batches))[0] == 11


async def test_outages_are_retried_with_capped_backoff_and_logged(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_collect.random, "uniform", lambda low, high: high)
    api = Api(5)
    api.failures.extend(TransportError(f"down {n}") for n in range(4))
    checkpoint = MemoryCheckpoint()
    caplog.set_level(logging.INFO, "netrex_async.collect")
    async with run(api, checkpoint, every=10.0, max_backoff=25.0) as batches:
        batch = await anext(batches)
    assert ids(batch) == [1, 2, 3, 4, 5]
    # Attempts at 0; each failure (0.1 s) then waits 10, 20, 25 (capped), 25 s.
    assert api.times() == [0.0, 10.1, 30.2, 55.3, 80.4]
    events = [getattr(r, "event", None) for r in caplog.records]
    assert events.count("collect_failed") == 4
    assert "collect_recovered" in events
    assert checkpoint.cursor is None


async def test_reauthorization_required_ends_the_loop_and_frees_the_checkpoint() -> None:
    api = Api(20)
    checkpoint = MemoryCheckpoint()
    batches = run(api, checkpoint, page_size=10, page_size_variable="limit")
    assert ids(await anext(batches))[0] == 1
    api.failures.append(ReauthorizationRequired("the grant is gone"))
    with pytest.raises(ReauthorizationRequired):
        await anext(batches)
    # Asking for the second batch committed the first; the failure committed nothing.
    assert checkpoint.cursor == "10"
    async with asyncio.timeout(1), checkpoint.lock():
        pass


@pytest.mark.parametrize("error", [ClosedError("closed"), ReauthorizationRequired("gone")])
async def test_fatal_errors_are_not_retried(error: Exception) -> None:
    api = Api(3)
    api.failures.append(error)
    with pytest.raises(type(error)):
        async with run(api, MemoryCheckpoint()) as batches:
            await anext(batches)
    assert len(api.calls) == 1


async def test_an_answer_without_the_list_or_the_key_is_an_api_error_at_once() -> None:
    api = Api(3)
    with pytest.raises(ApiError, match="nothing at 'cameras'"):
        async with run(api, MemoryCheckpoint(), items="cameras") as batches:
            await anext(batches)
    with pytest.raises(ApiError, match="no field 'uuid'"):
        async with run(api, MemoryCheckpoint(), key="uuid") as batches:
            await anext(batches)
    assert len(api.calls) == 2


class FlakyCheckpoint(MemoryCheckpoint):
    """A memory checkpoint whose next saves fail with the errors queued."""

    def __init__(self) -> None:
        super().__init__()
        self.save_failures: collections.deque[BaseException] = collections.deque()
        self.saves: list[float] = []

    async def save(self, cursor: str | int | float) -> None:
        self.saves.append(asyncio.get_running_loop().time())
        if self.save_failures:
            raise self.save_failures.popleft()
        await super().save(cursor)


async def test_a_failed_commit_is_retried_before_the_next_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_collect.random, "uniform", lambda low, high: high)
    api = Api(20)
    checkpoint = FlakyCheckpoint()
    checkpoint.save_failures.extend(TokenStoreError("disk full", store="x") for _ in range(3))
    async with run(api, checkpoint, page_size=10, page_size_variable="limit") as batches:
        await anext(batches)
        second = await anext(batches)
    assert ids(second)[0] == 11
    assert checkpoint.cursor == "10"
    # Tried at 0.1 s, then after 1, 2 and 4 s (min(every, 1) doubling); the next page after.
    assert [round(t, 3) for t in checkpoint.saves] == [0.1, 1.1, 3.1, 7.1]
    assert api.times() == [0.0, 7.1]


async def test_a_lost_checkpoint_ends_the_loop_without_writing() -> None:
    api = Api(20)
    checkpoint = FlakyCheckpoint()
    checkpoint.save_failures.append(CheckpointLost("taken over", store="x"))
    async with run(api, checkpoint, page_size=10, page_size_variable="limit") as batches:
        await anext(batches)
        with pytest.raises(CheckpointLost):
            await anext(batches)
    assert checkpoint.cursor is None
    assert len(api.calls) == 1


async def test_a_second_collector_waits_as_a_standby_and_takes_over() -> None:
    api = Api(10)
    checkpoint = MemoryCheckpoint()
    first = run(api, checkpoint, page_size=5, page_size_variable="limit")
    assert ids(await anext(first)) == [1, 2, 3, 4, 5]
    await anext(first)  # commits 5; holds 6..10
    second = run(api, checkpoint, page_size=5, page_size_variable="limit")
    waiting = asyncio.create_task(anext(second))
    await asyncio.sleep(3600)
    assert not waiting.done()  # a standby, for as long as it takes
    await first.aclose()
    assert ids(await asyncio.wait_for(waiting, 1)) == [6, 7, 8, 9, 10]
    await second.aclose()


async def test_arguments_are_checked() -> None:
    api = Api()
    with pytest.raises(ValueError, match="every"):
        run(api, MemoryCheckpoint(), every=0)
    with pytest.raises(ValueError, match="page_size"):
        run(api, MemoryCheckpoint(), page_size=0)
    with pytest.raises(ValueError, match="page_size_variable needs"):
        run(api, MemoryCheckpoint(), page_size_variable="limit")
    with pytest.raises(TypeError, match="Checkpoint"):
        run(api, object())
    with pytest.raises(ValueError, match="items"):
        run(api, MemoryCheckpoint(), items="")


async def test_commit_acknowledges_the_batch_in_hand_at_once() -> None:
    api = Api(20)
    checkpoint = FlakyCheckpoint()
    async with run(api, checkpoint, page_size=10, page_size_variable="limit") as batches:
        assert ids(await anext(batches))[-1] == 10
        await batches.commit()
        assert checkpoint.cursor == "10"
        await batches.commit()  # nothing more in hand
        assert ids(await anext(batches))[0] == 11
        assert len(checkpoint.saves) == 1  # asking for the next committed nothing again
    assert checkpoint.cursor == "10"
    async with run(api, checkpoint, page_size=10, page_size_variable="limit") as batches:
        assert ids(await anext(batches))[0] == 11


class LeasedCheckpoint(MemoryCheckpoint):
    """A memory checkpoint whose lock has a lease, like a Redis one: ``check_lease()``
    raises what is queued (a lost lease stays lost), and records when it was called."""

    def __init__(self) -> None:
        super().__init__()
        self.lost = False
        self.unconfirmed: collections.deque[BaseException] = collections.deque()
        self.checks: list[float] = []

    async def check_lease(self) -> None:
        self.checks.append(round(asyncio.get_running_loop().time(), 3))
        await asyncio.sleep(0.01)  # one round trip
        if self.unconfirmed:
            raise self.unconfirmed.popleft()
        if self.lost:
            raise CheckpointLost("the lease ran out; another collector took over", store="x")


async def test_a_lease_lost_during_the_query_ends_the_loop_before_the_batch_is_delivered() -> None:
    api = Api(30)
    checkpoint = LeasedCheckpoint()
    delivered: list[list[int]] = []
    with pytest.raises(CheckpointLost):
        async with run(api, checkpoint, page_size=10, page_size_variable="limit") as batches:
            async for batch in batches:
                delivered.append(ids(batch))
                # While the next page is asked for, the lease runs out (a pause, Redis
                # cut off): another collector has taken over and delivers 11..20 itself.
                asyncio.get_running_loop().call_later(
                    LATENCY / 2, setattr, checkpoint, "lost", True
                )
                if len(delivered) == 3:
                    break  # (without the lease check, 11..20 and 21..30 came too)
    assert delivered == [list(range(1, 11))]  # 11..20 never handed out by this one
    assert checkpoint.cursor == "10"  # committed before the lease was lost
    # Checked after each answer, before each batch: at 0.1 s, then at 0.21 s.
    assert checkpoint.checks == [0.1, 0.21]
    assert api.times() == [0.0, 0.11]


async def test_a_lease_that_cannot_be_confirmed_is_retried_before_the_batch_is_delivered(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_collect.random, "uniform", lambda low, high: high)
    api = Api(5)
    checkpoint = LeasedCheckpoint()
    checkpoint.unconfirmed.extend(TokenStoreError("Redis away", store="x") for _ in range(2))
    caplog.set_level(logging.INFO, "netrex_async.collect")
    async with run(api, checkpoint, every=0.5) as batches:
        batch = await anext(batches)
        delivered_at = round(asyncio.get_running_loop().time(), 3)
    assert ids(batch) == [1, 2, 3, 4, 5]
    # Each check takes 0.01 s; the pauses are 0.5 s then 1 s (min(every, 1) doubling).
    assert checkpoint.checks == [0.1, 0.61, 1.62]
    assert delivered_at == 1.63
    events = [getattr(r, "event", None) for r in caplog.records]
    assert events.count("collect_lease_failed") == 2 and "collect_lease_recovered" in events
    # Unconfirmed, then known lost (the lease ran out meanwhile): nothing delivered.
    checkpoint.unconfirmed.append(TokenStoreError("Redis away", store="x"))
    checkpoint.lost = True
    async with run(api, checkpoint, every=0.5) as batches:
        with pytest.raises(CheckpointLost):
            await anext(batches)
    assert len(checkpoint.checks) == 5


@pytest.mark.parametrize(
    ("query", "options", "says"),
    [
        ("{ events { id } }", {}, r"cursor variable \$after.*declares no variable \(cursor=\)"),
        (
            "query($afterId: ID) { events(afterId: $afterId) { id } }",
            {},
            r"cursor variable \$after.*it declares \$afterId \(cursor=\)",
        ),
        (
            "query($after: ID) { events(afterId: $after, limit: 5) { id } }",
            {"page_size": 5, "page_size_variable": "limit"},
            r"page-size variable \$limit.*\(page_size_variable=\)",
        ),
        (
            "query A($after: ID) { events(afterId: $after) { id } } query B { events { id } }",
            {"operation_name": "B"},
            r"cursor variable \$after",
        ),
    ],
)
async def test_a_variable_the_query_does_not_declare_is_refused_before_anything_is_sent(
    query: str, options: dict[str, Any], says: str
) -> None:
    # The provider ignores an undeclared variable: the first page would come for ever.
    api = Api(3)
    options = {"items": "events", "cursor": "after", "key": "id", "every": 30.0, **options}
    with pytest.raises(ValueError, match=says) as e:
        NetrexClient.collect(api, query, checkpoint=MemoryCheckpoint(), **options)  # type: ignore[arg-type]
    assert isinstance(e.value, NetrexError)
    assert api.calls == []
    # The same query with the variable declared (or the operation that declares it) runs.
    options["operation_name"] = None
    async with NetrexClient.collect(api, QUERY, checkpoint=MemoryCheckpoint(), **options) as c:  # type: ignore[arg-type]
        assert ids(await anext(c))
