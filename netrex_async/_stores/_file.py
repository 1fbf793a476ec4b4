"""FileTokenStore: a JSON file shared by the processes of one host."""

from __future__ import annotations

import asyncio
import errno
import json
import math
import os
import re
import secrets
import stat
import threading
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, suppress
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import attrs
import filelock

from .._errors import TokenStoreError
from .._lifecycle import AsyncClosing
from .._log import stores as log
from .._redact import safe_text, scrub
from .._token import Token
from ._locking import layered_lock

__all__ = ["FileTokenStore"]

_T = TypeVar("_T")

_FILE_MODE = 0o600
_DIR_MODE = 0o700
#: A token file is a few hundred bytes; anything much larger is not one.
_MAX_SIZE = 64 * 1024
#: How often a waiting thread retries the flock; a syscall, so cheap.
_POLL_INTERVAL = 0.01
#: Temp files older than this were left by a process that died mid-save.
_STALE_TEMP_AGE = 600.0

_POSIX = os.name == "posix"
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)


class _CorruptFile(TokenStoreError):
    """The file exists but holds no token; only ``overwrite_corrupt=True`` replaces it."""


def _absolute(path: str | os.PathLike[str]) -> Path:
    # Absolute now, so a later chdir cannot move the store; "~" is the user's home.
    return Path(path).expanduser().absolute()


def _seconds(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{attribute.name.lstrip('_')} must be a number of seconds")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{attribute.name.lstrip('_')} must be a finite number, 0 or more")


#: The field names of a stored token: messages name them, and they are no secret.
_FIELD_NAMES = frozenset(
    {"version", "access_token", "refresh_token", "issued_at", "expires_at", "scopes", "token_type"}
)


def strings_in(data: Any, limit: int = 1000) -> list[str]:
    """Every string in a parsed JSON value (up to ``limit``), to scrub from messages.

    Keys that are a token's own field names are left out: scrubbing them would turn
    "issued_at must be a number" into "*** must be a number".
    """
    found: list[str] = []
    stack = [data]
    while stack and len(found) < limit:
        item = stack.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            stack.extend(k for k in item if k not in _FIELD_NAMES)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


class _Handoff:
    """Hands a lock taken in a worker thread to the task that asked for it.

    If the task is cancelled while the thread still waits, the thread gives the lock
    back as soon as it gets it, so a cancelled waiter never leaks the lock.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self.abandoned = False
        self._held: filelock.BaseFileLock | None = None

    def deliver(self, lock: filelock.BaseFileLock) -> bool:
        """Thread side: ``False`` when the task is gone and the lock must be released."""
        with self._mutex:
            if self.abandoned:
                return False
            self._held = lock
            return True

    def abandon(self) -> filelock.BaseFileLock | None:
        """Task side: stop waiting; returns the lock if the thread delivered it already."""
        with self._mutex:
            self.abandoned = True
            held, self._held = self._held, None
            return held


@attrs.define(repr=False, eq=False)
class FileTokenStore(AsyncClosing):
    """A token in a JSON file, locked across the processes of one host.

    The file holds ``token.to_dict()``. It is created 0600, in folders created 0700,
    with no moment where it is more open than that, and replaced atomically on every
    save (temp file in the same folder, ``fsync``, ``os.replace``, ``fsync`` of the
    folder): a reader, or a process killed mid-save, sees the old token or the new one.

    Policies:

    * **Symlinks** at the path (or at the lock path) are refused with
      :class:`TokenStoreError`; nothing follows them.
    * **Corrupt files** (empty, truncated, not JSON, not a token) make :meth:`load`
      raise :class:`TokenStoreError` naming the path and the reason, never the content.
      :meth:`save` refuses to replace such a file too, because it may be the only copy
      of a grant a person can still rescue. The caller decides: inspect or move the file
      away, call :meth:`clear`, or ``save(token, overwrite_corrupt=True)``.
    * **Loose permissions**: a token file readable or writable by the group or others is
      restricted to 0600 when it is next read, with a warning logged
      (event ``store.permissions_tightened``: consider the token exposed and revoke it).
      If it cannot be restricted (not our file), it is refused.

    The lock is an OS file lock (``flock`` via :mod:`filelock`) on a sidecar file,
    ``path + ".lock"`` (0600, never deleted, so that waiters all lock the same inode).
    The OS drops it when its holder dies, however it dies. Tasks of one process queue on
    an :class:`asyncio.Lock` first, and the file lock is taken in a worker thread, so
    the event loop never blocks. Locks are one host only: ``flock`` on network file
    systems is not to be trusted; for many hosts use ``RedisTokenStore``.

    All file I/O runs in worker threads. A cancelled :meth:`save` still completes (or
    not) atomically in its thread.

    Args:
        path: The token file. Relative paths are made absolute at construction.
        lock_timeout: Seconds :meth:`lock` waits, counting the wait for other tasks of
            this process, before it raises :class:`TokenStoreError`; 0 tries once. The
            default, 60 s, outlasts the slowest refresh a :class:`TokenManager` with
            default settings can make (:attr:`TokenManager.worst_case`, about 52 s), so
            a waiter never gives up on a holder that is still working.
    """

    _path: Path = attrs.field(converter=_absolute, alias="path")
    _lock_timeout: float = attrs.field(
        default=60.0, kw_only=True, alias="lock_timeout", validator=_seconds
    )
    _task_lock: asyncio.Lock = attrs.field(factory=asyncio.Lock, init=False)
    #: What the file is called in errors and logs (a subclass may keep something else).
    _noun: ClassVar[str] = "token file"
    #: What a loose mode means for what the file holds (said in the warning).
    _exposure: ClassVar[str] = "consider the grant exposed"

    def __repr__(self) -> str:
        return f"FileTokenStore(path={str(self._path)!r}, lock_timeout={self._lock_timeout!r})"

    @property
    def description(self) -> str:
        """How this store is named in errors and logs: the file's path."""
        return str(self._path)

    @property
    def path(self) -> Path:
        """The token file."""
        return self._path

    @property
    def lock_path(self) -> Path:
        """The sidecar file the cross-process lock is taken on."""
        return self._path.with_name(self._path.name + ".lock")

    @property
    def lock_timeout(self) -> float:
        """Seconds :meth:`lock` waits before it gives up."""
        return self._lock_timeout

    @property
    def lease(self) -> None:
        """``None``: the OS lock has no expiry; it is held until released, or until its
        holder dies (the kernel drops it)."""
        return None

    # -- the protocol ------------------------------------------------------------

    async def load(self) -> Token | None:
        """The stored token, or ``None`` if the file does not exist.

        Raises:
            TokenStoreError: The file is a symlink or not a regular file, cannot be read,
                or is corrupt (the message names the path and the reason).
        """
        return await asyncio.to_thread(self._guarded, "read", self._read)

    async def save(self, token: Token, *, overwrite_corrupt: bool = False) -> None:
        """Replace the stored token atomically, creating missing folders (0700).

        Args:
            token: The token to store.
            overwrite_corrupt: Replace the file even if it holds something that is not a
                token. Off by default: a corrupt file is reported, never silently lost.

        Raises:
            TokenStoreError: The path is a symlink or not a regular file, the current file
                is corrupt (and ``overwrite_corrupt`` is off), or writing failed.
        """
        if not isinstance(token, Token):
            raise TypeError(f"save() takes a Token, not {type(token).__name__}")
        await asyncio.to_thread(self._guarded, "write", self._write, token, overwrite_corrupt)

    async def clear(self) -> None:
        """Remove the token file, whatever it holds; nothing to do if it is missing.

        The sidecar ``.lock`` file stays: another process may be waiting on it.

        Raises:
            TokenStoreError: The path is a symlink or not a regular file, or removing failed.
        """
        await asyncio.to_thread(self._guarded, "remove", self._clear)

    def lock(self) -> AbstractAsyncContextManager[None]:
        """Exclusive across every task and process of this host using this path.

        Not re-entrant: a task that enters it twice waits for itself until the timeout.

        Raises:
            TokenStoreError: Not acquired within ``lock_timeout``, or the lock file could
                not be opened (a symlink, a file system without ``flock``).
        """
        return layered_lock(
            self._task_lock,
            self._lock_timeout,
            self._acquire_file_lock,
            self._release_file_lock,
            self._lock_timeout_error,
            message=f"{self._noun} locked",
            description=self.description,
        )

    async def aclose(self) -> None:
        """Nothing to release: files are opened and closed by each operation."""

    # -- the lock ----------------------------------------------------------------

    async def _acquire_file_lock(self, wait: float) -> filelock.BaseFileLock:
        handoff = _Handoff()
        try:
            held = await asyncio.to_thread(self._guarded, "lock", self._acquire, handoff, wait)
        except asyncio.CancelledError:
            # The thread may still be waiting: it releases the lock if it gets it later.
            late = handoff.abandon()
            if late is not None:
                self._release_detached(late)
            raise
        if held is None:
            raise self._lock_timeout_error()
        return held

    def _acquire(self, handoff: _Handoff, timeout: float) -> filelock.BaseFileLock | None:
        if handoff.abandoned:
            return None
        self._ensure_parent()
        # A fresh lock object per acquisition: filelock's locks are re-entrant per object,
        # and a late thread of a cancelled waiter must not share state with the next one.
        lock = filelock.FileLock(
            self.lock_path,
            timeout=timeout,
            mode=_FILE_MODE,
            thread_local=False,
            poll_interval=_POLL_INTERVAL,
            # A soft lock outlives a killed holder; refuse rather than fall back to one.
            fallback_to_soft=False,
        )
        try:
            lock.acquire(cancel_check=lambda: handoff.abandoned)
        except filelock.Timeout:
            return None
        if not handoff.deliver(lock):
            lock.release()
            return None
        return lock

    async def _release_file_lock(self, lock: filelock.BaseFileLock) -> None:
        # Shielded: a second cancellation must not stop the release itself.
        await asyncio.shield(self._release_in_thread(lock))

    def _release_detached(self, lock: filelock.BaseFileLock) -> None:
        """Release for a cancelled task: started now, finished by a worker thread."""
        self._release_in_thread(lock)

    def _release_in_thread(self, lock: filelock.BaseFileLock) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(None, self._guarded, "unlock", lock.release)
        except RuntimeError:
            # The executor is shut down (the loop is closing): unlocking is one syscall.
            future = loop.create_future()
            try:
                self._guarded("unlock", lock.release)
            except TokenStoreError as e:
                future.set_exception(e)
            else:
                future.set_result(None)

        def done(f: asyncio.Future[None]) -> None:
            if not f.cancelled() and f.exception() is not None:
                log.warning(
                    f"releasing the {self._noun} lock failed",
                    extra={"event": "store.unlock_failed", "store": self.description},
                )

        future.add_done_callback(done)
        return future

    def _lock_timeout_error(self) -> TokenStoreError:
        log.warning(
            f"{self._noun} lock not acquired in time",
            extra={"event": "store.lock_timeout", "store": self.description},
        )
        return TokenStoreError(
            f"lock on {self._noun} {self.description} not acquired within "
            f"{self._lock_timeout:g} s: another task or process holds it",
            store=self.description,
        )

    # -- file I/O, in worker threads ----------------------------------------------

    def _guarded(self, action: str, fn: Callable[..., _T], *args: Any) -> _T:
        try:
            return fn(*args)
        except TokenStoreError:
            raise
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise self._symlink_error(Path(e.filename or self._path)) from e
            reason = e.strerror or type(e).__name__
            raise TokenStoreError(
                f"cannot {action} {self._noun} {self.description}: {reason}",
                store=self.description,
            ) from e

    def _error(self, reason: str) -> TokenStoreError:
        return TokenStoreError(f"{self._noun} {self.description}: {reason}", store=self.description)

    def _symlink_error(self, path: Path) -> TokenStoreError:
        return TokenStoreError(
            f"refusing {self._noun} {path}: it is a symlink (a {self._noun} must be a "
            "regular file, not a link someone could point elsewhere)",
            store=self.description,
        )

    def _check_kind(self, st: os.stat_result, path: Path | None = None) -> None:
        path = path or self._path
        if stat.S_ISLNK(st.st_mode):
            raise self._symlink_error(path)
        if not stat.S_ISREG(st.st_mode):
            raise self._error("not a regular file")

    def _tighten(self, fd: int, st: os.stat_result) -> None:
        if not _POSIX or not st.st_mode & 0o077:
            return
        mode = stat.S_IMODE(st.st_mode)
        try:
            os.fchmod(fd, _FILE_MODE)
        except OSError as e:
            raise self._error(
                f"permissions {mode:#o} let other users read or change it, and they "
                f"could not be restricted to 0600 ({e.strerror})"
            ) from e
        log.warning(
            "%s had permissions %#o; restricted to 0600 (%s)",
            self._noun,
            mode,
            self._exposure,
            extra={"event": "store.permissions_tightened", "store": self.description},
        )

    def _read(self) -> Token | None:
        raw = self._read_bytes()
        return None if raw is None else self._parse(raw)

    def _read_bytes(self) -> bytes | None:
        """The file's bytes (up to one more than the size limit), or ``None`` if missing.

        Refuses symlinks and other non-files; restricts loose permissions.
        """
        try:
            st = os.lstat(self._path)
        except FileNotFoundError:
            return None
        self._check_kind(st)
        try:
            # O_NOFOLLOW closes the race with the lstat above; O_NONBLOCK keeps a FIFO
            # swapped in meanwhile from blocking the open (fstat then rejects it).
            flags = os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK | _O_CLOEXEC | _O_BINARY
            fd = os.open(self._path, flags)
        except FileNotFoundError:
            return None
        try:
            st = os.fstat(fd)
            self._check_kind(st)
            self._tighten(fd, st)
            chunks: list[bytes] = []
            size = 0
            while size <= _MAX_SIZE:
                chunk = os.read(fd, _MAX_SIZE + 1 - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        finally:
            os.close(fd)
        return b"".join(chunks)

    def _parse(self, raw: bytes) -> Token:
        # Each problem is raised outside its ``except`` block: ``from None`` only hides the
        # context, and JSONDecodeError.doc and UnicodeDecodeError.object hold the whole
        # file, tokens included, for any error tracker that walks ``__context__``.
        if len(raw) > _MAX_SIZE:
            raise self._corrupt(f"larger than {_MAX_SIZE} bytes")
        problem: str | None = None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            problem = "not UTF-8 text"
        if problem is not None:
            raise self._corrupt(problem)
        if not text.strip():
            raise self._corrupt("the file is empty")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            # The kind of error and its position, never the content: some messages quote a
            # character or two after a colon, so only the part before it is kept.
            kind = e.msg.split(":", 1)[0].removesuffix(" at").removesuffix(" starting")
            problem = (
                f"not valid JSON, perhaps truncated ({kind} at line {e.lineno} column {e.colno})"
            )
        except (ValueError, RecursionError) as e:
            problem = f"not valid JSON ({type(e).__name__})"
        if problem is not None:
            raise self._corrupt(problem)
        try:
            return Token.from_dict(data)
        except ValueError as e:
            # from_dict names fields, not values; scrubbing every string is belt and braces.
            problem = f"not a token ({safe_text(scrub(str(e), strings_in(data)))})"
        raise self._corrupt(problem)

    def _corrupt(self, reason: str) -> _CorruptFile:
        log.error(
            "token file is corrupt: %s",
            reason,
            extra={"event": "store.corrupt", "store": self.description},
        )
        return _CorruptFile(
            f"token file {self.description} is corrupt: {reason}. It was left as it is: "
            "inspect it, then remove it, call clear(), or save(token, "
            "overwrite_corrupt=True) to replace it",
            store=self.description,
        )

    def _write(self, token: Token, overwrite_corrupt: bool) -> None:
        self._ensure_parent()
        try:
            # Refuses symlinks and other non-files; restricts loose permissions.
            self._read()
        except _CorruptFile:
            if not overwrite_corrupt:
                raise
            log.warning(
                "replacing a corrupt token file, as the caller asked",
                extra={"event": "store.corrupt_overwritten", "store": self.description},
            )
        self._replace(
            (json.dumps(token.to_dict(), indent=2) + "\n").encode("ascii"),
            ensure_parent=False,
        )
        log.debug(
            "token saved",
            extra={"event": "store.saved", "store": self.description, "grant": token.fingerprint},
        )

    def _replace(self, data: bytes, *, ensure_parent: bool = True) -> None:
        """Replace the file with ``data`` atomically (0600 temp file, fsync, rename)."""
        if ensure_parent:
            self._ensure_parent()
        parent = self._path.parent
        tmp = parent / f".{self._path.name}.{secrets.token_hex(8)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC | _O_BINARY
        # Created 0600 (the umask can only take bits away); fchmod makes it exactly that
        # whatever the umask or a default ACL did, before a byte of the token is written.
        fd = os.open(tmp, flags, _FILE_MODE)
        try:
            try:
                if _POSIX:
                    os.fchmod(fd, _FILE_MODE)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self._path)
        except BaseException:
            with suppress(OSError):
                os.unlink(tmp)
            raise
        self._fsync_dir(parent)
        self._sweep_stale_temps()

    def _clear(self) -> None:
        try:
            st = os.lstat(self._path)
        except FileNotFoundError:
            return
        self._check_kind(st)
        try:
            os.unlink(self._path)
        except FileNotFoundError:
            return
        self._fsync_dir(self._path.parent)
        log.info(
            "%s removed", self._noun, extra={"event": "store.cleared", "store": self.description}
        )

    def _ensure_parent(self) -> None:
        """Create missing folders, each exactly 0700; existing ones are left alone."""
        missing: list[Path] = []
        folder = self._path.parent
        while not os.path.exists(folder):
            missing.append(folder)
            if folder.parent == folder:
                break
            folder = folder.parent
        for folder in reversed(missing):
            try:
                os.mkdir(folder, _DIR_MODE)  # never looser than 0700, whatever the umask
            except FileExistsError:
                continue  # another process made it meanwhile
            if _POSIX:
                os.chmod(folder, _DIR_MODE)  # and not tighter either

    @staticmethod
    def _fsync_dir(folder: Path) -> None:
        """Make a rename or unlink durable; not possible everywhere, so best effort."""
        if not _POSIX:
            return
        try:
            fd = os.open(folder, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
                raise
        finally:
            os.close(fd)

    def _sweep_stale_temps(self) -> None:
        """Remove temp files that a process killed mid-save left: each holds a token."""
        pattern = re.compile(rf"\.{re.escape(self._path.name)}\.[0-9a-f]{{16}}\.tmp")
        parent = self._path.parent
        cutoff = time.time() - _STALE_TEMP_AGE
        try:
            names = os.listdir(parent)
        except OSError:
            return
        for name in names:
            if not pattern.fullmatch(name):
                continue
            try:
                st = os.lstat(parent / name)
                if stat.S_ISREG(st.st_mode) and st.st_mtime < cutoff:
                    os.unlink(parent / name)
                    log.info(
                        "removed a temp file left by an interrupted save",
                        extra={"event": "store.stale_temp_removed", "store": self.description},
                    )
            except OSError:
                continue
