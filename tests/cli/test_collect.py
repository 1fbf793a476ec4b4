"""``netrex-async collect``: JSON Lines out, written before the commit, a clean stop on
SIGINT/SIGTERM, a partial last line repaired, a full disk and a corrupt checkpoint as
clear errors. Real processes against a FakeNetrex making events."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from cli.conftest import Cli, clean_env, spawn_cli
from netrex_async import FileCheckpoint
from netrex_async._cli._exits import ExitCode
from netrex_async.testing import FakeNetrex, Fault

pytestmark = pytest.mark.skipif(os.name != "posix", reason="signals")

QUERY = "query($after: ID, $limit: Int) { events(afterId: $after, limit: $limit) { id type } }"
BOUND = 60.0


def argv(checkpoint: Path, *extra: str) -> list[str]:
    return [
        "collect",
        QUERY,
        "--items",
        "events",
        "--cursor",
        "after",
        "--key",
        "id",
        "--checkpoint",
        str(checkpoint),
        "--every",
        "0.1",
        "--page-size",
        "20",
        "--page-size-variable",
        "limit",
        *extra,
    ]


start = spawn_cli


def lines_of(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


async def wait_for_lines(path: Path, count: int) -> None:
    async with asyncio.timeout(BOUND):
        while len(lines_of(path)) < count:
            await asyncio.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_stops_it_cleanly_with_the_batch_in_hand_committed(
    tmp_path: Path, signum: signal.Signals
) -> None:
    checkpoint, out = tmp_path / "events.checkpoint", tmp_path / "events.jsonl"
    async with FakeNetrex() as fake:
        fake.start_events(rate=200)
        proc = await start(fake, argv(checkpoint, "--out", str(out)))
        await wait_for_lines(out, 100)
        proc.send_signal(signum)
        _, err = await asyncio.wait_for(proc.communicate(), BOUND)
        assert proc.returncode == 0, err.decode()
        assert b"stopped cleanly" in err
        written = [int(item["id"]) for item in lines_of(out)]
        assert written == list(range(1, len(written) + 1))
        # Everything written is committed: a restart repeats nothing.
        assert await FileCheckpoint(checkpoint).load() == str(written[-1])
        again = await start(fake, argv(checkpoint, "--out", str(out)))
        await wait_for_lines(out, len(written) + 20)
        again.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(again.communicate(), BOUND)
        assert again.returncode == 0, err.decode()
    ids = [int(item["id"]) for item in lines_of(out)]
    assert ids == list(range(1, len(ids) + 1))  # no gap, no duplicate


@pytest.mark.slow
async def test_stdout_gets_json_lines_and_a_partial_line_is_repaired(tmp_path: Path) -> None:
    checkpoint, out = tmp_path / "events.checkpoint", tmp_path / "events.jsonl"
    out.write_text('{"id": "1", "type": "motion"}\n{"id": "2", "ty')  # killed mid-write
    await FileCheckpoint(checkpoint).save("1")
    async with FakeNetrex() as fake:
        proc = await start(fake, argv(checkpoint, "--out", str(out)))
        await wait_for_lines_safe(out, 4)
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), BOUND)
        assert proc.returncode == 0, err.decode()
        assert b"partial last line" in err
        assert [item["id"] for item in lines_of(out)] == ["1", "2", "3", "4"]

        to_stdout = await start(fake, argv(tmp_path / "other.checkpoint"))
        assert to_stdout.stdout is not None
        got = [json.loads(await to_stdout.stdout.readline()) for _ in range(4)]
        to_stdout.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(to_stdout.communicate(), BOUND)
        assert to_stdout.returncode == 0, err.decode()
    assert [item["id"] for item in got] == ["1", "2", "3", "4"]


async def wait_for_lines_safe(path: Path, count: int) -> None:
    """Like wait_for_lines, for a file that may hold a partial line meanwhile."""
    async with asyncio.timeout(BOUND):
        while True:
            text = path.read_text() if path.exists() else ""
            if text.endswith("\n") and text.count("\n") >= count:
                return
            await asyncio.sleep(0.05)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
async def test_a_full_disk_is_a_clear_error_and_commits_nothing(
    cli: Cli, fake: FakeNetrex, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "events.checkpoint"
    token = fake.issue_token(("read",))
    env = {**cli.env, "NETREX_TOKEN": token.access_token}
    result = await cli(*argv(checkpoint, "--out", "/dev/full"), env=env)
    assert result.code == 5, result.err
    assert "/dev/full" in result.err and "No space left" in result.err
    assert await FileCheckpoint(checkpoint).load() is None


async def test_a_corrupt_checkpoint_is_a_clear_error(
    cli: Cli, fake: FakeNetrex, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "events.checkpoint"
    checkpoint.write_text("{not json")
    token = fake.issue_token(("read",))
    env = {**cli.env, "NETREX_TOKEN": token.access_token}
    result = await cli(*argv(checkpoint), env=env)
    # Its own exit code, which a systemd unit does not restart on (exit 5, a lost lock
    # or a full disk, it does restart on).
    assert result.code == 65, result.err
    assert str(checkpoint) in result.err and "corrupt" in result.err
    assert "delete it" in result.err and "clear()" not in result.err
    assert checkpoint.read_text() == "{not json"
    assert fake.requests_to("graphql") == []


def test_the_systemd_unit_does_not_restart_on_what_a_restart_cannot_fix() -> None:
    page = (Path(__file__).parents[2] / "docs" / "collectors.md").read_text()
    unit = page[page.index("[Service]") :]
    assert "Restart=on-failure" in unit
    line = next(x for x in unit.splitlines() if x.startswith("RestartPreventExitStatus="))
    codes = {int(code) for code in line.split("=", 1)[1].split()}
    assert codes == {ExitCode.USAGE, ExitCode.AUTH, ExitCode.CORRUPT_CHECKPOINT}
    assert ExitCode.LOCAL_FILE not in codes  # a lost lock comes back as a standby


async def test_a_cursor_variable_the_query_does_not_declare_is_a_usage_error(
    cli: Cli, fake: FakeNetrex, tmp_path: Path
) -> None:
    # Sent anyway, $after would be ignored: the first page again and again, for ever.
    checkpoint = tmp_path / "c"
    token = fake.issue_token(("read",))
    env = {**cli.env, "NETREX_TOKEN": token.access_token}
    base = ["--checkpoint", str(checkpoint), "--every", "0.1"]
    result = await cli(
        "collect",
        "{cameraList{name}}",
        *("--items", "cameraList", "--cursor", "after", "--key", "name", *base),
        env=env,
    )
    assert result.code == 2, result.err
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert "does not declare the cursor variable $after" in result.err
    assert "(--cursor)" in result.err and "declares no variable" in result.err
    assert "cursor=" not in result.err
    # the page-size variable, the same way
    query = "query($after: ID) { events(afterId: $after, limit: 20) { id } }"
    result = await cli(
        "collect",
        query,
        *("--items", "events", "--cursor", "after", "--key", "id", *base),
        *("--page-size", "20", "--page-size-variable", "limit"),
        env=env,
    )
    assert result.code == 2, result.err
    assert "does not declare the page-size variable $limit" in result.err
    assert "(--page-size-variable)" in result.err and "it declares $after" in result.err
    assert fake.requests_to("graphql") == []
    assert not checkpoint.exists()


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [("--items", "evnts", "nothing at 'evnts'"), ("--key", "uuid", "no field 'uuid'")],
)
async def test_an_answer_without_the_items_or_the_key_names_the_option(
    cli: Cli, fake: FakeNetrex, tmp_path: Path, option: str, value: str, says: str
) -> None:
    fake.start_events(rate=200)
    token = fake.issue_token(("read",))
    env = {**cli.env, "NETREX_TOKEN": token.access_token}
    args = argv(tmp_path / "c")
    args[args.index(option) + 1] = value
    result = await cli(*args, env=env)
    assert result.code == 1, result.err
    assert says in result.err and f"({option})" in result.err, result.err
    assert "items=" not in result.err and "key=" not in result.err


async def test_bad_options_are_usage_errors(cli: Cli, tmp_path: Path) -> None:
    result = await cli("collect", QUERY, "--items", "events", "--cursor", "after")
    assert result.code == 2
    result = await cli(*argv(tmp_path / "c")[:-4], "--page-size-variable", "limit")
    assert result.code == 2 and "needs --page-size" in result.err


@pytest.mark.slow
def test_the_collector_demo_loses_no_event() -> None:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "netrex_async", "demo", "--collector", "--kills", "3", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=clean_env(),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["ok"] is True
    assert summary["missing"] == 0
    assert summary["collected"] == summary["produced"] > 100
    assert summary["duplicated"] <= summary["duplicates_allowed"] == 3 * 50
    assert summary["clean_stop"] is True


def test_summaries_say_how_far_behind_the_newest_item_and_count_outages() -> None:
    import logging

    from netrex_async._cli._collect import _epoch, _Outages, _Stats

    assert _epoch("2024-05-01T08:00:00Z") == 1714550400.0
    assert _epoch("2024-05-01T10:00:00+02:00") == 1714550400.0
    assert _epoch("2024-05-01T08:00:00") == 1714550400.0  # no zone: UTC
    assert _epoch(1714550400) == 1714550400.0
    assert _epoch("yesterday") is None and _epoch(True) is None and _epoch(None) is None
    outages = _Outages()
    stats = _Stats(outages, "time")
    stats.add(
        [{"id": "1", "time": "2024-05-01T07:59:00Z"}, {"id": "2", "time": "2024-05-01T08:00:00Z"}]
    )
    outages.handle(logging.makeLogRecord({"msg": "x", "event": "collect_recovered"}))
    outages.handle(logging.makeLogRecord({"msg": "x", "event": "collect_failed"}))
    line = stats.line(now=1714550400.0 + 42)
    assert "2 items" in line and "42 s behind the newest item" in line
    assert "1 outages survived" in line
    assert "behind" not in _Stats(outages).line()  # no time field: no lag


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_progress_line_unless_the_items_go_there(tmp_path: Path) -> None:
    import argparse

    from netrex_async._cli._collect import _Sink
    from netrex_async._cli._commands import Context
    from netrex_async._cli._output import Console

    def sink(out: io.StringIO, err: io.StringIO, path: str | None) -> _Sink:
        console = Console(out, err)
        return _Sink(Context(args=argparse.Namespace(), env={}, console=console), path)

    to_file = sink(io.StringIO(), _Tty(), str(tmp_path / "o.jsonl"))
    assert to_file.progress_line
    to_file.progress("collect: 5 items")
    assert to_file._console.err.getvalue() == "\rcollect: 5 items\x1b[K"
    to_file.close()
    assert not sink(_Tty(), _Tty(), None).progress_line  # the items are on that terminal
    assert sink(io.StringIO(), _Tty(), None).progress_line  # items piped, stderr a terminal
    assert not sink(io.StringIO(), io.StringIO(), None).progress_line


@pytest.mark.slow
async def test_summaries_count_the_outages_the_process_survived(tmp_path: Path) -> None:
    checkpoint, out = tmp_path / "events.checkpoint", tmp_path / "events.jsonl"
    async with FakeNetrex() as fake:
        fake.inject("graphql", Fault.status(500), times=None)  # down from the start
        proc = await start(fake, argv(checkpoint, "--out", str(out), "--summary-every", "0.2"))
        assert proc.stderr is not None
        said: list[str] = []

        async def until(text: str) -> None:
            async with asyncio.timeout(BOUND):
                while not said or text not in said[-1]:
                    said.append((await proc.stderr.readline()).decode())
                    assert said[-1], f"ended before {text!r}: {said}"

        await until("collect: query failed")
        fake.clear_faults()  # up again
        await until("1 outages survived")
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), BOUND)
        assert proc.returncode == 0, err.decode()
    assert "1 outages survived; stopped cleanly" in err.decode()
