"""RedisTokenStore: one grant shared by a fleet of processes on many hosts.

Needs the ``redis`` extra: ``pip install 'netrex-async[redis]'``.
"""

from __future__ import annotations

try:
    import redis.asyncio as aioredis
    from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection
    from redis.exceptions import LockNotOwnedError, RedisError
except ImportError as e:  # pragma: no cover - tested in a subprocess without redis
    raise ImportError(
        "netrex_async.stores.redis needs redis-py, which is not installed: "
        "pip install 'netrex-async[redis]'"
    ) from e

import asyncio
import json
import math
import secrets
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

from .._errors import TokenStoreError
from .._lifecycle import AsyncClosing
from .._log import stores as log
from .._redact import safe_text, scrub
from .._stores._file import strings_in
from .._stores._locking import layered_lock
from .._token import Token

__all__ = ["RedisTokenStore"]

_T = TypeVar("_T")

#: How often a waiter retries ``SET NX``.
_POLL_INTERVAL = 0.05
#: How long :meth:`RedisTokenStore.aclose` waits for lock releases still in flight.
_CLOSE_GRACE = 5.0


def _seconds(name: str, value: float, *, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds")
    if not math.isfinite(value) or value < minimum:
        raise ValueError(f"{name} must be a finite number of at least {minimum:g} s")
    return float(value)


class RedisTokenStore(AsyncClosing):
    """A token in a Redis key, with a Redis lock shared by every process of a fleet.

    The value is the JSON of ``token.to_dict()`` under ``prefix + key``, written with one
    ``SET`` (atomic). The lock is redis-py's own :class:`redis.asyncio.lock.Lock` on
    ``prefix + key + ":lock"``: an owner token (only the holder can release it) and an
    expiry, ``lock_expiry``, after which Redis drops the lock even if its holder hung or
    died. The work done under the lock, a token refresh with its retries, must finish
    well within ``lock_expiry``; if it does not, another process may take the lock and
    refresh too, and the late release is logged (event ``store.lock_lost``) rather than
    raised. Tasks of one process queue on an :class:`asyncio.Lock` before they ask Redis.

    TLS and AUTH come with the URL, exactly as redis-py reads it:
    ``rediss://user:password@host:6380/0``. The password never appears in
    :attr:`description`, ``repr()``, logs or errors.

    A corrupt value (not JSON, not a token) makes :meth:`load` raise
    :class:`TokenStoreError` naming the key. :meth:`save` is a single ``SET`` and does
    not read first; a refresh always runs ``lock -> load -> refresh -> save``, so a
    corrupt value stops it at :meth:`load` before anything is written.

    Args:
        url_or_client: A ``redis://``, ``rediss://`` or ``unix://`` URL (the store creates
            the client and closes it in :meth:`aclose`), or a
            :class:`redis.asyncio.Redis` client, which is borrowed and never closed here.
        key: Names the grant; every process sharing the grant uses the same key.
        prefix: Put before ``key`` in Redis.
        lock_timeout: Seconds :meth:`lock` waits, counting the wait for other tasks of
            this process, before it raises :class:`TokenStoreError`; 0 tries once.
            Longer than ``lock_expiry`` by default, so a waiter outlasts the lock of a
            holder that died.
        lock_expiry: Seconds after which Redis drops a lock that was never released.
    """

    def __init__(
        self,
        url_or_client: str | aioredis.Redis,
        *,
        key: str,
        prefix: str = "netrex_async:",
        lock_timeout: float = 75.0,
        lock_expiry: float = 60.0,
    ) -> None:
        if not isinstance(key, str) or not key:
            raise ValueError("key must be a non-empty string naming the grant")
        if not isinstance(prefix, str):
            raise TypeError("prefix must be a string")
        self._key = prefix + key
        self._lock_key = self._key + ":lock"
        self._lock_timeout = _seconds("lock_timeout", lock_timeout, minimum=0.0)
        self._lock_expiry = _seconds("lock_expiry", lock_expiry, minimum=0.001)
        if isinstance(url_or_client, str):
            try:
                self._client: aioredis.Redis = aioredis.Redis.from_url(url_or_client)
            except ValueError:
                # redis-py's message may quote the URL, and the URL may hold a password.
                raise ValueError(
                    "not a Redis URL (expected redis://, rediss:// or unix://)"
                ) from None
            self._owns_client = True
        elif isinstance(url_or_client, aioredis.Redis):
            self._client = url_or_client
            self._owns_client = False
        else:
            raise TypeError(
                "url_or_client must be a Redis URL or a redis.asyncio.Redis client, "
                f"not {type(url_or_client).__name__}"
            )
        self._server, self._secrets = _describe(self._client)
        self._task_lock = asyncio.Lock()
        self._pending: set[asyncio.Task[None]] = set()
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"RedisTokenStore({self._server!r}, key={self._key!r}, owns_client={self._owns_client})"
        )

    @property
    def description(self) -> str:
        """How this store is named in errors and logs: server and key, no credentials."""
        return f"{self._server} key {self._key}"

    @property
    def key(self) -> str:
        """The Redis key holding the token (prefix included)."""
        return self._key

    @property
    def lock_key(self) -> str:
        """The Redis key of the lock."""
        return self._lock_key

    # -- the protocol ------------------------------------------------------------

    async def load(self) -> Token | None:
        """The stored token, or ``None`` if the key does not exist.

        Raises:
            TokenStoreError: Redis is unreachable or failed, or the value is not a token.
        """
        raw = await self._call("read", self._client.get, self._key)
        if raw is None:
            return None
        return self._parse(raw)

    async def save(self, token: Token) -> None:
        """Replace the stored token with one ``SET``.

        Raises:
            TokenStoreError: Redis is unreachable or failed.
        """
        if not isinstance(token, Token):
            raise TypeError(f"save() takes a Token, not {type(token).__name__}")
        await self._call("write", self._client.set, self._key, json.dumps(token.to_dict()))
        log.debug(
            "token saved",
            extra={"event": "store.saved", "store": self.description, "grant": token.fingerprint},
        )

    async def clear(self) -> None:
        """Delete the key, whatever it holds.

        Raises:
            TokenStoreError: Redis is unreachable or failed.
        """
        await self._call("delete", self._client.delete, self._key)
        log.info("token removed", extra={"event": "store.cleared", "store": self.description})

    def lock(self) -> AbstractAsyncContextManager[None]:
        """Exclusive across every process using this key on this Redis.

        Not re-entrant: a task that enters it twice waits for itself until the timeout.

        Raises:
            TokenStoreError: Not acquired within ``lock_timeout``, or Redis failed.
        """
        self._check_open()
        return layered_lock(
            self._task_lock,
            self._lock_timeout,
            self._acquire,
            self._release_owned,
            self._lock_timeout_error,
            message="Redis lock acquired",
            description=self.description,
        )

    async def _release_owned(self, owner: bytes) -> None:
        # Shielded: a second cancellation must not stop the release itself.
        await asyncio.shield(self._spawn_release(owner, after_cancel=False))

    async def aclose(self) -> None:
        """Close the client if this store created it; idempotent.

        Waits briefly for lock releases still in flight. A borrowed client stays open.
        """
        if self._closed:
            return
        self._closed = True
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=_CLOSE_GRACE)
        if self._owns_client:
            await self._client.aclose()

    # -- internals ---------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")

    async def _call(self, action: str, fn: Callable[..., Awaitable[_T]], *args: Any) -> _T:
        self._check_open()
        try:
            return await fn(*args)
        except (RedisError, OSError) as e:
            raise self._redis_error(action, e) from e

    def _redis_error(self, action: str, e: BaseException) -> TokenStoreError:
        detail = safe_text(scrub(str(e), self._secrets))
        log.warning(
            "Redis %s failed: %s",
            action,
            type(e).__name__,
            extra={"event": "store.error", "store": self.description},
        )
        return TokenStoreError(
            f"cannot {action} token in Redis ({self.description}): {type(e).__name__}: {detail}",
            store=self.description,
        )

    def _parse(self, raw: bytes | str) -> Token:
        # Raised outside the ``except`` blocks: ``from None`` only hides the context, and
        # JSONDecodeError.doc (UnicodeDecodeError.object) holds the whole value, tokens
        # included, for any error tracker that walks ``__context__``.
        valid = True
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
            data = json.loads(text)
        except (UnicodeDecodeError, ValueError, RecursionError):
            valid = False
        if not valid:
            raise self._corrupt("not valid JSON")
        try:
            return Token.from_dict(data)
        except ValueError as e:
            reason = safe_text(scrub(str(e), strings_in(data)))
        raise self._corrupt(f"not a token ({reason})")

    def _corrupt(self, reason: str) -> TokenStoreError:
        log.error(
            "Redis key holds no token: %s",
            reason,
            extra={"event": "store.corrupt", "store": self.description},
        )
        return TokenStoreError(
            f"token in Redis {self.description} is corrupt: {reason}. It was left as it "
            "is: inspect it, then delete it or call clear()",
            store=self.description,
        )

    def _lock_timeout_error(self) -> TokenStoreError:
        log.warning(
            "Redis lock not acquired in time",
            extra={"event": "store.lock_timeout", "store": self.description},
        )
        return TokenStoreError(
            f"lock on token in Redis {self.description} (lock key {self._lock_key}) not "
            f"acquired within {self._lock_timeout:g} s: another task or process holds it",
            store=self.description,
        )

    def _new_lock(self) -> Any:
        # A fresh Lock per acquisition, so no task ever sees another's owner token.
        return self._client.lock(
            self._lock_key,
            timeout=self._lock_expiry,
            sleep=_POLL_INTERVAL,
            blocking=True,
            thread_local=False,
        )

    async def _acquire(self, wait: float) -> bytes:
        """Take the Redis lock; returns the owner token that releases it."""
        owner = secrets.token_hex(16).encode("ascii")
        rlock = self._new_lock()
        try:
            acquired = await rlock.acquire(blocking_timeout=wait, token=owner)
        except asyncio.CancelledError:
            # The SET NX may have reached Redis: release it if it did (only our token can).
            self._spawn_release(owner, after_cancel=True)
            raise
        except (RedisError, OSError) as e:
            self._spawn_release(owner, after_cancel=True)
            raise self._redis_error("lock", e) from e
        if not acquired:
            raise self._lock_timeout_error()
        return owner

    def _spawn_release(self, owner: bytes, *, after_cancel: bool) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(self._release(owner, after_cancel))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return task

    async def _release(self, owner: bytes, after_cancel: bool) -> None:
        """Release the lock if ``owner`` still holds it; never raises."""
        try:
            await self._new_lock().do_release(owner)
        except LockNotOwnedError:
            if after_cancel:
                return  # the cancelled SET NX never took the lock: nothing to do
            log.warning(
                "the Redis lock expired before it was released: the work under it took "
                "longer than lock_expiry, and another process may have run it too",
                extra={"event": "store.lock_lost", "store": self.description},
            )
        except (RedisError, OSError) as e:
            log.warning(
                "releasing the Redis lock failed (%s); it expires by itself",
                type(e).__name__,
                extra={"event": "store.unlock_failed", "store": self.description},
            )


def _describe(client: aioredis.Redis) -> tuple[str, list[str]]:
    """A credential-free name for the server, and the secrets to scrub from messages.

    Taken from what redis-py will connect to, not from the URL text, so that no
    spelling of a URL can smuggle a password into a description.
    """
    pool = getattr(client, "connection_pool", None)
    kwargs: dict[str, Any] = dict(getattr(pool, "connection_kwargs", None) or {})
    cls = getattr(pool, "connection_class", None)
    secrets_ = [str(kwargs[k]) for k in ("password", "username") if kwargs.get(k)]
    db = kwargs.get("db", 0)
    if isinstance(cls, type) and issubclass(cls, UnixDomainSocketConnection):
        server = f"unix://{kwargs.get('path', '?')}?db={db}"
    elif "host" in kwargs:
        scheme = "rediss" if isinstance(cls, type) and issubclass(cls, SSLConnection) else "redis"
        server = f"{scheme}://{kwargs['host']}:{kwargs.get('port', 6379)}/{db}"
    else:
        server = "redis"
    return safe_text(scrub(server, secrets_)), secrets_
