"""Checkpoints: where a collector keeps its cursor, and the lock that makes it the only one.

A checkpoint holds one cursor (the key of the last item a collector's caller was done
with) and a lock held for as long as a collector runs: one active collector per
checkpoint; another one waits as a standby, for as long as it takes, and takes over when
the first stops or dies. The file checkpoint is a :class:`FileTokenStore` underneath
(atomic 0600 writes, symlink refusal, the OS lock on a sidecar file that the kernel drops
when its holder dies), holding a cursor instead of a token.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

import attrs

from ._errors import ClosedError, TokenStoreConfigError, TokenStoreError
from ._lifecycle import AsyncClosing
from ._log import stores as log
from ._stores._file import FileTokenStore

__all__ = [
    "Checkpoint",
    "CheckpointLost",
    "FileCheckpoint",
    "MemoryCheckpoint",
    "check_cursor",
    "encode_checkpoint",
    "parse_checkpoint",
    "standby",
]

#: Seconds one attempt at a busy checkpoint lock waits before the standby logs and tries
#: again (it tries for as long as it takes). Short, so that a standby says it is one soon
#: after it starts; each attempt polls the lock all along, so a takeover is not delayed.
STANDBY_ATTEMPT = 2.0
#: A checkpoint file is a few dozen bytes.
_MAX_SIZE = 64 * 1024
_VERSION = 1


class CheckpointLost(TokenStoreError):
    """This collector no longer holds its checkpoint's lock: another may have taken over.

    Nothing was committed; the collector must stop (a standby carries on from the last
    committed cursor).
    """


class Busy(TokenStoreError):
    """Internal: the lock was not acquired within one attempt; a standby tries again."""


def check_cursor(cursor: Any) -> None:
    """Refuse a cursor that is not a JSON string or integer (or a finite float).

    Raises:
        TypeError: ``cursor`` cannot be stored as it is.
    """
    if isinstance(cursor, bool) or not isinstance(cursor, str | int | float):
        raise TypeError(f"a cursor is a string or a number, not {type(cursor).__name__}")
    if isinstance(cursor, float) and not math.isfinite(cursor):
        raise TypeError("a cursor cannot be NaN or infinite")


@runtime_checkable
class Checkpoint(Protocol):
    """Where a collector commits its cursor, with the lock of the one active collector.

    :meth:`NetrexClient.collect` holds :meth:`lock` for as long as it runs, reads the
    cursor once with :meth:`load`, and :meth:`save` s each batch's cursor when its
    caller asks for the next batch.

    A checkpoint whose lock can be lost while it is held (a lease that runs out, as in
    Redis) also has ``async check_lease()``, outside this protocol: it raises
    :class:`CheckpointLost` once the lock is lost, or :class:`TokenStoreError` when
    that cannot be confirmed now; ``collect()`` calls it before it hands out each batch.
    """

    @property
    def description(self) -> str:
        """How the checkpoint is named in errors and logs (no secret in it)."""
        ...

    async def load(self) -> str | int | float | None:
        """The committed cursor, or ``None`` for a new checkpoint (start at the beginning).

        Raises:
            TokenStoreError: The checkpoint cannot be read or is corrupt (never reset).
        """
        ...

    async def save(self, cursor: str | int | float) -> None:
        """Commit ``cursor`` atomically: a reader sees the old cursor or the new one.

        Raises:
            CheckpointLost: The lock is no longer this holder's (nothing was written).
            TokenStoreError: Writing failed.
        """
        ...

    async def clear(self) -> None:
        """Forget the cursor: the next collector starts at the beginning."""
        ...

    def lock(self) -> AbstractAsyncContextManager[None]:
        """Exclusive across every collector sharing this checkpoint; waits as a standby
        for as long as it takes."""
        ...

    async def aclose(self) -> None:
        """Release what the checkpoint opened."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


@asynccontextmanager
async def standby(
    attempt: Callable[[], AbstractAsyncContextManager[None]],
    description: str,
    *,
    retry_errors: bool = False,
    max_backoff: float = 30.0,
) -> AsyncIterator[None]:
    """Enter ``attempt()`` (a lock that raises :class:`Busy` when it times out), trying
    again for as long as it takes; log once when waiting starts, once when it ends.

    Args:
        attempt: Makes one bounded attempt at the lock.
        description: The checkpoint, for the log records.
        retry_errors: Also try again (with capped back-off) after a
            :class:`TokenStoreError` that is not a timeout (Redis away); otherwise it is
            raised.
        max_backoff: The longest pause between attempts after errors.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    waited = False
    failures = 0
    while True:
        manager = attempt()
        try:
            await manager.__aenter__()
        except Busy:
            if not waited:
                waited = True
                log.info(
                    "checkpoint %s is held by another collector; waiting as a standby",
                    description,
                    extra={"event": "checkpoint.standby", "store": description},
                )
            continue
        except (ClosedError, TokenStoreConfigError):
            raise  # a wrong password does not get right by waiting
        except TokenStoreError as e:
            if not retry_errors:
                raise
            failures += 1
            pause = min(max_backoff, 0.5 * 2 ** min(failures - 1, 16))
            log.warning(
                "cannot lock checkpoint %s (%s); trying again in %.1f s",
                description,
                e,
                pause,
                extra={"event": "checkpoint.lock_failed", "store": description},
            )
            await asyncio.sleep(pause)
            continue
        break
    if waited:
        log.info(
            "checkpoint %s taken over after %.1f s as a standby",
            description,
            loop.time() - started,
            extra={"event": "checkpoint.taken_over", "store": description},
        )
    try:
        yield
    except BaseException as e:
        if not await manager.__aexit__(type(e), e, e.__traceback__):
            raise
    else:
        await manager.__aexit__(None, None, None)


@attrs.define(repr=False, eq=False)
class MemoryCheckpoint(AsyncClosing):
    """A cursor in this process's memory, with an :class:`asyncio.Lock`.

    For tests and for collectors whose caller keeps its own position; nothing survives a
    restart.

    Args:
        cursor: An initial cursor (``None``: start at the beginning).
    """

    _cursor: str | int | float | None = attrs.field(default=None, alias="cursor")
    _lock: asyncio.Lock = attrs.field(factory=asyncio.Lock, init=False)

    def __attrs_post_init__(self) -> None:
        if self._cursor is not None:
            check_cursor(self._cursor)

    def __repr__(self) -> str:
        return f"MemoryCheckpoint(cursor={self._cursor!r})"

    @property
    def description(self) -> str:
        """How this checkpoint is named in errors and logs."""
        return "memory checkpoint"

    @property
    def cursor(self) -> str | int | float | None:
        """The committed cursor."""
        return self._cursor

    async def load(self) -> str | int | float | None:
        """The committed cursor, or ``None``."""
        return self._cursor

    async def save(self, cursor: str | int | float) -> None:
        """Commit ``cursor``.

        Raises:
            TypeError: ``cursor`` is not a string or a number.
        """
        check_cursor(cursor)
        self._cursor = cursor

    async def clear(self) -> None:
        """Forget the cursor."""
        self._cursor = None

    @asynccontextmanager
    async def lock(self) -> AsyncIterator[None]:
        """Exclusive within this process; waits for as long as it takes."""
        async with self._lock:
            yield

    async def aclose(self) -> None:
        """Nothing to release."""


class _CheckpointFile(FileTokenStore):
    """The file machinery of :class:`FileTokenStore`, named as a checkpoint file."""

    _noun: ClassVar[str] = "checkpoint file"
    _exposure: ClassVar[str] = "it holds no secret, but another user could have moved the cursor"

    def _lock_timeout_error(self) -> TokenStoreError:
        return Busy(
            f"checkpoint file {self.description} is locked by another collector",
            store=self.description,
        )


class FileCheckpoint(AsyncClosing):
    """A cursor in a small JSON file, locked across the processes of one host.

    The file holds ``{"version": 1, "cursor": ...}``, written like a
    :class:`FileTokenStore`'s token: created 0600 in folders created 0700, replaced
    atomically (temp file, ``fsync``, rename, ``fsync`` of the folder), symlinks refused.
    A file that exists but holds no cursor (empty, truncated, not JSON, another shape) is
    a :class:`TokenStoreError` naming the file, never a silent restart from the
    beginning: move it away or :meth:`clear` it to start over.

    The lock is an OS file lock (``flock``) on ``path + ".lock"``, held for as long as a
    collector runs; the kernel drops it when the holder dies, however it dies. A second
    collector waits for it as a standby (logged once, event ``checkpoint.standby``) and
    takes over then. One host only: for many hosts use ``RedisCheckpoint``.

    Args:
        path: The checkpoint file; relative paths are made absolute now.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._file = _CheckpointFile(path, lock_timeout=STANDBY_ATTEMPT)

    def __repr__(self) -> str:
        return f"FileCheckpoint(path={str(self._file.path)!r})"

    @property
    def description(self) -> str:
        """The file's path."""
        return self._file.description

    @property
    def path(self) -> Path:
        """The checkpoint file."""
        return self._file.path

    @property
    def lock_path(self) -> Path:
        """The sidecar file the lock is taken on."""
        return self._file.lock_path

    async def load(self) -> str | int | float | None:
        """The committed cursor, or ``None`` if the file does not exist.

        Raises:
            TokenStoreError: The file is a symlink or not a regular file, cannot be read,
                or is corrupt (the message names the file and the reason).
        """
        f = self._file
        raw = await asyncio.to_thread(f._guarded, "read", f._read_bytes)
        return None if raw is None else parse_checkpoint(raw, "checkpoint file", self.description)

    async def save(self, cursor: str | int | float) -> None:
        """Replace the file atomically with ``cursor``.

        Raises:
            TypeError: ``cursor`` is not a string or a number.
            TokenStoreError: Writing failed (disk full, permissions, a symlink).
        """
        data = encode_checkpoint(cursor)
        await asyncio.to_thread(self._file._guarded, "write", self._write, data)

    def _write(self, data: bytes) -> None:
        self._file._ensure_parent()
        self._file._read_bytes()  # refuses a symlink or a non-file at the path
        self._file._replace(data, ensure_parent=False)

    async def clear(self) -> None:
        """Remove the file; the next collector starts at the beginning.

        Raises:
            TokenStoreError: Removing failed.
        """
        await self._file.clear()

    def lock(self) -> AbstractAsyncContextManager[None]:
        """The OS lock on :attr:`lock_path`, waited for as long as it takes.

        Raises:
            TokenStoreError: The lock file cannot be opened (a symlink, a file system
                without ``flock``).
        """
        return standby(self._file.lock, self.description)

    async def aclose(self) -> None:
        """Nothing to release: files are opened and closed by each operation."""


def encode_checkpoint(cursor: str | int | float) -> bytes:
    """The stored form of ``cursor``: ``{"version": 1, "cursor": ...}`` as JSON.

    Raises:
        TypeError: ``cursor`` is not a string or a number.
    """
    check_cursor(cursor)
    return (json.dumps({"version": _VERSION, "cursor": cursor}) + "\n").encode("utf-8")


class _CorruptCheckpoint(TokenStoreError):
    """A stored checkpoint holds no cursor: left as it is, for a person to look at
    (a restart cannot help; ``netrex-async collect`` exits with its own code)."""


def parse_checkpoint(raw: bytes, what: str, description: str) -> str | int | float:
    """The cursor in a stored checkpoint.

    Args:
        raw: The stored bytes.
        what: What holds them, for the message ("checkpoint file", "checkpoint in Redis").
        description: Where they are (a path, a Redis key).

    Raises:
        TokenStoreError: They hold no checkpoint (the message names the place and the
            reason, never the content).
    """
    # Each problem raised outside its except block (no decoder error in the chain).
    problem = ""
    data: Any = None
    if len(raw) > _MAX_SIZE:
        problem = f"larger than {_MAX_SIZE} bytes"
    else:
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            problem = "it is empty" if not raw.strip() else "not valid JSON"
    if not problem:
        if not isinstance(data, dict) or data.get("version") != _VERSION:
            problem = f'not a checkpoint (expected {{"version": {_VERSION}, "cursor": ...}})'
        else:
            try:
                check_cursor(data.get("cursor"))
            except TypeError as e:
                problem = f"not a checkpoint ({e})"
    if problem:
        log.error(
            "%s is corrupt: %s",
            what,
            problem,
            extra={"event": "store.corrupt", "store": description},
        )
        raise _CorruptCheckpoint(
            f"{what} {description} is corrupt: {problem}. It was left as it is (a "
            "collector never restarts from the beginning silently): inspect it, then fix "
            "or remove it, or call clear() to start from the beginning",
            store=description,
        )
    cursor: str | int | float = data["cursor"]
    return cursor
