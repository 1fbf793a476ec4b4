"""A FileCheckpoint on a real full file system (a tiny tmpfs filled to the last byte): a
clear error naming the file, the committed cursor left as it was, no temporary file left
behind, and collect() retrying the commit until there is room, then going on without a
gap. And ``netrex-async collect --out`` on one: exit 5, the file holding exactly the
committed batches. Wall clock: the file system is real (the pauses are a few hundredths
of a second)."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from pathlib import Path
from typing import Any

import pytest
from _tmpfs import fill, grow
from cli.conftest import spawn_cli

from netrex_async import FileCheckpoint, NetrexClient, TokenStoreError
from netrex_async.testing import FakeNetrex

QUERY = "query($after: ID, $limit: Int) { events(afterId: $after, limit: $limit) { id } }"


class Api:
    """``graphql()`` over events 1..n."""

    def __init__(self, events: int) -> None:
        self.ids = list(range(1, events + 1))
        self.calls = 0

    async def graphql(
        self, query: str, variables: dict[str, Any] | None = None, *, operation_name: Any = None
    ) -> Any:
        self.calls += 1
        variables = dict(variables or {})
        after = int(variables.get("after") or 0)
        return {"events": [{"id": str(i)} for i in self.ids if i > after][: variables["limit"]]}


def ids(batch: list[dict[str, str]]) -> list[int]:
    return [int(item["id"]) for item in batch]


async def test_a_full_disk_is_a_clear_error_and_the_cursor_stays(small_disk: Path) -> None:
    path = small_disk / "events.checkpoint"
    checkpoint = FileCheckpoint(path)
    await checkpoint.save("10")
    filler = fill(small_disk)
    with pytest.raises(TokenStoreError) as caught:
        await checkpoint.save("20")
    assert str(path) in str(caught.value) and "No space left on device" in str(caught.value)
    assert caught.value.store == str(path)
    assert await checkpoint.load() == "10"
    # The failed replacement took its temporary file away again: no room is leaked.
    assert sorted(p.name for p in small_disk.iterdir()) == ["events.checkpoint", "filler"]
    filler.unlink()
    await checkpoint.save("20")
    assert await checkpoint.load() == "20"


async def until(condition: Any, seconds: float = 10.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.01)


async def test_collect_retries_the_commit_on_a_full_disk_and_skips_nothing(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "netrex_async.collect")
    api = Api(40)
    checkpoint = FileCheckpoint(small_disk / "events.checkpoint")
    await checkpoint.save("10")
    batches = NetrexClient.collect(
        api,  # type: ignore[arg-type]
        QUERY,
        items="events",
        cursor="after",
        key="id",
        checkpoint=checkpoint,
        every=0.05,
        page_size=10,
        page_size_variable="limit",
    )

    def failures() -> list[logging.LogRecord]:
        return [r for r in caplog.records if getattr(r, "event", "") == "collect_commit_failed"]

    async with batches:
        assert ids(await anext(batches)) == list(range(11, 21))
        filler = fill(small_disk)
        asking = asyncio.create_task(anext(batches))  # commits 11..20 first
        await until(lambda: len(failures()) >= 3)
        assert not asking.done()  # the next batch waits for the commit
        assert api.calls == 1
        assert await checkpoint.load() == "10"  # not moved past what was committed
        message = failures()[0].getMessage()
        assert str(checkpoint.path) in message and "No space left on device" in message
        filler.unlink()  # room again
        assert ids(await asyncio.wait_for(asking, 10)) == list(range(21, 31))
        assert await checkpoint.load() == "20"
    assert any(getattr(r, "event", "") == "collect_commit_recovered" for r in caplog.records)


# -- netrex-async collect --out on a full file system --------------------------------------

CLI_QUERY = "query($after: ID, $limit: Int) { events(afterId: $after, limit: $limit) { id type } }"
BOUND = 60.0


async def run_cli(fake: FakeNetrex, checkpoint: Path, out: Path) -> asyncio.subprocess.Process:
    return await spawn_cli(
        fake,
        [
            "collect",
            CLI_QUERY,
            *("--items", "events", "--cursor", "after", "--key", "id"),
            *("--page-size", "50", "--page-size-variable", "limit", "--every", "0.1"),
            *("--checkpoint", str(checkpoint), "--out", str(out)),
        ],
    )


def written(out: Path) -> list[int]:
    data = out.read_bytes()
    assert not data or data.endswith(b"\n"), "a partial line was left"
    return [int(json.loads(line)["id"]) for line in data.splitlines()]


@pytest.mark.slow
async def test_the_cli_on_a_full_disk_exits_5_with_the_cursor_at_what_was_written(
    small_disk: Path, tmp_path: Path
) -> None:
    checkpoint, out = tmp_path / "events.checkpoint", small_disk / "events.jsonl"
    async with FakeNetrex() as fake:
        for _ in range(4000):  # ~130 KB of lines for a 64 KiB file system
            fake.add_event("1")
        total = len(fake.data.events)
        proc = await run_cli(fake, checkpoint, out)
        _, err = await asyncio.wait_for(proc.communicate(), BOUND)
        assert proc.returncode == 5, err.decode()
        message = err.decode()
        assert f"cannot write {out}: No space left on device" in message
        assert "not committed" in message
        ids = written(out)
        assert 0 < len(ids) < total
        assert ids == list(range(1, len(ids) + 1))
        # Every batch in the file is committed, and nothing more: the batch the disk
        # could not hold was taken back out, and it comes again.
        assert await FileCheckpoint(checkpoint).load() == str(ids[-1])

        grow(small_disk, "1m")  # room again
        again = await run_cli(fake, checkpoint, out)
        async with asyncio.timeout(BOUND):
            while len(written(out)) < total:
                await asyncio.sleep(0.05)
        again.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(again.communicate(), BOUND)
        assert again.returncode == 0, err.decode()
    assert written(out) == list(range(1, total + 1))  # no gap, no duplicate


@pytest.mark.slow
async def test_the_cli_with_its_checkpoint_on_a_full_disk_retries_and_still_stops(
    small_disk: Path, tmp_path: Path
) -> None:
    checkpoint, out = small_disk / "events.checkpoint", tmp_path / "events.jsonl"
    filler = fill(small_disk)
    async with FakeNetrex() as fake:
        total = len(fake.data.events)
        proc = await run_cli(fake, checkpoint, out)
        assert proc.stderr is not None
        said: list[str] = []
        async with asyncio.timeout(BOUND):
            while not any("committing the cursor to" in line for line in said):
                said.append((await proc.stderr.readline()).decode())
                assert said[-1], said
        assert "No space left on device" in said[-1] and str(checkpoint) in said[-1]
        assert written(out) == list(range(1, total + 1))  # written, not committed
        assert not checkpoint.exists()
        proc.send_signal(signal.SIGTERM)  # stops within the grace, though it cannot commit
        _, err = await asyncio.wait_for(proc.communicate(), BOUND)
        assert proc.returncode == 5, err.decode()
        assert "stopped before the cursor of the batch in hand could be committed" in err.decode()
        filler.unlink()  # room again: the batch comes again, none is skipped
        again = await run_cli(fake, checkpoint, out)
        async with asyncio.timeout(BOUND):
            while len(written(out)) < 2 * total:
                await asyncio.sleep(0.05)
        again.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(again.communicate(), BOUND)
        assert again.returncode == 0, err.decode()
    assert written(out) == 2 * list(range(1, total + 1))
    assert await FileCheckpoint(checkpoint).load() == str(total)
