"""collect() through a real NetrexClient against FakeNetrex: a live stream, token expiry in
the middle of a backlog, an outage longer than the poll interval, a dead grant, a corrupt
checkpoint. Plus the fake's live event source on a virtual clock."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from netrex_async import (
    FileCheckpoint,
    MemoryCheckpoint,
    NetrexClient,
    ReauthorizationRequired,
    TokenStoreError,
)
from netrex_async.testing import EventSource, FakeData, FakeNetrex, Fault

QUERY = """
query($after: ID, $limit: Int) { events(afterId: $after, limit: $limit) { id cameraId type } }
"""


def collect(client: NetrexClient, checkpoint: Any, **kwargs: Any) -> Any:
    options: dict[str, Any] = {
        "items": "events",
        "cursor": "after",
        "key": "id",
        "checkpoint": checkpoint,
        "every": 0.05,
        "page_size": 20,
        "page_size_variable": "limit",
    }
    options.update(kwargs)
    return client.collect(QUERY, **options)


async def gather_until(batches: Any, last_id: int, sink_delay: float = 0.0) -> list[int]:
    got: list[int] = []
    async with asyncio.timeout(60):
        async for batch in batches:
            got += [int(e["id"]) for e in batch]
            if sink_delay:
                await asyncio.sleep(sink_delay)
            if got[-1] >= last_id:
                break
    return got


async def test_a_live_stream_is_followed_without_a_gap(tmp_path: Path) -> None:
    async with FakeNetrex() as fake:
        token = fake.issue_token()
        source = fake.start_events(rate=300)
        async with (
            NetrexClient(token.access_token, provider=fake.provider) as client,
            collect(client, FileCheckpoint(tmp_path / "c")) as batches,
        ):
            got: list[int] = []
            async with asyncio.timeout(60):
                async for batch in batches:
                    got += [int(e["id"]) for e in batch]
                    if len(got) >= 400:
                        break
        await fake.stop_events()
    assert got == list(range(1, len(got) + 1))
    assert source.produced + 4 >= len(got)  # four sample events, then the stream
    assert await FileCheckpoint(tmp_path / "c").load() is not None


async def test_token_expiry_in_the_middle_of_a_backlog_skips_nothing(
    fake_netrex: FakeNetrex, netrex_client: NetrexClient
) -> None:
    fake_netrex.expires_in = 2.0
    fake_netrex.expire_all()  # expired now; the grant's next tokens live two seconds
    for _ in range(300):
        fake_netrex.add_event("1")
    async with collect(netrex_client, MemoryCheckpoint()) as batches:
        # 16 pages, a slow sink: the backlog outlives a few two-second tokens.
        got = await gather_until(batches, 304, sink_delay=0.4)
    assert got == list(range(1, 305))
    assert fake_netrex.counters.tokens_issued >= 3


async def test_an_outage_longer_than_the_poll_interval_skips_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with FakeNetrex() as fake:
        token = fake.issue_token()
        for _ in range(50):
            fake.add_event("2")
        async with (
            NetrexClient(token.access_token, provider=fake.provider) as client,
            collect(client, MemoryCheckpoint(), max_backoff=0.2) as batches,
        ):
            got: list[int] = []
            async with asyncio.timeout(60):
                async for batch in batches:
                    got += [int(e["id"]) for e in batch]
                    if len(got) == 20:
                        fake.inject("graphql", Fault.status(500), times=8)  # an outage
                    if got[-1] >= 54:
                        break
        failed = fake.counters.faults["graphql"]
    assert got == list(range(1, 55))
    assert failed == 8
    events = [getattr(r, "event", None) for r in caplog.records]
    assert events.count("collect_failed") == 8 and "collect_recovered" in events


async def test_a_dead_grant_ends_the_collector_with_reauthorization_required(
    fake_netrex: FakeNetrex, netrex_client: NetrexClient
) -> None:
    checkpoint = MemoryCheckpoint()
    batches = collect(netrex_client, checkpoint, page_size=2)
    async with batches:
        first = await anext(batches)
        fake_netrex.revoke_all()
        fake_netrex.expire_all()
        with pytest.raises(ReauthorizationRequired):
            async with asyncio.timeout(60):
                async for _ in batches:
                    pass
    assert [e["id"] for e in first] == ["1", "2"]
    assert checkpoint.cursor == "2"  # the batch asked for after the first was never had


async def test_a_corrupt_checkpoint_stops_the_collector_before_any_query(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.checkpoint"
    path.write_text('{"version": 1, "cursor": "12"')  # truncated
    async with FakeNetrex() as fake:
        token = fake.issue_token()
        async with NetrexClient(token.access_token, provider=fake.provider) as client:
            with pytest.raises(TokenStoreError, match=f"{path}.*corrupt"):
                async with collect(client, FileCheckpoint(path)) as batches:
                    await anext(batches)
        assert fake.requests_to("graphql") == []
    assert path.read_text() == '{"version": 1, "cursor": "12"'


@pytest.mark.looptime
async def test_the_event_source_makes_events_at_its_rate_in_turn() -> None:
    data = FakeData.sample()
    source = EventSource(data, rate=10, cameras=["1", "2"], types=["motion", "tampering"])
    source.start()
    await asyncio.sleep(3.01)  # the tick at 3 s is in
    await source.stop()
    made = data.events[4:]
    assert source.produced == len(made) == 30
    assert [e.camera_id for e in made[:4]] == ["1", "2", "1", "2"]
    assert [e.type for e in made[:3]] == ["motion", "tampering", "motion"]
    assert [int(e.id) for e in made] == list(range(5, 35))
    await asyncio.sleep(1.0)
    assert len(data.events) == 34  # stopped


def test_the_event_source_checks_its_arguments() -> None:
    data = FakeData.sample()
    with pytest.raises(ValueError, match="rate"):
        EventSource(data, rate=0)
    with pytest.raises(ValueError, match="no camera"):
        EventSource(data, rate=1, cameras=["99"])
    with pytest.raises(ValueError, match="at least one camera"):
        EventSource(FakeData(), rate=1)


async def test_the_fake_stops_its_events_when_closed() -> None:
    async with FakeNetrex() as fake:
        source = fake.start_events(rate=1000)
        with pytest.raises(RuntimeError, match="already"):
            fake.start_events(rate=1)
        await asyncio.sleep(0.1)
    assert not source.running
    produced = source.produced
    await asyncio.sleep(0.1)
    assert source.produced == produced > 0


def test_events_after_an_id_are_found_by_bisection_as_by_a_scan() -> None:
    from netrex_async.testing._schema import _select

    data = FakeData.sample()
    source = EventSource(data, rate=1, cameras=["1", "2", "3"])
    source.make(500)
    events = data.events
    for after in [None, "0", "1", "4", "250", "503", "504", "999", "x"]:
        for camera in [None, "2"]:
            for limit in [None, 0, 1, 7, 1000]:
                bound = int(after) if after is not None and after.isdigit() else 0
                naive = [
                    e
                    for e in events
                    if int(e.id) > bound and (camera is None or e.camera_id == camera)
                ]
                naive = naive if limit is None else naive[:limit]
                assert _select(events, camera, after, limit) == naive, (after, camera, limit)
