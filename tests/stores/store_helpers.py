"""Helpers shared by the token store tests (imported by name: no package here)."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

from netrex_async import MemoryTokenStore, Token
from netrex_async._stores._file import FileTokenStore

REDIS_URL = os.environ.get("NETREX_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REQUIRE_REDIS = os.environ.get("NETREX_REQUIRE_REDIS") == "1"
#: Put before every Redis key the tests make, so a human can find leftovers.
REDIS_PREFIX = "netrex_async_test:"
WORKER = Path(__file__).with_name("_worker.py")

#: A marker in every secret the tests make: no error text may contain it.
SECRET_MARK = "SeCrEt"


def make_token(n: int = 0, *, lifetime: float = 3600.0) -> Token:
    """A token whose access and refresh tokens are unique and carry SECRET_MARK."""
    tag = uuid.uuid4().hex
    now = time.time()
    return Token(
        access_token=f"at-{SECRET_MARK}-{n}-{tag}",
        refresh_token=f"rt-{SECRET_MARK}-{n}-{tag}",
        issued_at=now,
        expires_at=now + lifetime,
        scopes=("events", "cameras"),
    )


class Backend:
    """One kind of store for the conformance suite.

    ``make()`` returns a new store instance on the same place (the same file, the same
    Redis key); for memory, where no two instances share anything, it returns the one
    shared instance. ``corrupt(raw)`` puts raw bytes where the token goes.
    """

    name: str
    #: Whether make() can be given a lock timeout.
    has_lock_timeout: bool = True
    #: Whether the store can hold something that is not a token.
    can_be_corrupt: bool = True

    def __init__(self) -> None:
        self.stores: list[Any] = []

    def make(self, **options: Any) -> Any:
        raise NotImplementedError

    async def corrupt(self, raw: bytes) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        for store in self.stores:
            await store.aclose()


class MemoryBackend(Backend):
    name = "memory"
    can_be_corrupt = False

    def __init__(self) -> None:
        super().__init__()
        self.store = MemoryTokenStore()
        self.stores.append(self.store)

    def make(self, **options: Any) -> Any:
        # One shared instance: a lock timeout given here applies to it from now on.
        if "lock_timeout" in options:
            self.store.lock_timeout = options.pop("lock_timeout")
        assert not options, f"MemoryTokenStore takes no options {sorted(options)}"
        return self.store


class FileBackend(Backend):
    name = "file"

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def make(self, **options: Any) -> Any:
        options.setdefault("lock_timeout", 5.0)
        store = FileTokenStore(self.path, **options)
        self.stores.append(store)
        return store

    async def corrupt(self, raw: bytes) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, raw)
        finally:
            os.close(fd)


class RedisBackend(Backend):
    name = "redis"

    def __init__(self, url: str, key: str) -> None:
        super().__init__()
        self.url = url
        self.key = key

    def make(self, **options: Any) -> Any:
        from netrex_async.stores.redis import RedisTokenStore

        options.setdefault("lock_timeout", 5.0)
        store = RedisTokenStore(self.url, key=self.key, prefix=REDIS_PREFIX, **options)
        self.stores.append(store)
        return store

    async def corrupt(self, raw: bytes) -> None:
        import redis.asyncio

        client = redis.asyncio.Redis.from_url(self.url)
        try:
            await client.set(REDIS_PREFIX + self.key, raw)
        finally:
            await client.aclose()
