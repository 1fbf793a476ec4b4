"""``netrex-async collect --checkpoint redis://...``: one active collector across hosts.

Real processes against a FakeNetrex making events and a Redis server of the test's own:
two collectors on one Redis checkpoint, only one writes, and when it is killed with
SIGKILL the other takes over within the lease. Plus the options' errors, the missing
``redis`` extra, and a password in the URL that no output shows.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from _redis_server import RedisServer

from cli.conftest import Cli, clean_env, spawn_cli
from netrex_async.stores.redis import RedisCheckpoint
from netrex_async.testing import FakeNetrex

pytestmark = pytest.mark.skipif(os.name != "posix", reason="signals")

QUERY = "query($after: ID, $limit: Int) { events(afterId: $after, limit: $limit) { id type } }"
PAGE = 20
LEASE = 1.0
BOUND = 60.0
PASSWORD = "redis-password-of-the-checkpoint-test"


def argv(checkpoint: str | None, *extra: str) -> list[str]:
    return [
        "collect",
        QUERY,
        *("--items", "events", "--cursor", "after", "--key", "id"),
        *("--every", "0.1", "--page-size", str(PAGE), "--page-size-variable", "limit"),
        *(() if checkpoint is None else ("--checkpoint", checkpoint)),
        *extra,
    ]


class Collector:
    """One ``netrex-async collect`` process, and what it said on stderr."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.said: list[str] = []

    async def wait_for(self, text: str, timeout: float = BOUND) -> None:
        assert self.proc.stderr is not None
        async with asyncio.timeout(timeout):
            while not any(text in line for line in self.said):
                raw = await self.proc.stderr.readline()
                if not raw:
                    raise AssertionError(f"ended before {text!r}: {self.said}")
                self.said.append(raw.decode())

    async def stop(self, signum: signal.Signals) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signum)
        _, err = await asyncio.wait_for(self.proc.communicate(), BOUND)
        self.said.append(err.decode())
        assert self.proc.returncode is not None
        return self.proc.returncode


async def spawn(fake: FakeNetrex, args: list[str], **env: str) -> Collector:
    return Collector(await spawn_cli(fake, args, **env))


def lines_of(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


async def wait_until(condition: Any, timeout: float = BOUND) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_two_collectors_on_one_redis_checkpoint_one_writes_and_a_kill_hands_over(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    out_a, out_b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    options = ("--checkpoint-key", "camera-events", "--lease", str(LEASE))
    async with FakeNetrex() as fake:
        fake.start_events(rate=100)
        a = await spawn(fake, argv(redis_server.url, *options, "--out", str(out_a)))
        await wait_until(lambda: len(lines_of(out_a)) >= PAGE)
        # B's URL in the environment: how a fleet keeps a password off the command line.
        b_args = argv(None, *options, "--out", str(out_b))
        b = await spawn(fake, b_args, NETREX_CHECKPOINT=redis_server.url)
        await b.wait_for("waiting as a standby")
        written = len(lines_of(out_a))
        await wait_until(lambda: len(lines_of(out_a)) >= written + 5 * PAGE)  # A goes on
        assert lines_of(out_b) == []  # B writes nothing while A is active
        a.proc.send_signal(signal.SIGKILL)
        await a.proc.wait()
        killed = time.monotonic()
        await wait_until(lambda: lines_of(out_b) != [], timeout=LEASE + 10)
        handed_over = time.monotonic() - killed
        await b.wait_for("taken over")
        await fake.stop_events()
        last_id = int(fake.data.events[-1].id)
        await wait_until(lambda: last_id in {int(i["id"]) for i in lines_of(out_b)})
        assert await b.stop(signal.SIGTERM) == 0, b.said
    a_ids = [int(i["id"]) for i in lines_of(out_a)]
    b_ids = [int(i["id"]) for i in lines_of(out_b)]
    assert a_ids == list(range(1, len(a_ids) + 1))
    assert b_ids == list(range(b_ids[0], last_id + 1))
    # B started after A's committed cursor: at most A's batch in hand again, no gap.
    assert a_ids[-1] - PAGE + 1 <= b_ids[0] <= a_ids[-1] + 1
    # Within the lease, and a poll and a page on a loaded machine.
    assert handed_over <= LEASE + 5.0


@pytest.mark.slow
async def test_a_collector_paused_longer_than_the_lease_exits_5_and_writes_at_most_its_batch(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    out_a, out_b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    options = ("--checkpoint", redis_server.url, "--checkpoint-key", "camera-events")
    async with FakeNetrex() as fake:
        fake.start_events(rate=100)
        a = await spawn(fake, argv(None, *options, "--lease", str(LEASE), "--out", str(out_a)))
        await wait_until(lambda: len(lines_of(out_a)) >= PAGE)
        b = await spawn(fake, argv(None, *options, "--lease", str(LEASE), "--out", str(out_b)))
        await b.wait_for("waiting as a standby")
        a.proc.send_signal(signal.SIGSTOP)  # a pause longer than the lease: B takes over
        try:
            await b.wait_for("taken over", timeout=LEASE + 10)
            await wait_until(lambda: len(lines_of(out_b)) >= 3 * PAGE)
            before = len(lines_of(out_a))
        finally:
            a.proc.send_signal(signal.SIGCONT)
        assert await asyncio.wait_for(a.stop(signal.SIGCONT), BOUND) == 5
        await fake.stop_events()
        last_id = int(fake.data.events[-1].id)
        await wait_until(lambda: last_id in {int(i["id"]) for i in lines_of(out_b)})
        assert await b.stop(signal.SIGTERM) == 0, b.said
    said = "".join(a.said)
    assert "the lock on checkpoint in Redis" in said and "was lost" in said
    a_ids = [int(i["id"]) for i in lines_of(out_a)]
    b_ids = [int(i["id"]) for i in lines_of(out_b)]
    # Resumed, A wrote at most the batch it had in hand when it was paused, and nothing
    # after it: it delivered no page it asked for once its lease was gone.
    assert len(a_ids) - before <= PAGE
    assert set(a_ids) | set(b_ids) == set(range(1, last_id + 1))
    assert b_ids == list(range(b_ids[0], last_id + 1))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--checkpoint", "redis://127.0.0.1:1/0"), "needs --checkpoint-key"),
        (("--checkpoint", "events.checkpoint", "--lease", "5"), "go with a Redis checkpoint"),
        (("--checkpoint", "c", "--checkpoint-key", "k"), "go with a Redis checkpoint"),
        (
            ("--checkpoint", f"redis+sentinel://:{PASSWORD}@/svc", "--checkpoint-key", "k"),
            "--checkpoint: not a Redis Sentinel URL",
        ),
        ((), "needs --checkpoint FILE or URL (or $NETREX_CHECKPOINT)"),
    ],
)
async def test_checkpoint_options_that_do_not_go_together_are_usage_errors(
    cli: Cli, tmp_path: Path, secret_registry: Any, extra: tuple[str, ...], message: str
) -> None:
    secret_registry.add(PASSWORD)
    args = argv(None, *extra)
    env = {**cli.env, "NETREX_TOKEN": cli.fake.issue_token(("read",)).access_token}
    result = await cli(*args, env=env)
    assert result.code == 2, result.err
    assert message in result.err
    assert cli.fake.requests_to("graphql") == []


def test_without_the_redis_extra_the_hint_is_in_the_clis_words(tmp_path: Path) -> None:
    import subprocess

    code = (
        "import sys; sys.modules['redis'] = None\n"
        "from netrex_async._cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    args = argv("redis://127.0.0.1:1/0", "--checkpoint-key", "k")
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=clean_env(NETREX_TOKEN="a-user-token-never-sent", NETREX_PROVIDER="http://127.0.0.1:1"),
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert "a Redis checkpoint needs redis-py, which is not installed" in done.stderr
    assert "pip install 'netrex-async[redis]'" in done.stderr
    # The library's own import error is the typed one.
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.modules['redis'] = None\n"
            "from netrex_async import ExtraRequired\n"
            "try:\n    import netrex_async.stores.redis\n"
            "except ExtraRequired as e:\n    print(e.extra)\n",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert probe.stdout.strip() == "redis"


async def test_a_corrupt_redis_checkpoint_exits_65_and_is_left_as_it_is(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    key = RedisCheckpoint(redis_server.url, key="k").key
    assert redis_server.cli("SET", key, "{not json") == "+OK"
    async with FakeNetrex() as fake:
        c = await spawn(fake, argv(redis_server.url, "--checkpoint-key", "k"))
        _, err = await asyncio.wait_for(c.proc.communicate(), 20)
        assert fake.requests_to("graphql") == []
    assert c.proc.returncode == 65, err.decode()
    assert "corrupt" in err.decode() and "clear()" not in err.decode()
    assert redis_server.cli("GET", key) == "$9\r\n{not json"


@pytest.mark.parametrize("password", [PASSWORD, None], ids=["wrong", "missing"])
async def test_a_refused_redis_password_is_a_configuration_error_at_once_and_never_shown(
    tmp_path: Path, secret_registry: Any, password: str | None
) -> None:
    # WRONGPASS (or NOAUTH): no standby wait, no retry, whatever the lease; exit 2.
    secret_registry.add(PASSWORD)
    with RedisServer(password="the-right-password-of-the-test-redis") as server:
        auth = "" if password is None else f":{password}@"
        url = f"redis://{auth}127.0.0.1:{server.port}/0"
        async with FakeNetrex() as fake:
            c = await spawn(
                fake,
                argv(url, "--checkpoint-key", "k", "--out", str(tmp_path / "o.jsonl")),
            )
            _, err = await asyncio.wait_for(c.proc.communicate(), 20)
            assert fake.requests_to("graphql") == []  # nothing collected without the lock
    text = err.decode()
    assert c.proc.returncode == 2, text
    assert "cannot lock checkpoint" not in text, "retried as a standby"
    assert "refuses this client" in text and "check the password" in text, text
    assert f"127.0.0.1:{server.port}" in text
    assert PASSWORD not in text
    assert not (tmp_path / "o.jsonl").exists() or not (tmp_path / "o.jsonl").read_text()
