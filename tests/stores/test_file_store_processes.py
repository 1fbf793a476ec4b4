"""FileTokenStore across real processes: crash safety, lock exclusion, dead holders."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from netrex_async import TokenStoreError
from netrex_async._stores._file import FileTokenStore

pytestmark = [
    pytest.mark.skipif(os.name != "posix", reason="SIGKILL and flock"),
    pytest.mark.slow,
]


def start(python: list[str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*python, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_line(proc: subprocess.Popen[str], expected: str, timeout: float = 10) -> None:
    """Block until the child prints ``expected`` (run in a thread from async tests)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    line = proc.stdout.readline().strip()
    if line != expected:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"child said {line!r}, not {expected!r}; stderr:\n{err}")
    assert time.monotonic() < deadline


def kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.timeout(60)
def test_a_process_killed_while_saving_leaves_a_file_that_loads(
    tmp_path: Path, python: list[str]
) -> None:
    """40 processes each save in a tight loop and are SIGKILLed at a random moment.

    The processes are forked by a "zygote" child that imported the library once, so a
    run costs milliseconds rather than an interpreter start.
    """
    rng = random.Random(40)
    runs = 40
    zygote = subprocess.Popen(
        [*python, "zygote"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert zygote.stdin is not None
    assert zygote.stdout is not None
    try:
        wait_for_line(zygote, "zygote")
        for i in range(runs):
            path = tmp_path / f"run{i}" / "token.json"
            zygote.stdin.write(f"{path}\n")
            zygote.stdin.flush()
            ready, pid = zygote.stdout.readline().split()
            assert ready == "ready"
            # A random moment among the child's next few hundred saves.
            time.sleep(rng.uniform(0, 0.02))
            os.kill(int(pid), signal.SIGKILL)
            deadline = time.monotonic() + 5
            while not _gone(int(pid)):
                assert time.monotonic() < deadline, "the child survived SIGKILL"
                time.sleep(0.001)
            asyncio.run(_check_after_crash(path))
    finally:
        zygote.kill()
        zygote.communicate()


async def _check_after_crash(path: Path) -> None:
    store = FileTokenStore(path)
    token = await store.load()
    assert token is not None, f"{path} lost its token"
    assert token.refresh_token is not None
    assert token.access_token.startswith("at-")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # Whatever temp file the kill left behind is private too, and a save still works.
    for leftover in path.parent.glob(".token.json.*.tmp"):
        assert stat.S_IMODE(os.stat(leftover).st_mode) == 0o600
    await store.save(token)


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_lock_excludes_real_processes(tmp_path: Path, python: list[str]) -> None:
    """4 processes x 50 read-modify-write increments under the lock: none is lost."""
    path = tmp_path / "token.json"
    counter = tmp_path / "counter"
    counter.write_text("0")
    procs, each = 4, 50
    children = [start(python, "count", str(path), str(counter), str(each)) for _ in range(procs)]
    for proc in children:
        out, err = await asyncio.to_thread(proc.communicate, timeout=50)
        assert proc.returncode == 0, err
        assert out.strip() == "done"
    assert int(counter.read_text()) == procs * each


@pytest.mark.asyncio
@pytest.mark.timeout(30)
async def test_lock_of_a_killed_holder_is_recovered(tmp_path: Path, python: list[str]) -> None:
    path = tmp_path / "token.json"
    proc = start(python, "hold-lock", str(path))
    try:
        await asyncio.to_thread(wait_for_line, proc, "locked")
        # It really holds the lock...
        with pytest.raises(TokenStoreError):
            async with FileTokenStore(path, lock_timeout=0.2).lock():
                pass
    finally:
        kill(proc)
    # ...and the OS released it when the process died.
    started = time.monotonic()
    async with FileTokenStore(path, lock_timeout=5).lock():
        pass
    assert time.monotonic() - started < 2.0
