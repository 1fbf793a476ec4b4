"""Collector processes against a live stream: SIGKILLed at random moments, two on one
checkpoint. Real processes, a real FakeNetrex making events, a real file checkpoint."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from netrex_async.testing import FakeNetrex

pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.name != "posix", reason="SIGKILL")]

SCRIPT = Path(__file__).with_name("_collector.py")
PAGE = 25
EVERY = 0.1
REDIS_URL = os.environ.get("NETREX_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
#: The prefix the test collectors (_collector.py) put before their Redis keys.
REDIS_PREFIX = "netrex_async_test:"
#: Every wait in these tests ends within this many seconds, or the test fails.
BOUND = 60.0


class Collector:
    """One collector process and the lines it says."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.said: list[str] = []

    async def wait_for(self, line: str, timeout: float = BOUND) -> None:
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while line not in self.said:
                raw = await self.proc.stdout.readline()
                if not raw:
                    err = b"" if self.proc.stderr is None else await self.proc.stderr.read()
                    raise AssertionError(f"collector ended before {line!r}: {err.decode()}")
                self.said.append(raw.decode().strip())

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(self.proc.wait(), BOUND)


@asynccontextmanager
async def live_fake(rate: float) -> AsyncIterator[tuple[FakeNetrex, dict[str, str]]]:
    async with FakeNetrex() as fake:
        token = fake.issue_token(scopes=("read",))
        env = {**os.environ, "NETREX_TOKEN": token.access_token}
        fake.start_events(rate)
        yield fake, env


async def spawn(
    fake: FakeNetrex, env: dict[str, str], checkpoint: Path | str, out: Path
) -> Collector:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        fake.base_url,
        str(checkpoint),
        str(out),
        str(PAGE),
        str(EVERY),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    return Collector(proc)


def read_out(*paths: Path) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for path in paths:
        if path.exists():
            items += [json.loads(line) for line in path.read_text().splitlines()]
    return items


async def until_collected(out: Path, last_id: int) -> None:
    async with asyncio.timeout(BOUND):
        while not out.exists() or last_id not in {int(i["id"]) for i in read_out(out)}:
            await asyncio.sleep(0.1)


def runs_by_pid(items: list[dict[str, Any]]) -> list[list[int]]:
    """The ids each process wrote, process after process, in the order written."""
    runs: list[list[int]] = []
    pid = None
    for item in items:
        if item["pid"] != pid:
            runs.append([])
            pid = item["pid"]
        runs[-1].append(int(item["id"]))
    return runs


async def test_collectors_killed_at_random_moments_lose_no_event(tmp_path: Path) -> None:
    seed = int(os.environ.get("NETREX_TEST_SEED", "16"))
    rng = random.Random(seed)
    checkpoint, out = tmp_path / "events.checkpoint", tmp_path / "events.jsonl"
    kills = 0
    async with live_fake(rate=150) as (fake, env):
        for _ in range(10):
            collector = await spawn(fake, env, checkpoint, out)
            await collector.wait_for("started")
            # Now and then well into a run (many batches), mostly early (a batch or two).
            await asyncio.sleep(rng.choice([rng.uniform(0.0, 0.6), rng.uniform(0.6, 2.0)]))
            await collector.kill()
            kills += 1
        await fake.stop_events()
        last_id = int(fake.data.events[-1].id)
        final = await spawn(fake, env, checkpoint, out)
        await until_collected(out, last_id)
        await final.kill()
    items = read_out(out)
    ids = [int(item["id"]) for item in items]
    # Every event produced, once at least.
    assert set(ids) == set(range(1, last_id + 1)), f"seed {seed}"
    # Each process wrote a contiguous, ascending run of ids (batches oldest first), and
    # started at most one batch before where the one before it stopped, never after.
    runs = runs_by_pid(items)
    for run in runs:
        assert run == list(range(run[0], run[0] + len(run))), f"seed {seed}"
    for before, after in itertools.pairwise(runs):
        assert before[-1] - PAGE + 1 <= after[0] <= before[-1] + 1, f"seed {seed}"
    duplicates = len(ids) - len(set(ids))
    assert duplicates <= kills * PAGE, f"seed {seed}"
    assert len(runs) >= 3  # the kills did land mid-stream (not all before the first batch)


@pytest.fixture(name="checkpoint_of", params=["file", "redis"])
def _checkpoint_of(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, float]]:
    """Where two collectors share a checkpoint, and how long a dead one's lock outlives it."""
    if request.param == "file":
        yield str(tmp_path / "events.checkpoint"), 0.0  # the kernel drops it at once
        return
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        try:
            client.ping()
        except redis.RedisError as e:
            if os.environ.get("NETREX_REQUIRE_REDIS") == "1":
                pytest.fail(f"Redis not reachable: {type(e).__name__}")
            pytest.skip(f"Redis not reachable: {type(e).__name__}")
        key = f"test-{uuid.uuid4().hex}"
        lease = 2.0
        yield f"{REDIS_URL}#{key}#{lease}", lease
        client.delete(REDIS_PREFIX + key, REDIS_PREFIX + key + ":lock")
    finally:
        client.close()


async def test_two_collectors_one_checkpoint_one_writes_and_a_kill_hands_over(
    tmp_path: Path, checkpoint_of: tuple[str, float]
) -> None:
    checkpoint, lease = checkpoint_of
    out_a, out_b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    async with live_fake(rate=100) as (fake, env):
        a = await spawn(fake, env, checkpoint, out_a)
        await a.wait_for("active")
        b = await spawn(fake, env, checkpoint, out_b)
        await b.wait_for("started")
        await a.wait_for("batch 20")  # a couple of seconds of events, B waiting
        assert not out_b.exists() or out_b.read_text() == ""
        assert "active" not in b.said
        await a.kill()
        killed = time.monotonic()
        await b.wait_for("active", timeout=lease + 10)
        handed_over = time.monotonic() - killed
        await b.wait_for("batch 5")
        await fake.stop_events()
        last_id = int(fake.data.events[-1].id)
        await until_collected(out_b, last_id)
        await b.kill()
    a_ids = [int(i["id"]) for i in read_out(out_a)]
    b_ids = [int(i["id"]) for i in read_out(out_b)]
    assert set(a_ids) | set(b_ids) == set(range(1, last_id + 1))
    # B took over where A's committed cursor was: at most A's batch in hand again.
    assert a_ids[-1] - PAGE + 1 <= b_ids[0] <= a_ids[-1] + 1
    # Within the lease (and a poll, and a first page on a loaded machine).
    assert handed_over <= lease + 5.0
