"""The CLI as a new user meets it (#14): help that fits a terminal and lists what works,
and first errors that say what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from netrex_async import FileTokenStore
from netrex_async.testing import FakeNetrex

from .conftest import Cli, api_command_argv

COMMANDS = ("login", "status", "refresh", "revoke", "query", "schema", "collect", "demo")
API_COMMANDS = ("query", "schema", "collect")


def argv_of(command: str, tmp_path: Path) -> list[str]:
    return api_command_argv(command, tmp_path) if command in API_COMMANDS else [command]


@pytest.mark.parametrize("command", COMMANDS)
async def test_every_commands_help_fits_80_columns(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    result = await cli(command, "--help")
    assert result.code == 0
    too_long = [line for line in result.out.splitlines() if len(line) > 80]
    assert too_long == []


@pytest.mark.parametrize("command", ["refresh", "revoke", "query", "schema", "collect"])
async def test_login_only_options_are_accepted_but_not_listed(
    cli: Cli, tmp_path: Path, command: str
) -> None:
    # PKCE, the code grant's name and the redirect URI matter to login only.
    login_only = ("--pkce", "--grant-type-name", "--redirect-uri")
    shown = (await cli(command, "--help")).out
    assert [option for option in login_only if option in shown] == []
    assert "--credentials-in" in shown  # refreshing uses it
    given = ("--pkce", "--grant-type-name", "auth_code", "--redirect-uri", "http://[::1]/cb")
    result = await cli(*argv_of(command, tmp_path), *given)
    assert result.code == 3, result.err  # no token stored: not a usage error
    login = (await cli("login", "--help")).out
    assert all(option in login for option in login_only)


def test_the_environment_help_names_every_command_that_takes_a_user_token() -> None:
    from netrex_async._cli import build_parser

    epilog = build_parser().epilog or ""
    line = next(line for line in epilog.splitlines() if line.lstrip().startswith("NETREX_TOKEN "))
    assert "query" in line and "schema" in line and "collect" in line


@pytest.mark.parametrize("command", ["query", "schema", "collect", "refresh", "revoke"])
async def test_nothing_set_up_says_how_to_get_a_token_not_a_client_id(
    cli: Cli, tmp_path: Path, command: str
) -> None:
    # A fresh machine: no app settings, no token. What is missing first is a token.
    env = {"NETREX_TOKEN_FILE": str(cli.token_file)}
    result = await cli(*argv_of(command, tmp_path), env=env)
    assert result.code == 3, result.err
    assert result.err.count("\n") == 1
    assert "no token is stored" in result.err
    assert "netrex-async login" in result.err
    assert "client id" not in result.err
    if command in API_COMMANDS:
        # These also take a user token, which the provider recommends for most uses.
        assert "NETREX_TOKEN" in result.err and "--user-token" in result.err


async def test_revoke_force_deletes_a_corrupt_token_file_without_app_settings(cli: Cli) -> None:
    cli.token_file.parent.mkdir(mode=0o700)
    cli.token_file.write_text('{\n  "access_token": "tru')
    result = await cli("revoke", "--force", env={"NETREX_TOKEN_FILE": str(cli.token_file)})
    assert result.code == 0, result.err
    assert not cli.token_file.exists()


async def test_demo_kills_out_of_range_is_a_usage_error(cli: Cli) -> None:
    for kills in ("0", "-1", "101"):
        result = await cli("demo", "--collector", "--kills", kills)
        assert result.code == 2, result.text
        assert "--kills must be between 1 and 100" in result.err


@pytest.mark.parametrize(
    ("given", "like"),
    [
        ("system2.netrex.cz", "https://system2.netrex.cz"),
        ("cloud.camstreamer.com/api/graphql.php", "https://cloud.camstreamer.com"),
    ],
)
async def test_a_provider_host_without_https_gets_the_url_to_give(
    cli: Cli, tmp_path: Path, given: str, like: str
) -> None:
    # As the provider's own pages write it ("e.g. cloud.camstreamer.com").
    for command in ("query", "login", "refresh"):
        result = await cli(*argv_of(command, tmp_path), "--provider", given)
        assert result.code == 2, result.err
        assert result.err.count("\n") == 1
        assert "has no scheme" in result.err
        assert f"like {like} " in result.err
        assert "has a path" not in result.err


async def test_status_names_every_command_that_would_refuse_the_grant(
    cli: Cli, fake: FakeNetrex
) -> None:
    await FileTokenStore(cli.token_file).save(fake.issue_token(("read",)))  # not bound
    result = await cli("status")
    assert result.code == 0
    assert "query, schema, collect, refresh and revoke need --bind" in result.err


def test_every_option_of_every_command_says_what_it_does() -> None:
    import argparse

    from netrex_async._cli import build_parser
    from netrex_async.testing._main import build_parser as fake_server_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    parsers = {**commands.choices, "fake-server": fake_server_parser()}  # (the real one)
    for name, command in parsers.items():
        for action in command._actions:
            if action.help == argparse.SUPPRESS:
                continue  # accepted, deliberately not listed
            assert action.help, (name, action.option_strings or action.dest)


@pytest.mark.parametrize("command", ["query", "schema", "refresh"])
async def test_a_token_file_of_your_own_code_needs_no_redirect_uri(
    cli: Cli, fake: FakeNetrex, tmp_path: Path, command: str
) -> None:
    # Written by the library, bound once with --bind: refreshing and revoking send no
    # redirect URI, so none has to be made up for them.
    await FileTokenStore(cli.token_file).save(fake.issue_token(("read",)))
    del cli.env["NETREX_REDIRECT_URI"]
    result = await cli(*argv_of(command, tmp_path), "--bind")
    assert result.code == 0, result.err
    assert "Recorded" in result.err
    assert (await cli("revoke")).code == 0
