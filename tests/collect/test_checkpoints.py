"""MemoryCheckpoint and FileCheckpoint: cursors kept atomically, corrupt files refused,
one holder of the lock at a time."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from pathlib import Path

import pytest

from netrex_async import (
    Checkpoint,
    FileCheckpoint,
    MemoryCheckpoint,
    TokenStoreError,
    _checkpoints,
)


@pytest.mark.parametrize("cursor", ["41", 41, 2.5])
async def test_file_checkpoint_round_trip(tmp_path: Path, cursor: str | int | float) -> None:
    checkpoint = FileCheckpoint(tmp_path / "new" / "folder" / "events.checkpoint")
    assert isinstance(checkpoint, Checkpoint)
    assert await checkpoint.load() is None
    await checkpoint.save(cursor)
    assert await checkpoint.load() == cursor
    assert await FileCheckpoint(checkpoint.path).load() == cursor  # another instance
    assert stat.S_IMODE(os.stat(checkpoint.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(checkpoint.path.parent).st_mode) == 0o700
    await checkpoint.clear()
    assert await checkpoint.load() is None


async def test_a_loose_checkpoint_file_is_tightened_without_talk_of_a_grant(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    checkpoint = FileCheckpoint(tmp_path / "events.checkpoint")
    await checkpoint.save("41")
    checkpoint.path.chmod(0o644)
    caplog.set_level(logging.WARNING, logger="netrex_async")
    assert await checkpoint.load() == "41"
    assert stat.S_IMODE(os.stat(checkpoint.path).st_mode) == 0o600
    [record] = [r for r in caplog.records if "restricted to 0600" in r.getMessage()]
    assert record.getMessage().startswith("checkpoint file had permissions 0o644")
    assert "grant" not in record.getMessage(), "a checkpoint holds no grant"
    assert "moved the cursor" in record.getMessage()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "it is empty"),
        (b'{"version": 1, "cur', "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b'{"version": 2, "cursor": "5"}', "not a checkpoint"),
        (b'["5"]', "not a checkpoint"),
        (b'{"version": 1, "cursor": true}', "not a checkpoint"),
        (b'{"version": 1, "cursor": null}', "not a checkpoint"),
    ],
)
async def test_a_corrupt_checkpoint_is_an_error_naming_the_file_and_left_alone(
    tmp_path: Path, content: bytes, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "events.checkpoint"
    path.write_bytes(content)
    checkpoint = FileCheckpoint(path)
    with pytest.raises(TokenStoreError, match=reason) as caught:
        await checkpoint.load()
    assert str(path) in str(caught.value)
    assert caught.value.store == str(path)
    assert path.read_bytes() == content  # never reset silently
    assert any(getattr(r, "event", None) == "store.corrupt" for r in caplog.records)


async def test_a_symlinked_checkpoint_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text('{"version": 1, "cursor": "3"}')
    link = tmp_path / "events.checkpoint"
    link.symlink_to(target)
    checkpoint = FileCheckpoint(link)
    with pytest.raises(TokenStoreError, match="checkpoint file .* symlink"):
        await checkpoint.load()
    with pytest.raises(TokenStoreError, match="symlink"):
        await checkpoint.save("4")
    assert target.read_text() == '{"version": 1, "cursor": "3"}'


@pytest.mark.parametrize("bad", [None, True, ["1"], {"id": 1}, float("nan")])
async def test_only_strings_and_numbers_are_cursors(tmp_path: Path, bad: object) -> None:
    for checkpoint in (FileCheckpoint(tmp_path / "c"), MemoryCheckpoint()):
        with pytest.raises(TypeError, match="cursor"):
            await checkpoint.save(bad)  # type: ignore[arg-type]


async def test_a_failed_write_leaves_the_old_cursor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoint = FileCheckpoint(tmp_path / "events.checkpoint")
    await checkpoint.save("7")

    def full(*args: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_checkpoints.os, "write", full, raising=False)
    monkeypatch.setattr("netrex_async._stores._file.os.write", full)
    with pytest.raises(TokenStoreError, match="cannot write checkpoint file .*No space"):
        await checkpoint.save("8")
    monkeypatch.undo()
    assert await checkpoint.load() == "7"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


async def test_a_file_checkpoint_has_one_holder_and_a_standby_takes_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "netrex_async.stores")
    path = tmp_path / "events.checkpoint"
    first = FileCheckpoint(path)
    monkeypatch.setattr(_checkpoints, "STANDBY_ATTEMPT", 0.2)  # several attempts, each busy
    second = FileCheckpoint(path)
    released = asyncio.Event()
    order: list[str] = []

    async def standby() -> None:
        async with second.lock():
            order.append("second holds")
            assert released.is_set()

    async with first.lock():
        task = asyncio.create_task(standby())
        await asyncio.sleep(1.0)
        assert not task.done()
        order.append("first releases")
        released.set()
    await asyncio.wait_for(task, 10)
    assert order == ["first releases", "second holds"]
    events = [getattr(r, "event", None) for r in caplog.records]
    assert events.count("checkpoint.standby") == 1  # logged once, not every attempt
    assert events.count("checkpoint.taken_over") == 1


async def test_memory_checkpoint_lock_is_exclusive() -> None:
    checkpoint = MemoryCheckpoint("5")
    assert await checkpoint.load() == "5"
    async with checkpoint.lock():
        waiter = asyncio.create_task(checkpoint.lock().__aenter__())
        await asyncio.sleep(0.05)
        assert not waiter.done()
    await asyncio.wait_for(waiter, 1)
