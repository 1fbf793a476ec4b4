"""Fixtures for the token store tests: tokens, Redis, and one backend per store."""

from __future__ import annotations

import functools
import logging
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from _redis_server import redis_server  # noqa: F401  (a fixture: a Redis of the test's own)
from store_helpers import (
    REDIS_PREFIX,
    REDIS_URL,
    REQUIRE_REDIS,
    SECRET_MARK,
    WORKER,
    Backend,
    FileBackend,
    MemoryBackend,
    RedisBackend,
    make_token,
)

from netrex_async import Token


@pytest.fixture(name="make_token")
def _make_token() -> Callable[..., Token]:
    return make_token


def _redacted(url: str) -> str:
    from netrex_async._redact import redact_url

    return redact_url(url)


@functools.cache
def _redis_problem() -> str | None:
    """Why Redis cannot be used for tests, or ``None`` when it can."""
    try:
        import redis
    except ImportError:  # pragma: no cover - the test extra installs it
        return "redis-py is not installed"
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return None


@pytest.fixture(name="redis_url")
def _redis_url() -> str:
    """The URL of a reachable Redis; skips (or fails, under NETREX_REQUIRE_REDIS=1)."""
    problem = _redis_problem()
    if problem is not None:
        message = (
            f"Redis not reachable at {_redacted(REDIS_URL)} ({problem}): start one with "
            "`redis-server --port 6379` or set NETREX_TEST_REDIS_URL; set "
            "NETREX_REQUIRE_REDIS=1 to fail instead of skipping"
        )
        if REQUIRE_REDIS:
            pytest.fail(message)
        pytest.skip(message)
    return REDIS_URL


@pytest.fixture(name="redis_key")
def _redis_key(redis_url: str) -> Iterator[str]:
    """A unique grant key; its value and lock are deleted afterwards."""
    import redis

    key = f"test-{uuid.uuid4().hex}"
    yield key
    client = redis.Redis.from_url(redis_url)
    try:
        client.delete(REDIS_PREFIX + key, REDIS_PREFIX + key + ":lock")
    finally:
        client.close()


@pytest_asyncio.fixture(
    name="backend",
    params=["memory", "file", pytest.param("redis", marks=pytest.mark.redis)],
)
async def _backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    backend: Backend
    if request.param == "memory":
        backend = MemoryBackend()
    elif request.param == "file":
        backend = FileBackend(tmp_path / "state" / "token.json")
    else:
        backend = RedisBackend(
            request.getfixturevalue("redis_url"), request.getfixturevalue("redis_key")
        )
    yield backend
    await backend.close()


@pytest.fixture(name="python")
def _python() -> list[str]:
    """The command that runs tests/stores/_worker.py with this interpreter."""
    return [sys.executable, str(WORKER)]


@pytest.fixture(autouse=True)
def _no_secret_in_store_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every record a store logs, at any level, is free of the tests' secrets."""
    caplog.set_level(logging.DEBUG, logger="netrex_async.stores")
    yield
    # At teardown caplog.records holds this phase's records only: ask for the others.
    for record in caplog.get_records("setup") + caplog.get_records("call"):
        if not record.name.startswith("netrex_async"):
            continue
        texts = [record.getMessage(), *map(repr, vars(record).values())]
        for text in texts:
            assert SECRET_MARK not in text, f"a secret reached a log record: {record.msg!r}"
