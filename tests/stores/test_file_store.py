"""FileTokenStore in one process: permissions, symlinks, corrupt files, the lock."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_helpers import SECRET_MARK, make_token

from netrex_async import Token, TokenStoreError
from netrex_async._stores import _file
from netrex_async._stores._file import FileTokenStore

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions and flock")


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture(name="umask")
def _umask() -> Iterator[None]:
    """A wide-open umask, so 0600 and 0700 cannot come from a strict one."""
    old = os.umask(0)
    yield
    os.umask(old)


@pytest.fixture(name="path")
def _path(tmp_path: Path) -> Path:
    return tmp_path / "a" / "b" / "token.json"


@pytest.fixture(name="caplog_stores")
def _caplog_stores(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="netrex_async.stores")
    return caplog


def store_errors_never_leak(err: BaseException) -> None:
    assert SECRET_MARK not in str(err)
    assert SECRET_MARK not in repr(err)


# -- construction -------------------------------------------------------------------


def test_repr_and_description(path: Path) -> None:
    store = FileTokenStore(path)
    assert store.description == str(path)
    assert repr(store) == f"FileTokenStore(path={str(path)!r}, lock_timeout=60.0)"
    assert store.path == path
    assert store.lock_path == path.with_name("token.json.lock")


def test_relative_path_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = FileTokenStore("token.json")
    assert store.path == tmp_path / "token.json"


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf")])
def test_lock_timeout_must_be_finite_and_not_negative(path: Path, bad: float) -> None:
    with pytest.raises(ValueError, match="lock_timeout"):
        FileTokenStore(path, lock_timeout=bad)


@pytest.mark.parametrize("bad", ["1", True, None])
def test_lock_timeout_must_be_a_number(path: Path, bad: object) -> None:
    with pytest.raises(TypeError, match="lock_timeout"):
        FileTokenStore(path, lock_timeout=bad)  # type: ignore[arg-type]


def test_construction_does_no_io(path: Path) -> None:
    FileTokenStore(path)
    assert not path.parent.exists()


# -- permissions --------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.usefixtures("umask")
async def test_file_0600_and_new_folders_0700_whatever_the_umask(path: Path) -> None:
    store = FileTokenStore(path)
    await store.save(make_token())
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert mode(path.parent.parent) == 0o700
    async with store.lock():
        assert mode(store.lock_path) == 0o600
    await store.save(make_token())  # a replacement is 0600 too
    assert mode(path) == 0o600


@pytest.mark.asyncio
async def test_existing_folders_are_left_alone(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    store = FileTokenStore(tmp_path / "token.json")
    await store.save(make_token())
    assert mode(tmp_path) == 0o755


@pytest.mark.asyncio
async def test_lock_creates_missing_folders_0700(path: Path) -> None:
    async with FileTokenStore(path).lock():
        pass
    assert mode(path.parent) == 0o700
    assert mode(path.parent.parent) == 0o700


@pytest.mark.asyncio
@pytest.mark.usefixtures("umask")
async def test_temp_file_is_created_exclusively_0600(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No window where the token is more open: O_CREAT|O_EXCL with mode 0600, then fchmod."""
    opened: list[tuple[str, int, int]] = []
    real_open = os.open

    def spy(file: str | os.PathLike[str], flags: int, mode: int = 0o777, **kw: object) -> int:
        opened.append((os.fspath(file), flags, mode))
        return real_open(file, flags, mode, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(_file.os, "open", spy)
    await FileTokenStore(path).save(make_token())
    creates = [(f, fl, m) for f, fl, m in opened if fl & os.O_CREAT]
    assert len(creates) == 1
    name, flags, created_mode = creates[0]
    assert Path(name).parent == path.parent
    assert Path(name).name.startswith(".token.json.")
    assert flags & os.O_EXCL
    assert flags & os.O_NOFOLLOW
    assert created_mode == 0o600


@pytest.mark.asyncio
async def test_loose_permissions_are_tightened_with_a_warning(
    path: Path, caplog_stores: pytest.LogCaptureFixture
) -> None:
    store = FileTokenStore(path)
    token = make_token()
    await store.save(token)
    path.chmod(0o644)
    loaded = await store.load()
    assert loaded is not None
    assert loaded.to_dict() == token.to_dict()
    assert mode(path) == 0o600
    [record] = [r for r in caplog_stores.records if r.event == "store.permissions_tightened"]
    assert record.levelno == logging.WARNING
    assert record.store == str(path)
    assert "0o644" in record.getMessage()


@pytest.mark.asyncio
async def test_loose_permissions_that_cannot_be_fixed_are_refused(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileTokenStore(path)
    await store.save(make_token())
    path.chmod(0o640)

    def refuse(fd: int, mode: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(_file.os, "fchmod", refuse)
    with pytest.raises(TokenStoreError, match=r"0o640.*could not be restricted") as info:
        await store.load()
    assert str(path) in str(info.value)


# -- symlinks and other non-files ---------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("dangling", [False, True], ids=["to a file", "dangling"])
async def test_symlink_is_refused(tmp_path: Path, dangling: bool) -> None:
    target = tmp_path / "elsewhere.json"
    if not dangling:
        target.write_text("precious")
    link = tmp_path / "token.json"
    link.symlink_to(target)
    store = FileTokenStore(link)
    for op in (store.load(), store.save(make_token()), store.clear()):
        with pytest.raises(TokenStoreError, match="symlink") as info:
            await op
        assert str(link) in str(info.value)
        assert info.value.store == str(link)
    assert link.is_symlink()
    if dangling:
        assert not target.exists()
    else:
        assert target.read_text() == "precious"


@pytest.mark.asyncio
async def test_symlink_swapped_in_after_the_check_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """O_NOFOLLOW closes the window between lstat and open."""
    path = tmp_path / "token.json"
    store = FileTokenStore(path)
    await store.save(make_token())
    real_lstat = os.lstat

    def lstat_then_swap(p: str | os.PathLike[str]) -> os.stat_result:
        result = real_lstat(p)
        if Path(p) == path:
            path.unlink()
            path.symlink_to(tmp_path / "elsewhere")
        return result

    monkeypatch.setattr(_file.os, "lstat", lstat_then_swap)
    with pytest.raises(TokenStoreError, match="symlink"):
        await store.load()


@pytest.mark.asyncio
async def test_symlink_at_the_lock_path_is_refused(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "token.json")
    store.lock_path.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(TokenStoreError) as info:
        async with store.lock():
            pytest.fail("locked through a symlink")
    assert str(tmp_path) in str(info.value)
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.asyncio
async def test_a_directory_at_the_path_is_refused(tmp_path: Path) -> None:
    (tmp_path / "token.json").mkdir()
    store = FileTokenStore(tmp_path / "token.json")
    for op in (store.load(), store.save(make_token()), store.clear()):
        with pytest.raises(TokenStoreError, match="not a regular file"):
            await op


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_a_fifo_at_the_path_is_refused_without_hanging(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "token.json")
    with pytest.raises(TokenStoreError, match="not a regular file"):
        await FileTokenStore(tmp_path / "token.json").load()


# -- corrupt files ------------------------------------------------------------------


def _valid_json(secret: str = f"at-{SECRET_MARK}-1") -> bytes:
    token = Token(access_token=secret, refresh_token=f"rt-{SECRET_MARK}-2", issued_at=1.0)
    return json.dumps(token.to_dict()).encode()


CORRUPT_FILES = {
    "empty": b"",
    "whitespace": b"  \n\t",
    "truncated": _valid_json()[:40],
    "truncated at the end": _valid_json()[:-1],
    "bad JSON": b"{'access_token': 'at-SeCrEt'}",
    "bad escape": b'{"access_token": "at-SeCrEt\\q"}',
    "JSON null": b"null",
    "JSON list": b'["at-SeCrEt-1"]',
    "access_token not a string": b'{"access_token": 42, "issued_at": 1}',
    "access_token missing": b'{"refresh_token": "rt-SeCrEt", "issued_at": 1}',
    "issued_at a string": b'{"access_token": "at-SeCrEt", "issued_at": "rt-SeCrEt-9"}',
    "issued_at NaN": b'{"access_token": "at-SeCrEt", "issued_at": NaN}',
    "expires before issued": b'{"access_token": "at-SeCrEt", "issued_at": 5, "expires_at": 1}',
    "scopes not a list": b'{"access_token": "at-SeCrEt", "issued_at": 1, "scopes": 3}',
    "secret version": b'{"version": ["at-SeCrEt-v"], "access_token": "at-SeCrEt", "issued_at": 1}',
    "not UTF-8": b'{"access_token": "\xff\xfeSeCrEt"}',
    "huge": b'{"access_token": "' + b"S" * 100_000 + b'"}',
    "huge number": b'{"access_token": "at-SeCrEt", "issued_at": 1' + b"0" * 5000 + b"}",
}


@pytest.mark.asyncio
@pytest.mark.parametrize("raw", CORRUPT_FILES.values(), ids=CORRUPT_FILES.keys())
async def test_corrupt_file_raises_and_is_never_overwritten(
    tmp_path: Path, raw: bytes, caplog_stores: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "token.json"
    path.write_bytes(raw)
    path.chmod(0o600)
    store = FileTokenStore(path)

    with pytest.raises(TokenStoreError, match="corrupt") as info:
        await store.load()
    assert str(path) in str(info.value)
    assert info.value.store == str(path)
    store_errors_never_leak(info.value)

    with pytest.raises(TokenStoreError, match="corrupt") as info:
        await store.save(make_token())
    store_errors_never_leak(info.value)
    assert path.read_bytes() == raw, "save() replaced a corrupt file"

    for record in caplog_stores.records:
        assert SECRET_MARK not in record.getMessage()

    # The caller's decision: overwrite it.
    token = make_token()
    await store.save(token, overwrite_corrupt=True)
    loaded = await store.load()
    assert loaded is not None
    assert loaded.to_dict() == token.to_dict()
    assert any(r.event == "store.corrupt_overwritten" for r in caplog_stores.records)


@pytest.mark.asyncio
async def test_clear_removes_a_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "token.json"
    path.write_bytes(b"{")
    store = FileTokenStore(path)
    await store.clear()
    assert not path.exists()
    await store.save(make_token())


@pytest.mark.asyncio
async def test_unreadable_file_names_the_path(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    path = tmp_path / "token.json"
    store = FileTokenStore(path)
    await store.save(make_token())
    path.chmod(0o000)
    with pytest.raises(TokenStoreError, match="cannot read") as info:
        await store.load()
    assert str(path) in str(info.value)


# -- atomic writes ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_failed_replace_keeps_the_old_token_and_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "token.json"
    store = FileTokenStore(path)
    old = make_token(1)
    await store.save(old)

    def fail(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_file.os, "replace", fail)
    with pytest.raises(TokenStoreError, match="No space left") as info:
        await store.save(make_token(2))
    store_errors_never_leak(info.value)
    monkeypatch.undo()
    loaded = await store.load()
    assert loaded is not None
    assert loaded.to_dict() == old.to_dict()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["token.json"]


@pytest.mark.asyncio
async def test_save_fsyncs_file_and_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[bool] = []
    real = os.fsync

    def spy(fd: int) -> None:
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real(fd)

    monkeypatch.setattr(_file.os, "fsync", spy)
    await FileTokenStore(tmp_path / "token.json").save(make_token())
    assert synced == [False, True], "file first, then its folder"


@pytest.mark.asyncio
async def test_stale_temp_files_are_swept(tmp_path: Path) -> None:
    path = tmp_path / "token.json"
    stale = tmp_path / ".token.json.0123456789abcdef.tmp"
    fresh = tmp_path / ".token.json.fedcba9876543210.tmp"
    other = tmp_path / ".other.json.0123456789abcdef.tmp"
    for p in (stale, fresh, other):
        p.write_text("left by a killed save")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    await FileTokenStore(path).save(make_token())
    assert not stale.exists()
    assert fresh.exists(), "may belong to a save in progress"
    assert other.exists(), "belongs to another store"


@pytest.mark.asyncio
async def test_a_cancelled_save_leaves_the_old_or_the_new_token(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "token.json")
    first, second = make_token(1), make_token(2)
    await store.save(first)
    for _ in range(20):
        task = asyncio.create_task(store.save(second))
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        loaded = await store.load()
        assert loaded is not None
        assert loaded.to_dict() in (first.to_dict(), second.to_dict())


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    access=st.text(min_size=1),
    refresh=st.none() | st.text(min_size=1),
    issued=st.floats(min_value=0, max_value=4e9),
    life=st.none() | st.floats(min_value=0, max_value=1e7),
)
def test_any_token_round_trips(
    tmp_path: Path, access: str, refresh: str | None, issued: float, life: float | None
) -> None:
    token = Token(
        access_token=access,
        refresh_token=refresh,
        issued_at=issued,
        expires_at=None if life is None else issued + life,
    )
    store = FileTokenStore(tmp_path / "token.json")

    async def run() -> Token | None:
        await store.save(token)
        return await store.load()

    loaded = asyncio.run(run())
    assert loaded is not None
    assert loaded.to_dict() == token.to_dict()


# -- the lock -----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_waiting_for_the_lock_does_not_block_the_loop(tmp_path: Path) -> None:
    holder = FileTokenStore(tmp_path / "token.json")
    waiter = FileTokenStore(tmp_path / "token.json", lock_timeout=0.3)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async with holder.lock():
        tick = asyncio.create_task(ticker())
        with pytest.raises(TokenStoreError):
            async with waiter.lock():
                pass
        tick.cancel()
    assert ticks >= 5, "the event loop was blocked while waiting for the lock"


@pytest.mark.asyncio
async def test_lock_timeout_zero_tries_once(tmp_path: Path) -> None:
    path = tmp_path / "token.json"
    holder, waiter = FileTokenStore(path), FileTokenStore(path, lock_timeout=0)
    async with waiter.lock():
        pass
    async with holder.lock():
        with pytest.raises(TokenStoreError):
            async with waiter.lock():
                pass


@pytest.mark.asyncio
async def test_lock_timeout_message(tmp_path: Path) -> None:
    path = tmp_path / "token.json"
    holder, waiter = FileTokenStore(path), FileTokenStore(path, lock_timeout=0.1)
    async with holder.lock():
        with pytest.raises(TokenStoreError) as info:
            async with waiter.lock():
                pass
    assert str(info.value) == (
        f"lock on token file {path} not acquired within 0.1 s: another task or process holds it"
    )


@pytest.mark.asyncio
async def test_lock_acquired_by_a_thread_after_its_task_was_cancelled_is_released(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The thread gets the lock after its task gave up: it must hand it straight back."""
    path = tmp_path / "token.json"
    got_it = threading.Event()
    go_on = threading.Event()
    real_deliver = _file._Handoff.deliver

    def slow_deliver(self: _file._Handoff, lock: object) -> bool:
        got_it.set()
        go_on.wait(5)
        return real_deliver(self, lock)  # type: ignore[arg-type]

    monkeypatch.setattr(_file._Handoff, "deliver", slow_deliver)
    task = asyncio.create_task(FileTokenStore(path).lock().__aenter__())
    assert await asyncio.to_thread(got_it.wait, 5)  # the thread holds the flock now
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    go_on.set()
    monkeypatch.undo()
    async with asyncio.timeout(2):
        async with FileTokenStore(path, lock_timeout=1).lock():
            pass


@pytest.mark.asyncio
async def test_lock_delivered_to_a_task_cancelled_before_it_resumed_is_released(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The thread handed the lock over, but the task was cancelled before it ran."""
    path = tmp_path / "token.json"
    delivered = threading.Event()
    go_on = threading.Event()
    real_deliver = _file._Handoff.deliver

    def deliver_then_stall(self: _file._Handoff, lock: object) -> bool:
        ok = real_deliver(self, lock)  # type: ignore[arg-type]
        delivered.set()
        go_on.wait(5)
        return ok

    monkeypatch.setattr(_file._Handoff, "deliver", deliver_then_stall)
    task = asyncio.create_task(FileTokenStore(path).lock().__aenter__())
    assert await asyncio.to_thread(delivered.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    go_on.set()
    monkeypatch.undo()
    async with asyncio.timeout(2):
        async with FileTokenStore(path, lock_timeout=1).lock():
            pass


@pytest.mark.asyncio
async def test_lock_does_not_fall_back_to_a_soft_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without flock a killed holder's lock would never go away: refuse instead."""
    import fcntl

    def no_flock(fd: int, operation: int) -> None:
        raise OSError(38, "Function not implemented")

    # fcntl.flock itself, not a filelock internal: the same for every filelock release.
    monkeypatch.setattr(fcntl, "flock", no_flock)
    with pytest.raises(TokenStoreError, match="Function not implemented"):
        async with FileTokenStore(tmp_path / "token.json").lock():
            pass


def test_a_leading_tilde_means_the_home_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    store = FileTokenStore("~/netrex/token.json")
    assert store.path == tmp_path / "netrex" / "token.json"
