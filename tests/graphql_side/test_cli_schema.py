"""``netrex-async schema``: SDL or JSON, printed or written atomically, one-line errors."""

from __future__ import annotations

import io
import json
import os
import stat
import sys
import time
from pathlib import Path

import graphql
import pytest
from cli.conftest import Cli, free_port

from netrex_async import FileTokenStore, Token
from netrex_async._cli import amain
from netrex_async.testing import FakeNetrex, Fault
from netrex_async.testing._schema import schema as fake_schema

from .conftest import expired_grant

FAKE_SDL = graphql.print_schema(fake_schema())


async def store_expired_grant(cli: Cli, fake: FakeNetrex) -> Token:
    """A stored grant whose access token expired (as after a night off)."""
    token = expired_grant(fake)
    await FileTokenStore(cli.token_file).save(token)
    cli.bind()  # where it belongs, as `login` records it
    return token


def one_error_line(text: str) -> str:
    assert text.count("\n") == 1, text
    assert text.startswith("netrex-async: error: "), text
    return text


async def test_prints_the_sdl_with_a_stored_grant_refreshed_once(
    cli: Cli, fake: FakeNetrex
) -> None:
    await store_expired_grant(cli, fake)
    result = await cli("schema")
    assert result.code == 0, result.err
    assert result.err == ""
    assert graphql.print_schema(graphql.build_schema(result.out)) == FAKE_SDL
    assert fake.counters.refreshes == 1
    stored = await FileTokenStore(cli.token_file).load()
    assert stored is not None and stored.expires_at is not None
    assert stored.expires_at > time.time()


async def test_writes_a_file_atomically(cli: Cli, fake: FakeNetrex, tmp_path: Path) -> None:
    await store_expired_grant(cli, fake)
    target = tmp_path / "netrex.graphql"
    result = await cli("schema", "-o", str(target))
    assert result.code == 0, result.err
    assert result.out == ""
    assert f"to {target}" in result.err
    assert graphql.print_schema(graphql.build_schema(target.read_text())) == FAKE_SDL
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644 & ~umask
    # Again over the existing file: replaced whole, its permissions kept, no temp file left.
    target.write_text("old")
    target.chmod(0o600)
    result = await cli("schema", "--output", str(target))
    assert result.code == 0, result.err
    assert target.read_text().startswith('"""Read access')
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["netrex", "netrex.graphql"]


async def test_json(cli: Cli, fake: FakeNetrex, tmp_path: Path) -> None:
    await store_expired_grant(cli, fake)
    result = await cli("schema", "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert graphql.print_schema(graphql.build_client_schema(data)) == FAKE_SDL
    target = tmp_path / "schema.json"
    result = await cli("schema", "--json", "-o", str(target))
    assert result.code == 0, result.err
    assert json.loads(target.read_text()) == data
    assert "introspection JSON" in result.err


async def test_a_user_token(cli: Cli, fake: FakeNetrex, secret_registry) -> None:
    user_token = fake.issue_token(("read",), with_refresh=False).access_token
    secret_registry.add(user_token)
    env = {
        "NETREX_PROVIDER": fake.base_url,
        "NETREX_TOKEN": user_token,
        "NETREX_TOKEN_FILE": str(cli.token_file),
    }
    result = await cli("schema", env=env)
    assert result.code == 0, result.err
    assert "type Query" in result.out
    result = await cli(
        "schema",
        "--user-token",
        "-",
        env={"NETREX_PROVIDER": fake.base_url, "NETREX_TOKEN_FILE": str(cli.token_file)},
        stdin=io.StringIO(user_token + "\n"),
    )
    assert result.code == 0, result.err
    fake.revoke_all()
    result = await cli("schema", env=env)
    assert result.code == 3
    one_error_line(result.err)


async def test_without_graphql_core(
    cli: Cli, fake: FakeNetrex, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store_expired_grant(cli, fake)
    monkeypatch.setitem(sys.modules, "graphql", None)
    result = await cli("schema")
    assert result.code == 2
    line = one_error_line(result.err)
    assert "pip install 'netrex-async[graphql]'" in line
    assert "pip install -e '.[graphql]'" in line
    assert "netrex-async schema --json" in line
    assert "as_json" not in line  # CLI advice, not Python advice
    assert fake.counters.requests["graphql"] == 0
    result = await cli("schema", "--json")  # needs no graphql-core
    assert result.code == 0, result.err


async def test_no_token_stored(cli: Cli) -> None:
    result = await cli("schema")
    assert result.code == 3
    assert "netrex-async login" in one_error_line(result.err)


async def test_network_down(cli: Cli) -> None:
    env = {
        "NETREX_PROVIDER": f"http://127.0.0.1:{free_port()}",
        "NETREX_TOKEN": "u" * 40,
        "NETREX_TOKEN_FILE": str(cli.token_file),
    }
    result = await cli("schema", env=env)
    assert result.code == 4
    assert "network" in one_error_line(result.err)


async def test_introspection_refused(cli: Cli, fake: FakeNetrex) -> None:
    await store_expired_grant(cli, fake)
    fake.inject("graphql", Fault.status(200, body={"data": {"nothing": 1}}))
    result = await cli("schema")
    assert result.code == 1
    assert "introspection" in one_error_line(result.err)


async def test_unwritable_output(cli: Cli, fake: FakeNetrex, tmp_path: Path) -> None:
    await store_expired_grant(cli, fake)
    result = await cli("schema", "-o", str(tmp_path / "missing" / "netrex.graphql"))
    assert result.code == 5
    assert "cannot write" in one_error_line(result.err)
    assert result.out == ""


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_control_characters_are_escaped_on_a_terminal_only(
    fake: FakeNetrex, tmp_path: Path
) -> None:
    evil = graphql.build_schema('"""evil \x1b]0;pwned\x07 \u202e""" type Query { a: Int }')
    answer = {"data": graphql.introspection_from_schema(evil)}
    token = fake.issue_token(("read",), with_refresh=False).access_token
    env = {
        "NETREX_PROVIDER": fake.base_url,
        "NETREX_TOKEN": token,
        "NETREX_TOKEN_FILE": str(tmp_path / "token.json"),
    }
    out = _Terminal()
    fake.inject("graphql", Fault.status(200, body=answer))
    code = await amain(["schema"], env=env, stdout=out, stderr=io.StringIO())
    assert code == 0
    assert "\x1b" not in out.getvalue()
    assert "\u202e" not in out.getvalue()
    # graphql-core's printer escapes C0 controls itself; bidi overrides and C1 are ours.
    assert "pwned\\u0007 \\u202e" in out.getvalue()
    target = tmp_path / "evil.graphql"
    fake.inject("graphql", Fault.status(200, body=answer))
    code = await amain(["schema", "-o", str(target)], env=env, stdout=out, stderr=io.StringIO())
    assert code == 0
    assert "pwned\\u0007 \u202e" in target.read_text()  # the file is the printer's, exactly
