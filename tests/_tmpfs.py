"""A tiny tmpfs of a test's own, to fill to the last byte: a real full file system.

Mounting needs root (or CAP_SYS_ADMIN); where it is not possible, the fixture skips.
Import by name (``tests/`` is on ``sys.path``)::

    from _tmpfs import fill, grow, small_disk  # small_disk is a fixture

    def test_x(small_disk: Path) -> None:
        filler = fill(small_disk)   # ENOSPC from now on
        filler.unlink()             # room again
        grow(small_disk, "1m")      # or make it bigger, files kept
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["fill", "grow", "small_disk"]


@pytest.fixture(name="small_disk")
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs, mounted for this test (needs root; skipped otherwise)."""
    where = tmp_path / "disk"
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte; returns the filler file."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1024, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return filler


def grow(disk: Path, size: str) -> None:
    """Remount ``disk`` with room for ``size`` (``"1m"``); its files stay."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(disk)], check=True)
