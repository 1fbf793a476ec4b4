"""A fleet of real processes shares one grant on a provider that rotates refresh tokens
and revokes the whole grant when an old one comes back: exactly one refresh per token
lifetime, and no failed call, through FileTokenStore and through RedisTokenStore."""

from __future__ import annotations

import asyncio
import itertools
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
TASKS = 50
LIFETIME = 4.0
LIFETIMES = 5
# Each task pauses between calls so that the one fake server process keeps up: the
# point is the sharing of the grant, not the throughput (see benchmarks/ for that).
# PROCESSES * TASKS / PAUSE = 80 calls a second, a fraction of what the fake serves even
# on a loaded machine. (With 200 tasks a process, 320 a second, a loaded machine queued
# calls for seconds: longer than a token's skew, so calls were refused with 401.)
PAUSE = 5.0
# A token of LIFETIME seconds is refreshed when its fresh phase ends (the default
# margin: half its life), less at most 15% of it (jitter and the early wake-up).
FRESH = LIFETIME / 2

pytestmark = pytest.mark.slow


async def run_fleet(fake: FakeNetrex, store_kind: str, where: str) -> tuple[list[dict], float]:
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
            "--pause", str(PAUSE),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        procs.append(proc)

    async def ready(proc: asyncio.subprocess.Process) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write((fake.client_secret + "\n").encode())
        await proc.stdin.drain()
        line = await proc.stdout.readline()
        if line != b"ready\n":
            _, err = await proc.communicate()
            pytest.fail(f"a worker did not start: {line!r} {err.decode()[-2000:]}")

    # The calls start when every process is set up (a loaded machine takes seconds to
    # start eight interpreters): they span LIFETIMES full lifetimes, whatever the load.
    await asyncio.wait_for(asyncio.gather(*(ready(proc) for proc in procs)), 120)
    started = time.monotonic()
    until = f"{time.time() + LIFETIME * LIFETIMES!r}\n".encode()
    outcomes = await asyncio.wait_for(
        asyncio.gather(*(proc.communicate(until) for proc in procs)), LIFETIME * LIFETIMES + 60
    )
    results = []
    for proc, (out, err) in zip(procs, outcomes, strict=True):
        assert proc.returncode == 0, err.decode()[-2000:]
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    return results, time.monotonic() - started


def check(fake: FakeNetrex, results: list[dict], elapsed: float) -> None:
    load = (
        f"p99 call latency {max(r['latency_p99'] or 0 for r in results):.2f} s, "
        f"slowest {max(r['latency_max'] or 0 for r in results):.2f} s"
    )
    failures = sum(r["failures"] for r in results)
    assert failures == 0, ([r["errors"] for r in results if r["errors"]], load)
    assert fake.counters.reuse_detected == 0, "two processes refreshed with one refresh token"
    assert fake.counters.unauthorized == 0, load
    requests = fake.counters.token_requests["refresh_token"]
    refreshes = sum(r["refreshes"] for r in results)
    # every token request was a successful refresh made by exactly one process ...
    assert requests == refreshes
    assert sum(r["refresh_failures"] for r in results) == 0
    # ... the calls spanned at least LIFETIMES token lifetimes, which takes at least that
    # many tokens ...
    assert elapsed >= LIFETIME * LIFETIMES
    assert requests >= LIFETIMES
    # ... and no token was replaced before its fresh phase ended, by whichever process:
    # one refresh per token, not one more. Judged refresh by refresh on the fleet's
    # timeline (not as a count over the run, which process start-up and load blur). A
    # token that came back late (so slowly that it was stale on arrival) may be followed
    # sooner: the manager then refreshes after its spacing, which is right.
    timeline = sorted((e for r in results for e in r["refreshed"]), key=lambda e: e["expires_at"])
    assert len(timeline) == refreshes
    judged = 0
    for before, after in itertools.pairwise(timeline):
        on_arrival = before["expires_at"] - before["at"]  # seconds of life left
        if on_arrival < FRESH + 0.5:
            continue  # stale on arrival (or nearly): an early successor is right
        judged += 1
        served = after["expires_at"] - before["expires_at"]
        assert served >= FRESH * 0.85 - 0.05, (
            f"a token fresh for {on_arrival - FRESH:.2f} s more was replaced after "
            f"{served:.2f} s ({after['reason']}); {load}"
        )
    assert judged >= LIFETIMES, f"only {judged} tokens arrived fresh; {load}"
    assert sum(r["adoptions"] for r in results) >= requests * (PROCESSES - 1) * 0.5
    assert sum(r["calls"] for r in results) >= PROCESSES * TASKS * 2, load


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
