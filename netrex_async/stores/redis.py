"""RedisTokenStore: one grant shared by a fleet of processes on many hosts.

Needs the ``redis`` extra: ``pip install 'netrex-async[redis]'`` (in a clone of the
repository: ``pip install -e '.[redis]'``).
"""

from __future__ import annotations

from .._errors import ClosedError, ExtraRequired, TokenStoreError, install_hint

try:
    import redis.asyncio as aioredis
    from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection
    from redis.asyncio.lock import Lock
    from redis.asyncio.retry import Retry
    from redis.asyncio.sentinel import (
        Sentinel,
        SentinelConnectionPool,
        SentinelManagedConnection,
    )
    from redis.backoff import ExponentialWithJitterBackoff
    from redis.exceptions import LockNotOwnedError, RedisError
except ImportError as e:  # pragma: no cover - tested in a subprocess without redis
    raise ExtraRequired(
        "netrex_async.stores.redis needs redis-py, which is not installed: "
        + install_hint("redis"),
        extra="redis",
        name="redis",
    ) from e

import asyncio
import json
import logging
import math
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from .._checkpoints import (
    STANDBY_ATTEMPT,
    Busy,
    CheckpointLost,
    encode_checkpoint,
    parse_checkpoint,
    standby,
)
from .._lifecycle import AsyncClosing
from .._log import stores as log
from .._redact import safe_text, scrub
from .._stores._file import strings_in
from .._stores._locking import layered_lock
from .._token import Token

__all__ = ["RedisCheckpoint", "RedisTokenStore"]

_T = TypeVar("_T")

#: How often a waiter retries ``SET NX``.
_POLL_INTERVAL = 0.05
#: How long :meth:`RedisTokenStore.aclose` waits for lock releases, then for the client.
_CLOSE_GRACE = 2.0
#: The back-off between attempts of one command: ``min(cap, base * 2**n)``, jittered.
_BACKOFF_BASE = 0.1
_BACKOFF_CAP = 1.0
#: The port of a sentinel named without one.
_SENTINEL_PORT = 26379
#: Query parameters a ``redis+sentinel://`` URL may carry.
_SENTINEL_QUERY = frozenset({"sentinel_username", "sentinel_password"})


def _seconds(name: str, value: float, *, minimum: float, exclusive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds")
    if not math.isfinite(value) or value < minimum or (exclusive and value == minimum):
        bound = "more than" if exclusive else "at least"
        raise ValueError(f"{name} must be a finite number of {bound} {minimum:g} s")
    return float(value)


def _backoff_total(retries: int) -> float:
    """The longest the back-offs between ``retries + 1`` attempts can add up to."""
    return sum(min(_BACKOFF_CAP, _BACKOFF_BASE * 2.0**n) for n in range(1, retries + 1))


class _LeaseLost(Exception):
    """Internal: the lease of a held lock is gone (the reason is the message)."""


class _Lock(Lock):
    """redis-py's lock, remembering when its last ``SET NX`` was sent.

    The lock's expiry counts from when Redis ran the ``SET``, which is no earlier than
    when it was sent: the send time is a safe start for the lease.
    """

    sent_at: float = 0.0

    async def do_acquire(self, token: str | bytes) -> bool:
        self.sent_at = asyncio.get_running_loop().time()
        return await super().do_acquire(token)


class _SentinelConnection(SentinelManagedConnection):
    """redis-py's Sentinel-managed connection, asking the sentinels on every (re)connect.

    redis-py (up to 8.1 at least, redis/redis-py#3874) asks the sentinels for the master
    only when a pooled connection is first connected: a retry of a command reconnects to
    the address it had, so after a failover every retry goes to the demoted master and
    gets ``READONLY`` again (or a refused connection). Here the master's address is looked
    up in every socket connect instead.
    """

    async def _connect(self) -> None:
        if self.connection_pool.is_master:
            self.host, self.port = await self.connection_pool.get_master_address()
        await super()._connect()  # type: ignore[no-untyped-call]

    async def _connect_retry(self) -> None:
        if self._reader or not self.connection_pool.is_master:
            await super()._connect_retry()  # type: ignore[no-untyped-call]
            return
        await self.connect_check_health(
            check_health=self.connection_pool.check_connection, retry_socket_connect=False
        )


class _SentinelSSLConnection(_SentinelConnection, SSLConnection):
    """The same over TLS."""


class _Hold:
    """One acquisition of the Redis lock: the owner token and the state of its lease."""

    __slots__ = ("lock", "lost", "owner", "renewer", "valid_until")

    def __init__(self, lock: _Lock, owner: bytes, valid_until: float) -> None:
        self.lock = lock
        self.owner = owner
        #: Loop time until which the lock is surely still this holder's.
        self.valid_until = valid_until
        #: Why the lease was lost, once it was.
        self.lost: str | None = None
        self.renewer: asyncio.Task[None] | None = None


class RedisTokenStore(AsyncClosing):
    """A token in a Redis key, with a Redis lock shared by every process of a fleet.

    The value is the JSON of ``token.to_dict()`` under ``prefix + key``, written with one
    ``SET`` (atomic). The lock is redis-py's :class:`redis.asyncio.lock.Lock` on
    ``prefix + key + ":lock"``: an owner token (only the holder can release it) and an
    expiry, the :attr:`lease` (``lock_expiry``), after which Redis drops the lock of a
    holder that died or hangs. Tasks of one process queue on an :class:`asyncio.Lock`
    before they ask Redis.

    **Leases.** While a lock is held, a background task renews it every ``lease / 3``
    (``PEXPIRE`` if this holder's owner token is still the lock's value). The lease is
    *lost* when a renewal finds the lock gone or owned by someone else, or cannot reach
    Redis before the lease runs out (counted from when the last successful renewal was
    sent). :meth:`check_lease` verifies and renews the lease in one round trip and raises
    if it is lost: the token manager calls it right before it presents a refresh token,
    so a refresh whose lock may be in other hands never sends it.

    **Bounds.** A client made from a URL gets ``socket_timeout``, ``connect_timeout``
    (``socket_connect_timeout``), ``health_check_interval`` and a redis-py
    :class:`~redis.asyncio.retry.Retry` of ``retries`` more attempts after a
    ``ConnectionError`` or ``TimeoutError`` with jittered exponential back-off (0.2, 0.4,
    0.8 s..., at most 1 s each), so that the first command on a pooled connection gone
    stale (Redis restarted, a failover) is retried transparently. A value given in the
    URL's query (``?socket_timeout=2``) wins over the argument. Every operation
    (:meth:`load`, :meth:`save`, :meth:`clear`, :meth:`check_lease`, a renewal, a release)
    ends within :attr:`operation_timeout`, by default::

        (retries + 1) * (connect_timeout + socket_timeout) + back-offs
        = 4 * (5 + 5) + 1.4 = 41.4 s with the defaults

    and is cut off there (:class:`TokenStoreError`) whatever the client does; acquiring
    the lock ends within ``lock_timeout + operation_timeout``; :meth:`aclose` returns
    within 6 s (three grace periods of 2 s) even when Redis hangs. Timeouts given in
    the URL count in ``operation_timeout``. A client you pass in keeps its own settings;
    the cut-offs above, computed from the arguments, still hold.

    **Redis Sentinel.** A URL of the form::

        redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service[/db]

    names the sentinels (port 26379 by default; IPv6 hosts in brackets), the service
    (master) name and the database (0 by default). The credentials, percent-encoded,
    authenticate to the master; sentinels that need a password of their own take it
    from ``?sentinel_password=...`` (and ``sentinel_username=``). The timeouts and retries
    apply to the sentinels and the master alike; TLS is not in the URL form (build a
    :class:`~redis.asyncio.sentinel.Sentinel` with ``ssl=True`` and pass it). A given
    ``Sentinel`` needs ``service_name=``; the store makes (and closes) a master client
    from it with :meth:`~redis.asyncio.sentinel.Sentinel.master_for`, adding the
    timeouts and retry above where the ``Sentinel``'s own connection settings leave them
    out, and leaves the ``Sentinel`` open. A master client made with ``master_for`` can
    be passed as a client. After a failover, the next command finds the new master:
    a connection to a demoted master gets ``READONLY``, which redis-py turns into a
    ``ConnectionError`` that the retry takes to the master the sentinels name now.

    TLS and AUTH come with the URL, exactly as redis-py reads it:
    ``rediss://user:password@host:6380/0``. The password never appears in
    :attr:`description`, ``repr()``, logs or errors. A Redis that refuses writes (a
    replica: ``READONLY``; ``min-replicas-to-write`` unmet: ``NOREPLICAS``) makes
    :meth:`save` raise :class:`TokenStoreError`.

    A corrupt value (not JSON, not a token) makes :meth:`load` raise
    :class:`TokenStoreError` naming the key. :meth:`save` is a single ``SET`` and does
    not read first; a refresh always runs ``lock -> load -> refresh -> save``, so a
    corrupt value stops it at :meth:`load` before anything is written.

    Args:
        url_or_client: A ``redis://``, ``rediss://``, ``unix://`` or ``redis+sentinel://``
            URL (the store creates the client and closes it in :meth:`aclose`); a
            :class:`redis.asyncio.Redis` client, which is borrowed and never closed
            here; or a :class:`redis.asyncio.sentinel.Sentinel` (with ``service_name``),
            also borrowed.
        key: Names the grant; every process sharing the grant uses the same key.
        prefix: Put before ``key`` in Redis.
        lock_timeout: Seconds :meth:`lock` waits, counting the wait for other tasks of
            this process, before it raises :class:`TokenStoreError`; 0 tries once.
            Longer than ``lock_expiry`` by default, so a waiter outlasts the lock of a
            holder that died.
        lock_expiry: The lease: seconds after which Redis drops a lock that was neither
            renewed nor released.
        socket_timeout: Seconds a command may wait for its answer (URL clients).
        connect_timeout: Seconds a connection may take to open (URL clients).
        health_check_interval: A connection idle this many seconds is checked with
            ``PING`` before use (URL clients); 0 turns it off.
        retries: More attempts of a command after a connection error or timeout (URL
            clients).
        operation_timeout: Overrides the computed cut-off of every operation.
        service_name: The service (master) name, with a ``Sentinel`` only.
        wait_replicas: After each ``SET``, :meth:`save` waits (``WAIT``) until this many
            replicas have the write, and raises :class:`TokenStoreError` if fewer do
            within ``wait_timeout``: a saved token then survives a failover to one of
            them. 0 (the default) does not wait: asynchronous replication, as Redis does
            by itself.
        wait_timeout: Seconds :meth:`save` waits for the replicas.

    Raises:
        ValueError: An option is out of range, or the URL is not one of the above (the
            message never quotes the URL).
        TypeError: ``url_or_client`` or an option has the wrong type.
    """

    #: What the value is called in errors (a subclass may keep something else).
    _noun = "token"

    def __init__(
        self,
        url_or_client: str | aioredis.Redis | Sentinel,
        *,
        key: str,
        prefix: str = "netrex_async:",
        lock_timeout: float = 75.0,
        lock_expiry: float = 60.0,
        socket_timeout: float = 5.0,
        connect_timeout: float = 5.0,
        health_check_interval: float = 15.0,
        retries: int = 3,
        operation_timeout: float | None = None,
        service_name: str | None = None,
        wait_replicas: int = 0,
        wait_timeout: float = 1.0,
    ) -> None:
        if not isinstance(key, str) or not key:
            raise ValueError("key must be a non-empty string naming the grant")
        if not isinstance(prefix, str):
            raise TypeError("prefix must be a string")
        self._key = prefix + key
        self._lock_key = self._key + ":lock"
        self._lock_timeout = _seconds("lock_timeout", lock_timeout, minimum=0.0)
        self._lock_expiry = _seconds("lock_expiry", lock_expiry, minimum=0.001)
        socket_timeout = _seconds("socket_timeout", socket_timeout, minimum=0, exclusive=True)
        connect_timeout = _seconds("connect_timeout", connect_timeout, minimum=0, exclusive=True)
        health = _seconds("health_check_interval", health_check_interval, minimum=0.0)
        if isinstance(retries, bool) or not isinstance(retries, int):
            raise TypeError("retries must be an int")
        if retries < 0:
            raise ValueError("retries must be 0 or more")
        if isinstance(wait_replicas, bool) or not isinstance(wait_replicas, int):
            raise TypeError("wait_replicas must be an int")
        if wait_replicas < 0:
            raise ValueError("wait_replicas must be 0 or more")
        self._wait_replicas = wait_replicas
        self._wait_timeout = _seconds("wait_timeout", wait_timeout, minimum=0.001)
        if operation_timeout is not None:
            operation_timeout = _seconds(
                "operation_timeout", operation_timeout, minimum=0, exclusive=True
            )
        settings: dict[str, Any] = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": connect_timeout,
            "health_check_interval": health,
            "retry": Retry(ExponentialWithJitterBackoff(_BACKOFF_BASE, _BACKOFF_CAP), retries),
        }
        if service_name is not None and not isinstance(url_or_client, Sentinel):
            raise TypeError("service_name= goes with a redis.asyncio.sentinel.Sentinel only")
        self._sentinel: Sentinel | None = None
        if isinstance(url_or_client, str):
            self._client = self._from_url(url_or_client, settings)
            self._owns_client = True
        elif isinstance(url_or_client, Sentinel):
            if not isinstance(service_name, str) or not service_name:
                raise TypeError("a Sentinel needs service_name= (the name of the master)")
            own = url_or_client.connection_kwargs
            extra = {k: v for k, v in settings.items() if own.get(k) is None}
            if "connection_class" not in own:
                ssl = bool(own.get("ssl"))
                extra["connection_class"] = _SentinelSSLConnection if ssl else _SentinelConnection
            self._client = url_or_client.master_for(service_name, **extra)
            self._owns_client = True  # made here; the Sentinel itself stays the caller's
        elif isinstance(url_or_client, aioredis.Redis):
            self._client = url_or_client
            self._owns_client = False
        else:
            raise TypeError(
                "url_or_client must be a Redis URL, a redis.asyncio.Redis client or a "
                f"redis.asyncio.sentinel.Sentinel, not {type(url_or_client).__name__}"
            )
        if operation_timeout is None:
            # What the client really got: a URL's query may have set other timeouts.
            given = self._client.connection_pool.connection_kwargs if self._owns_client else {}
            socket_timeout = given.get("socket_timeout") or socket_timeout
            connect_timeout = given.get("socket_connect_timeout") or connect_timeout
            attempt = connect_timeout + socket_timeout
            operation_timeout = (retries + 1) * attempt + _backoff_total(retries)
        self._op_timeout: float = operation_timeout
        self._server, self._secrets = _describe(self._client)
        self._task_lock = asyncio.Lock()
        self._pending: set[asyncio.Task[None]] = set()
        #: The cut-off scopes of operations in flight, so that aclose() can end them.
        self._scopes: set[asyncio.Timeout] = set()
        self._hold: _Hold | None = None
        self._closed = False

    def _from_url(self, url: str, settings: dict[str, Any]) -> aioredis.Redis:
        scheme = url.partition("://")[0].lower()
        if scheme == "redis+sentinel":
            sentinels, service, db, auth, sentinel_auth = _parse_sentinel_url(url)
            self._sentinel = Sentinel(  # type: ignore[no-untyped-call]
                sentinels,
                sentinel_kwargs={**settings, **sentinel_auth},
                **settings,
                **auth,
                db=db,
            )
            master: aioredis.Redis = self._sentinel.master_for(
                service, connection_class=_SentinelConnection
            )
            return master
        try:
            return aioredis.Redis.from_url(url, **settings)
        except (ValueError, TypeError):
            # redis-py's message may quote the URL, and the URL may hold a password.
            raise ValueError(
                "not a Redis URL (expected redis://, rediss://, unix:// or "
                "redis+sentinel://, with valid options)"
            ) from None

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

    @property
    def lease(self) -> float | None:
        """Seconds a held lock lasts if it is not renewed (``lock_expiry``)."""
        return self._lock_expiry

    @property
    def lock_timeout(self) -> float:
        """Seconds :meth:`lock` waits for the lock before it raises."""
        return self._lock_timeout

    @property
    def operation_timeout(self) -> float:
        """Seconds after which any one operation is cut off with :class:`TokenStoreError`."""
        return self._op_timeout

    # -- the protocol ------------------------------------------------------------

    async def load(self) -> Token | None:
        """The stored token, or ``None`` if the key does not exist.

        Raises:
            TokenStoreError: Redis is unreachable, failed or did not answer in time, or
                the value is not a token.
            ClosedError: The store was closed before or during the call.
        """
        raw = await self._call("read", self._client.get, self._key)
        if raw is None:
            return None
        return self._parse(raw)

    async def save(self, token: Token) -> None:
        """Replace the stored token with one ``SET`` (then ``WAIT``, with ``wait_replicas``).

        Ends within ``operation_timeout`` (``+ wait_timeout`` with ``wait_replicas``;
        keep ``wait_timeout`` below ``socket_timeout``). A save that raised may still
        have been written; saving again is harmless.

        Raises:
            TokenStoreError: Redis is unreachable, failed, refused the write (a replica,
                ``NOREPLICAS``) or did not answer in time, or fewer than
                ``wait_replicas`` replicas acknowledged the write in time.
            ClosedError: The store was closed before or during the call.
        """
        if not isinstance(token, Token):
            raise TypeError(f"save() takes a Token, not {type(token).__name__}")
        value = json.dumps(token.to_dict())
        wanted = self._wait_replicas
        if not wanted:
            await self._call("write", self._client.set, self._key, value)
        else:
            budget = self._op_timeout + self._wait_timeout
            acked = await self._call("write", self._set_replicated, value, budget=budget)
            if acked < wanted:
                raise self._failure(
                    "store.unreplicated",
                    f"token written, but {acked} of {wanted} replicas acknowledged it",
                    f"token written to Redis {self.description}, but only {acked} of the "
                    f"{wanted} replicas required (wait_replicas) had it within "
                    f"{self._wait_timeout:g} s: a failover now could lose it",
                )
        log.debug(
            "token saved",
            extra={"event": "store.saved", "store": self.description, "grant": token.fingerprint},
        )

    async def _set_replicated(self, value: str) -> int:
        """``SET`` then ``WAIT`` on one connection, in one round trip; the replicas' count.

        One pipeline, so that ``WAIT`` counts this ``SET``: on another connection (or a
        new one, after a retry) it would count nothing and answer at once.
        """
        ms = max(1, round(self._wait_timeout * 1000))
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.set(self._key, value)
            pipe.wait(self._wait_replicas, ms)
            results = await pipe.execute()
        return int(results[1])

    async def clear(self) -> None:
        """Delete the key, whatever it holds.

        Raises:
            TokenStoreError: Redis is unreachable, failed or did not answer in time.
            ClosedError: The store was closed before or during the call.
        """
        await self._call("delete", self._client.delete, self._key)
        log.info("token removed", extra={"event": "store.cleared", "store": self.description})

    def lock(self) -> AbstractAsyncContextManager[None]:
        """Exclusive across every process using this key on this Redis, renewed while held.

        Not re-entrant: a task that enters it twice waits for itself until the timeout.

        Raises:
            TokenStoreError: Not acquired within ``lock_timeout``, or Redis failed.
            ClosedError: The store is closed.
        """
        self._check_open()
        return layered_lock(
            self._task_lock,
            self._lock_timeout,
            self._acquire,
            self._release_held,
            self._lock_timeout_error,
            message="Redis lock acquired",
            description=self.description,
        )

    async def check_lease(self) -> None:
        """Make sure this process still holds the lock, and renew it; one round trip.

        Call it inside :meth:`lock`, right before doing what only the lock's holder may
        do (presenting a refresh token).

        Raises:
            TokenStoreError: The lease was lost (the lock expired, was deleted or is
                another owner's; a renewal could not reach Redis in time), it cannot be
                confirmed now, or no lock is held.
            ClosedError: The store is closed.
        """
        self._check_open()
        hold = self._hold
        if hold is None:
            raise TokenStoreError(
                f"check_lease() on {self.description} outside lock(): no lock is held",
                store=self.description,
            )
        try:
            await self._renew_once(hold)
        except _LeaseLost as e:
            raise self._lost_error(str(e)) from None

    async def aclose(self) -> None:
        """Close the client if this store created it; idempotent.

        Operations still in flight end with :class:`ClosedError`; lock releases in flight
        get a short grace. Returns within a few seconds even when Redis hangs. A
        borrowed client or ``Sentinel`` stays open.
        """
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        for scope in list(self._scopes):
            if not scope.expired():  # one that is expiring already ends by itself
                scope.reschedule(loop.time())
        hold = self._hold
        if hold is not None and hold.renewer is not None:
            hold.renewer.cancel()
        if self._pending:
            _, late = await asyncio.wait(set(self._pending), timeout=_CLOSE_GRACE)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=_CLOSE_GRACE)
        if self._owns_client:
            try:
                async with asyncio.timeout(_CLOSE_GRACE):
                    await self._client.aclose()
                    if self._sentinel is not None:
                        for client in self._sentinel.sentinels:
                            await client.aclose()
            except (TimeoutError, RedisError, OSError) as e:
                log.warning(
                    "closing the Redis client failed (%s)",
                    type(e).__name__,
                    extra={"event": "store.close_failed", "store": self.description},
                )

    # -- internals ---------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"{self!r} is closed")

    @asynccontextmanager
    async def _bounded(self, action: str, budget: float | None = None) -> AsyncIterator[None]:
        """Cut what runs inside off after ``budget`` seconds (the operation timeout)."""
        self._check_open()
        seconds = self._op_timeout if budget is None else budget
        timer = asyncio.timeout(seconds)
        self._scopes.add(timer)
        try:
            async with timer:
                yield
        except TimeoutError as e:
            if self._closed:
                raise ClosedError(f"{self!r} was closed during the call") from None
            if not timer.expired():
                raise  # not ours
            raise self._no_answer(action, seconds) from e
        finally:
            self._scopes.discard(timer)

    async def _call(
        self,
        action: str,
        fn: Callable[..., Awaitable[_T]],
        *args: Any,
        budget: float | None = None,
    ) -> _T:
        try:
            async with self._bounded(action, budget):
                return await fn(*args)
        except (RedisError, OSError) as e:
            if self._closed:
                raise ClosedError(f"{self!r} was closed during the call") from None
            raise self._redis_error(action, e) from e

    def _failure(
        self, event: str, logged: str, message: str, *, level: int = logging.WARNING
    ) -> TokenStoreError:
        """Log ``logged`` (no secret in it) and return the error to raise."""
        log.log(level, "%s", logged, extra={"event": event, "store": self.description})
        return TokenStoreError(message, store=self.description)

    def _no_answer(self, action: str, seconds: float) -> TokenStoreError:
        return self._failure(
            "store.error",
            f"Redis {action}: no answer within {seconds:.3g} s",
            f"cannot {action} {self._noun} in Redis ({self.description}): no answer within "
            f"{seconds:.3g} s",
        )

    def _redis_error(self, action: str, e: BaseException) -> TokenStoreError:
        detail = safe_text(scrub(str(e), self._secrets))
        return self._failure(
            "store.error",
            f"Redis {action} failed: {type(e).__name__}",
            f"cannot {action} {self._noun} in Redis ({self.description}): "
            f"{type(e).__name__}: {detail}",
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
        return self._failure(
            "store.corrupt",
            f"Redis key holds no token: {reason}",
            f"token in Redis {self.description} is corrupt: {reason}. It was left as it "
            "is: inspect it, then delete it or call clear()",
            level=logging.ERROR,
        )

    def _lock_timeout_error(self) -> TokenStoreError:
        return self._failure(
            "store.lock_timeout",
            "Redis lock not acquired in time",
            f"lock on {self._noun} in Redis {self.description} (lock key {self._lock_key}) not "
            f"acquired within {self._lock_timeout:g} s: another task or process holds it",
        )

    def _lost_error(self, reason: str) -> TokenStoreError:
        return TokenStoreError(
            f"the lock on {self._noun} in Redis {self.description} (lock key {self._lock_key}) "
            f"was lost: {reason}; not refreshing",
            store=self.description,
        )

    def _new_lock(self) -> _Lock:
        # A fresh Lock per acquisition, so no task ever sees another's owner token.
        lock = self._client.lock(
            self._lock_key,
            timeout=self._lock_expiry,
            sleep=_POLL_INTERVAL,
            blocking=True,
            thread_local=False,
            lock_class=_Lock,
        )
        assert isinstance(lock, _Lock)
        return lock

    async def _acquire(self, wait: float) -> _Hold:
        """Take the Redis lock and start renewing it."""
        owner = secrets.token_hex(16).encode("ascii")
        rlock = self._new_lock()
        try:
            async with self._bounded("lock", wait + self._op_timeout):
                acquired = await rlock.acquire(blocking_timeout=wait, token=owner)
        except BaseException as e:
            # The SET NX may have reached Redis: release it if it did (only our token can).
            # Once the store is closed, the lock expires by itself instead.
            if not self._closed:
                self._spawn_release(owner, after_cancel=True)
            if isinstance(e, RedisError | OSError):
                if self._closed:
                    raise ClosedError(f"{self!r} was closed during the call") from None
                raise self._redis_error("lock", e) from e
            raise
        if not acquired:
            raise self._lock_timeout_error()
        hold = _Hold(rlock, owner, rlock.sent_at + self._lock_expiry)
        hold.renewer = asyncio.get_running_loop().create_task(self._renew_loop(hold))
        self._hold = hold
        return hold

    async def _renew_once(self, hold: _Hold) -> None:
        """Renew the lease of ``hold`` once.

        Raises:
            _LeaseLost: It is lost (now or before).
            TokenStoreError: Redis could not confirm it, but it may still be held.
        """
        if hold.lost is not None:
            raise _LeaseLost(hold.lost)
        loop = asyncio.get_running_loop()
        sent = loop.time()
        left = hold.valid_until - sent
        if left <= 0:
            self._lose(hold, "it ran out before it could be renewed")
        try:
            async with self._bounded("renew lock on", min(left, self._op_timeout)):
                await hold.lock.reacquire()
        except LockNotOwnedError:
            self._lose(hold, "the lock key is gone or holds another owner's token")
        except (TokenStoreError, RedisError, OSError) as e:
            if loop.time() >= hold.valid_until:
                why = f"Redis could not be reached before it ran out ({type(e).__name__})"
                self._lose(hold, why)
            if isinstance(e, TokenStoreError):
                raise
            raise self._redis_error("renew lock on", e) from e
        hold.valid_until = max(hold.valid_until, sent + self._lock_expiry)

    def _lose(self, hold: _Hold, reason: str) -> None:
        if hold.lost is None:
            hold.lost = reason
            log.warning(
                "the Redis lock's lease was lost: %s",
                reason,
                extra={"event": "store.lease_lost", "store": self.description},
            )
        raise _LeaseLost(hold.lost)

    async def _renew_loop(self, hold: _Hold) -> None:
        """Renew every ``lease / 3`` until released, closed or lost."""
        interval = self._lock_expiry / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await self._renew_once(hold)
            except _LeaseLost:
                return
            except (TokenStoreError, ClosedError):
                if self._closed:
                    return
                # Logged by the error path; the next tick tries again while time is left.

    async def _release_held(self, hold: _Hold) -> None:
        if self._hold is hold:
            self._hold = None
        if hold.renewer is not None:
            hold.renewer.cancel()
        if self._closed:
            # The client is closed (or closing): the lock expires by itself.
            log.debug(
                "Redis lock left to expire: the store was closed while it was held",
                extra={"event": "store.unlock_skipped", "store": self.description},
            )
            return
        # Shielded: a second cancellation must not stop the release itself.
        await asyncio.shield(self._spawn_release(hold.owner, after_cancel=False))

    def _spawn_release(self, owner: bytes, *, after_cancel: bool) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(self._release(owner, after_cancel))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return task

    async def _release(self, owner: bytes, after_cancel: bool) -> None:
        """Release the lock if ``owner`` still holds it; never raises."""
        try:
            async with asyncio.timeout(self._op_timeout):
                await self._new_lock().do_release(owner)
        except LockNotOwnedError:
            if after_cancel:
                return  # the cancelled SET NX never took the lock: nothing to do
            log.warning(
                "the Redis lock expired or was taken before it was released: the work "
                "under it outlived its lease, and another process may have run it too",
                extra={"event": "store.lock_lost", "store": self.description},
            )
        except (TimeoutError, RedisError, OSError) as e:
            log.warning(
                "releasing the Redis lock failed (%s); it expires by itself",
                type(e).__name__,
                extra={"event": "store.unlock_failed", "store": self.description},
            )


#: Sets the checkpoint only while the lock key holds this holder's owner token: a
#: collector whose lease ran out (and whose lock another collector may hold) never writes.
_FENCED_SET = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('SET', KEYS[2], ARGV[2])
    return 1
end
return 0
"""


class _CheckpointRedis(RedisTokenStore):
    """RedisTokenStore's client handling, bounds and leases, named as a checkpoint."""

    _noun = "checkpoint"

    def _lock_timeout_error(self) -> TokenStoreError:
        return Busy(
            f"checkpoint in Redis {self.description} is locked by another collector",
            store=self.description,
        )

    def _lost_error(self, reason: str) -> CheckpointLost:
        log.warning(
            "the checkpoint's lock was lost (%s); not delivering or committing",
            reason,
            extra={"event": "checkpoint.lost", "store": self.description},
        )
        return CheckpointLost(
            f"the lock on checkpoint in Redis {self.description} (lock key "
            f"{self.lock_key}) was lost: {reason}; another collector may have taken over, "
            "so nothing was committed and no more batches are delivered",
            store=self.description,
        )


class RedisCheckpoint(AsyncClosing):
    """A collector's cursor in a Redis key, with a leased lock shared by a fleet.

    Built on :class:`RedisTokenStore` (the same URLs, clients, Sentinel support, socket
    timeouts, operation cut-offs and password redaction): the value is
    ``{"version": 1, "cursor": ...}`` under ``prefix + key``; the lock is on
    ``prefix + key + ":lock"``, held for as long as a collector runs, its lease
    (``lock_expiry``) renewed every ``lease / 3``. A second collector waits as a standby
    (trying again through Redis outages) and takes over at most a lease after the active
    one died or hung. Every commit is fenced: one ``EVAL`` sets the cursor only while the
    lock still holds this holder's owner token, so a collector whose lease was lost never
    writes (:class:`CheckpointLost`, and the collector stops); and before each batch is
    handed to the caller, :meth:`check_lease` confirms (and renews) the lease in one round
    trip, so a collector that was paused or cut off from Redis longer than the lease does
    not deliver a batch the collector that took over may be delivering too. A corrupt value is a
    :class:`TokenStoreError` naming the key, never a restart from the beginning.

    Args:
        url_or_client: As for :class:`RedisTokenStore`.
        key: Names the stream; every collector of it uses the same key.
        prefix: Put before ``key`` in Redis.
        lock_expiry: The lease, in seconds: how long a dead collector's lock outlives it.
        **options: More :class:`RedisTokenStore` settings (``socket_timeout``,
            ``connect_timeout``, ``retries``, ``operation_timeout``, ``service_name``...).

    Raises:
        ValueError: An option is out of range, or the URL is not a Redis URL.
        TypeError: ``url_or_client`` or an option has the wrong type.
    """

    def __init__(
        self,
        url_or_client: str | aioredis.Redis | Sentinel,
        *,
        key: str,
        prefix: str = "netrex_async:checkpoint:",
        lock_expiry: float = 15.0,
        **options: Any,
    ) -> None:
        options.setdefault("lock_timeout", STANDBY_ATTEMPT)
        self._store = _CheckpointRedis(
            url_or_client, key=key, prefix=prefix, lock_expiry=lock_expiry, **options
        )

    def __repr__(self) -> str:
        return f"RedisCheckpoint({self._store._server!r}, key={self._store.key!r})"

    @property
    def description(self) -> str:
        """Server and key, no credentials."""
        return self._store.description

    @property
    def key(self) -> str:
        """The Redis key holding the cursor (prefix included)."""
        return self._store.key

    @property
    def lock_key(self) -> str:
        """The Redis key of the lock."""
        return self._store.lock_key

    @property
    def lease(self) -> float | None:
        """Seconds a held lock lasts if it is not renewed."""
        return self._store.lease

    async def load(self) -> str | int | float | None:
        """The committed cursor, or ``None`` if the key does not exist.

        Raises:
            TokenStoreError: Redis is unreachable or did not answer in time, or the value
                is not a checkpoint.
            ClosedError: The checkpoint was closed.
        """
        store = self._store
        raw = await store._call("read", store._client.get, store.key)
        if raw is None:
            return None
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        return parse_checkpoint(raw, "checkpoint in Redis", self.description)

    async def save(self, cursor: str | int | float) -> None:
        """Commit ``cursor``; inside :meth:`lock`, only while the lease is this holder's.

        Raises:
            TypeError: ``cursor`` is not a string or a number.
            CheckpointLost: The lock is gone or another's: nothing was written.
            TokenStoreError: Redis is unreachable or did not answer in time.
            ClosedError: The checkpoint was closed.
        """
        value = encode_checkpoint(cursor)
        store = self._store
        hold = store._hold
        if hold is None:
            await store._call("write", store._client.set, store.key, value)
            return
        if hold.lost is not None:
            raise store._lost_error(hold.lost)
        client = store._client
        written = await store._call(
            "write", client.eval, _FENCED_SET, 2, store.lock_key, store.key, hold.owner, value
        )
        if not written:
            reason = "the lock key is gone or holds another owner's token"
            if hold.lost is None:
                hold.lost = reason
            raise store._lost_error(reason)

    async def check_lease(self) -> None:
        """Make sure this collector still holds the lock, and renew its lease; one round
        trip (:meth:`RedisTokenStore.check_lease`).

        :meth:`NetrexClient.collect` calls it before it hands its caller a batch: a
        collector that was paused or cut off from Redis longer than the lease (and whose
        batch another collector may be delivering already) ends instead.

        Raises:
            CheckpointLost: The lease was lost (the lock expired, was deleted or is
                another collector's; Redis could not be reached before it ran out).
            TokenStoreError: It cannot be confirmed now (Redis away, the lease not run
                out yet), or no lock is held.
            ClosedError: The checkpoint was closed.
        """
        await self._store.check_lease()

    async def clear(self) -> None:
        """Delete the cursor: the next collector starts at the beginning.

        Raises:
            TokenStoreError: Redis is unreachable or did not answer in time.
            ClosedError: The checkpoint was closed.
        """
        await self._store.clear()

    def lock(self) -> AbstractAsyncContextManager[None]:
        """The leased Redis lock, waited for as long as it takes (through outages too).

        Raises:
            ClosedError: The checkpoint was closed.
        """
        return standby(self._store.lock, self.description, retry_errors=True)

    async def aclose(self) -> None:
        """Close the client if this checkpoint created it; returns within a few seconds."""
        await self._store.aclose()


_HOST_PORT = re.compile(r"^(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:\[\]]+))(?::(?P<port>\d{1,5}))?$")


def _parse_sentinel_url(
    url: str,
) -> tuple[list[tuple[str, int]], str, int, dict[str, str], dict[str, str]]:
    """Sentinels, service name, db, master credentials and sentinel credentials.

    Raises:
        ValueError: Not the documented form; the message never quotes the URL.
    """

    def bad(why: str) -> ValueError:
        return ValueError(
            "not a Redis Sentinel URL (expected redis+sentinel://[[user]:password@]"
            f"host[:port][,host[:port]...]/service[/db]): {why}"
        )

    parts = urlsplit(url)
    userinfo, at, hostlist = parts.netloc.rpartition("@")
    if not at:
        userinfo, hostlist = "", parts.netloc
    sentinels: list[tuple[str, int]] = []
    for item in hostlist.split(","):
        m = _HOST_PORT.match(item.strip())
        if m is None:
            raise bad("a host is empty or malformed")
        port = int(m["port"]) if m["port"] else _SENTINEL_PORT
        if not 0 < port < 65536:
            raise bad("a port is out of range")
        sentinels.append((m["v6"] or m["host"], port))
    path = [unquote(p) for p in parts.path.split("/")[1:]]
    if path and path[-1] == "":
        path.pop()
    if not path or not path[0] or len(path) > 2:
        raise bad("the path must be /service or /service/db")
    db = 0
    if len(path) == 2:
        if not path[1].isdigit():
            raise bad("the database must be a number")
        db = int(path[1])
    auth: dict[str, str] = {}
    if userinfo:
        user, colon, password = userinfo.partition(":")
        if user:
            auth["username"] = unquote(user)
        if colon and password:
            auth["password"] = unquote(password)
    sentinel_auth: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name not in _SENTINEL_QUERY:
            raise bad(f"unknown option {safe_text(name, limit=40)!r}")
        sentinel_auth[name.removeprefix("sentinel_")] = value
    return sentinels, path[0], db, auth, sentinel_auth


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
    if isinstance(pool, SentinelConnectionPool):
        hosts = []
        for sentinel in pool.sentinel_manager.sentinels:
            skw = sentinel.connection_pool.connection_kwargs
            secrets_ += [str(skw[k]) for k in ("password", "username") if skw.get(k)]
            host = str(skw.get("host", "?"))
            hosts.append(f"[{host}]:{skw['port']}" if ":" in host else f"{host}:{skw['port']}")
        server = f"redis+sentinel://{','.join(hosts)}/{pool.service_name}/{db}"
    elif isinstance(cls, type) and issubclass(cls, UnixDomainSocketConnection):
        server = f"unix://{kwargs.get('path', '?')}?db={db}"
    elif "host" in kwargs:
        scheme = "rediss" if isinstance(cls, type) and issubclass(cls, SSLConnection) else "redis"
        server = f"{scheme}://{kwargs['host']}:{kwargs.get('port', 6379)}/{db}"
    else:
        server = "redis"
    return safe_text(scrub(server, secrets_)), secrets_
