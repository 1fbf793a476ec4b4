"""A fleet of real processes shares one grant on a provider that rotates refresh tokens
and revokes the whole grant when an old one comes back: exactly one refresh per token
lifetime, and no failed call, through FileTokenStore and through RedisTokenStore."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from pathlib import Path

import pytest

from netrex_async import FileTokenStore
from netrex_async.testing import FakeNetrex

WORKER = Path(__file__).with_name("_worker.py")
PROCESSES = 8
TASKS = 200
LIFETIME = 2.0
LIFETIMES = 10
# Each task pauses between calls so that the one fake server process keeps up: the
# point is the sharing of the grant, not the throughput (see benchmarks/ for that).
PAUSE = 5.0

pytestmark = pytest.mark.slow


async def run_fleet(fake: FakeNetrex, store_kind: str, where: str) -> tuple[list[dict], float]:
    # Refreshes happen at half-life (the default margin), so each token serves
    # LIFETIME / 2 seconds: cover LIFETIMES full lifetimes.
    started = time.monotonic()
    until = time.time() + 2.0 + LIFETIME * LIFETIMES
    procs = []
    for _ in range(PROCESSES):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(WORKER),
            "--base-url", fake.base_url,
            "--client-id", fake.client_id,
            "--redirect-uri", fake.redirect_uri,
            "--store", store_kind,
            "--where", where,
            "--tasks", str(TASKS),
            "--until", str(until),
            "--pause", str(PAUSE),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        procs.append(proc)
    secret = (fake.client_secret + "\n").encode()
    outcomes = await asyncio.wait_for(
        asyncio.gather(*(proc.communicate(secret) for proc in procs)), LIFETIME * LIFETIMES + 60
    )
    results = []
    for proc, (out, err) in zip(procs, outcomes, strict=True):
        assert proc.returncode == 0, err.decode()[-2000:]
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    return results, time.monotonic() - started


def check(fake: FakeNetrex, results: list[dict], elapsed: float) -> None:
    failures = sum(r["failures"] for r in results)
    assert failures == 0, [r["errors"] for r in results if r["errors"]]
    assert fake.counters.reuse_detected == 0, "two processes refreshed with one refresh token"
    assert fake.counters.unauthorized == 0
    requests = fake.counters.token_requests["refresh_token"]
    refreshes = sum(r["refreshes"] for r in results)
    # every token request was a successful refresh made by exactly one process ...
    assert requests == refreshes
    assert sum(r["refresh_failures"] for r in results) == 0
    # ... the calls spanned at least LIFETIMES token lifetimes, which takes at least that
    # many tokens; and no token was refreshed before its fresh phase ended (half-life,
    # less at most 15% of jitter): one refresh per token, not one more.
    assert elapsed >= LIFETIME * LIFETIMES
    assert requests >= LIFETIMES
    assert requests <= elapsed / (LIFETIME / 2 * 0.85) + 1
    assert sum(r["adoptions"] for r in results) >= requests * (PROCESSES - 1) * 0.5
    assert sum(r["calls"] for r in results) >= PROCESSES * TASKS * 2


async def test_fleet_shares_a_grant_through_a_file(tmp_path):
    async with FakeNetrex(expires_in=LIFETIME, rotate_refresh_tokens=True, reuse_detection=True,
                          record_requests=False) as fake:  # fmt: skip
        path = tmp_path / "grant" / "token.json"
        async with FileTokenStore(path) as store:
            await store.save(fake.issue_token("read"))
        results, elapsed = await run_fleet(fake, "file", str(path))
        check(fake, results, elapsed)


@pytest.mark.redis
async def test_fleet_shares_a_grant_through_redis(redis_url):
    from netrex_async.stores.redis import RedisTokenStore

    key = f"fleet-{uuid.uuid4().hex}"
    async with FakeNetrex(expires_in=LIFETIME, rotate_refresh_tokens=True, reuse_detection=True,
                          record_requests=False) as fake:  # fmt: skip
        async with RedisTokenStore(redis_url, key=key) as store:
            await store.save(fake.issue_token("read"))
            try:
                results, elapsed = await run_fleet(fake, "redis", f"{redis_url}#{key}")
            finally:
                await store.clear()
        check(fake, results, elapsed)
