"""query, schema and collect get their client one way (#14): a user token (``--user-token``,
``-`` from stdin, ``NETREX_TOKEN``) or the stored grant, with the same checks and messages.

(The stored grant's binding, for all three, is in test_binding.py.)
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import sys
import time
from pathlib import Path

import attrs
import pytest

from netrex_async import FileCheckpoint, FileTokenStore
from netrex_async.testing import FakeNetrex

from .conftest import Cli, api_command_argv, clean_env


def _one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("netrex-async: error: ")
    return lines[0]


@pytest.mark.parametrize("command", ["query", "schema", "collect"])
async def test_an_unusable_user_token_is_one_line_and_sends_nothing(
    cli: Cli, fake: FakeNetrex, tmp_path: Path, command: str
) -> None:
    argv = api_command_argv(command, tmp_path)
    for how in ("flag", "environment"):
        if how == "flag":
            result = await cli(*argv, "--user-token", " spaced ")
        else:
            result = await cli(*argv, env={**cli.env, "NETREX_TOKEN": "a\nb"})
        assert result.code == 2, result.text
        assert "the user token is not usable" in _one_error_line(result.err)
        assert result.out == ""
    assert fake.counters.api_calls == 0


@pytest.mark.parametrize("command", ["query", "schema", "collect"])
async def test_user_token_dash_with_nothing_on_stdin(
    cli: Cli, fake: FakeNetrex, tmp_path: Path, command: str
) -> None:
    argv = api_command_argv(command, tmp_path)
    result = await cli(*argv, "--user-token", "-", stdin=io.StringIO(""))
    assert result.code == 2
    assert "nothing was read from stdin" in _one_error_line(result.err)
    assert fake.counters.api_calls == 0


async def test_collect_query_and_user_token_both_from_stdin(cli: Cli, tmp_path: Path) -> None:
    # As for query: said plainly, not "nothing was read from stdin" after the query took it.
    argv = api_command_argv("collect", tmp_path)
    argv[1] = "-"
    stdin = io.StringIO(api_command_argv("collect", tmp_path)[1] + "\nsome-token-value\n")
    result = await cli(*argv, "--user-token", "-", stdin=stdin)
    assert result.code == 2
    line = _one_error_line(result.err)
    assert "cannot both be read from stdin" in line
    assert "NETREX_TOKEN" in line


@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix", reason="signals")
async def test_collect_with_the_stored_grant_refreshes_and_saves_it(
    cli: Cli, fake: FakeNetrex, tmp_path: Path
) -> None:
    # The grant's access token expired overnight: collect refreshes it, saves the new
    # token to the token file (the next command uses it) and collects.
    fresh = fake.issue_token(("read",))
    fake.expire_token(fresh)
    now = time.time()
    stale = attrs.evolve(fresh, issued_at=now - 7200, expires_at=now - 3600)
    await FileTokenStore(cli.token_file).save(stale)
    cli.bind()
    out = tmp_path / "events.jsonl"  # --out of api_command_argv
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "netrex_async",
        *api_command_argv("collect", tmp_path),
        "--every",
        "0.1",
        env=clean_env(**cli.env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        while len(out.read_text().splitlines() if out.exists() else []) < 4:
            await asyncio.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [
        "1",
        "2",
        "3",
        "4",
    ]
    assert await FileCheckpoint(tmp_path / "events.checkpoint").load() == "4"
    assert fake.counters.refreshes == 1
    saved = await FileTokenStore(cli.token_file).load()
    assert saved is not None and fake.is_valid(saved)
    assert saved.access_token != stale.access_token
    cli.registry.check(err.decode(), "")
