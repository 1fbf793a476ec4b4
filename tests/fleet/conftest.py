"""Fixtures of the fleet tests."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(name="redis_url")
async def fixture_redis_url():
    redis = pytest.importorskip("redis.asyncio")
    url = os.environ.get("NETREX_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    client = redis.Redis.from_url(url)
    try:
        await client.ping()
    except Exception:
        if os.environ.get("NETREX_REQUIRE_REDIS") == "1":
            pytest.fail(f"Redis not reachable at {url} and NETREX_REQUIRE_REDIS=1")
        pytest.skip(
            f"Redis not reachable at {url}: start one with `redis-server --port 6379` or set "
            "NETREX_TEST_REDIS_URL; set NETREX_REQUIRE_REDIS=1 to fail instead of skipping"
        )
    finally:
        await client.aclose()
    return url
