"""A stored grant goes to the provider and app it was issued for, and nowhere else (#14).

Provider B is a plain aiohttp server that records every request it gets, on any path and
with any method, and answers 401 as a real provider would to a token it never issued.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp.web
import pytest

from netrex_async import FileTokenStore, Token
from netrex_async.testing import FakeNetrex

from .conftest import Browser, Cli, api_command_argv


class Recorder:
    """An HTTP server that answers 401 to everything and remembers what it was sent."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.base_url = ""
        self._runner: aiohttp.web.AppRunner | None = None

    async def _handle(self, request: aiohttp.web.Request) -> aiohttp.web.Response:
        self.requests.append(f"{request.method} {request.path_qs}")
        return aiohttp.web.json_response({"error": "invalid_token"}, status=401)

    async def start(self) -> None:
        app = aiohttp.web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = aiohttp.web.AppRunner(app)
        await self._runner.setup()
        site = aiohttp.web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture(name="provider_b")
async def _provider_b() -> AsyncIterator[Recorder]:
    recorder = Recorder()
    await recorder.start()
    try:
        yield recorder
    finally:
        await recorder.aclose()


async def _stored(cli: Cli) -> Token:
    token = await FileTokenStore(cli.token_file).load()
    assert token is not None
    return token


def _one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("netrex-async: error: ")
    return lines[0]


@pytest.mark.parametrize(
    "argv",
    [("query", "{cameraList{name}}"), ("refresh",), ("revoke",), ("revoke", "--force")],
)
async def test_another_provider_gets_nothing(
    cli: Cli, fake: FakeNetrex, browser: Browser, provider_b: Recorder, argv: tuple[str, ...]
) -> None:
    await cli.login(browser)
    before = await _stored(cli)
    calls = dict(fake.counters.requests)
    for how in ("flag", "environment"):
        if how == "flag":
            result = await cli(*argv, "--provider", provider_b.base_url)
        else:
            result = await cli(*argv, env={**cli.env, "NETREX_PROVIDER": provider_b.base_url})
        assert result.code == 2, result.text
        line = _one_error_line(result.err)
        assert fake.base_url in line
        assert provider_b.base_url in line
        assert ("--provider" if how == "flag" else "NETREX_PROVIDER") in line
        assert "nothing was sent" in line
        assert result.out == ""
    assert provider_b.requests == []
    assert dict(fake.counters.requests) == calls  # A got nothing either
    assert await _stored(cli) == before  # and the grant is still there


async def test_another_client_id_gets_nothing(cli: Cli, fake: FakeNetrex, browser: Browser) -> None:
    await cli.login(browser)
    calls = dict(fake.counters.requests)
    result = await cli("query", "{me{name}}", "--client-id", "another-app-id")
    assert result.code == 2
    line = _one_error_line(result.err)
    assert fake.client_id in line
    assert "another-app-id" in line
    assert "--client-id" in line
    assert dict(fake.counters.requests) == calls


async def test_status_shows_the_grants_provider(
    cli: Cli, fake: FakeNetrex, browser: Browser, provider_b: Recorder
) -> None:
    await cli.login(browser)
    env = {**cli.env, "NETREX_PROVIDER": provider_b.base_url}
    result = await cli("status", env=env)
    assert result.code == 0
    assert f"provider     {fake.base_url}\n" in result.out
    assert provider_b.base_url not in result.out
    # Stderr says that the settings in force would be refused.
    assert "NETREX_PROVIDER" in result.err
    assert provider_b.base_url in result.err
    info = json.loads((await cli("status", "--json", env=env)).out)
    assert info["provider"] == fake.base_url
    assert info["client_id"] == fake.client_id
    assert info["bound"] is True
    assert "NETREX_PROVIDER" in info["refused"]
    assert provider_b.requests == []


async def test_a_login_to_another_provider_moves_the_binding(
    cli: Cli, fake: FakeNetrex, browser: Browser, redirect_uri: str
) -> None:
    await cli.login(browser)
    async with FakeNetrex(redirect_uri=redirect_uri, client_id="app-at-provider-b") as other:
        cli.env.update(NETREX_PROVIDER=other.base_url, NETREX_CLIENT_ID=other.client_id)
        cli.env["NETREX_CLIENT_SECRET"] = other.client_secret
        result = await cli("login", "--scope", "read", opener=Browser(other))
        assert result.code == 0, result.err
        assert (await cli("query", "{me{name}}")).code == 0
        assert other.counters.api_calls == 1
        calls = dict(fake.counters.requests)
        back = await cli("query", "{me{name}}", "--provider", fake.base_url)
        assert back.code == 2
        assert dict(fake.counters.requests) == calls


async def test_a_token_file_without_a_record_is_sent_nowhere_until_bound(
    cli: Cli, fake: FakeNetrex, provider_b: Recorder
) -> None:
    # Written by the library, not by `login`: nothing says where it belongs.
    token = fake.issue_token(("read",))
    await FileTokenStore(cli.token_file).save(token)
    result = await cli("query", "{me{name}}")
    assert result.code == 2
    line = _one_error_line(result.err)
    assert "--bind" in line
    assert fake.counters.api_calls == 0
    assert (await cli("status")).code == 0  # status still shows it (no network)
    bound = await cli("query", "{me{name}}", "--bind")
    assert bound.code == 0, bound.err
    assert "Recorded" in bound.err
    assert fake.counters.api_calls == 1
    assert (await cli("query", "{me{name}}")).code == 0  # remembered
    refused = await cli("query", "{me{name}}", "--bind", "--provider", provider_b.base_url)
    assert refused.code == 2  # --bind never re-binds a recorded grant
    assert provider_b.requests == []


async def test_a_config_file_from_0_1_0_binds_to_its_provider(
    cli: Cli, fake: FakeNetrex, provider_b: Recorder
) -> None:
    token = fake.issue_token(("read",))
    await FileTokenStore(cli.token_file).save(token)
    # What login of 0.1.0 wrote next to the token: the settings, no "grant" key.
    cli.config_file.write_text(
        json.dumps(
            {
                "version": 1,
                "provider": fake.base_url,
                "client_id": fake.client_id,
                "redirect_uri": fake.redirect_uri,
                "grant_type_name": "authorization_code",
                "credentials_in": "query",
                "use_pkce": False,
            }
        )
    )
    assert (await cli("query", "{me{name}}")).code == 0
    result = await cli("query", "{me{name}}", "--provider", provider_b.base_url)
    assert result.code == 2
    assert provider_b.requests == []


async def test_revoke_forgets_the_binding(cli: Cli, fake: FakeNetrex, browser: Browser) -> None:
    await cli.login(browser)
    assert (await cli("revoke")).code == 0
    config = json.loads(cli.config_file.read_text())
    assert config["grant"] is None
    assert config["provider"] == fake.base_url  # the settings stay for the next login
    # A token file that appears later is not taken for the revoked grant's.
    await FileTokenStore(cli.token_file).save(fake.issue_token(("read",)))
    assert (await cli("query", "{me{name}}")).code == 2


@pytest.mark.parametrize("command", ["schema", "collect"])
async def test_schema_and_collect_send_the_grant_nowhere_else_either(
    cli: Cli,
    fake: FakeNetrex,
    browser: Browser,
    provider_b: Recorder,
    tmp_path: Path,
    command: str,
) -> None:
    # query, schema and collect build their client one way: the same refusal for each.
    argv = api_command_argv(command, tmp_path)
    await cli.login(browser)
    calls = dict(fake.counters.requests)
    for flag, value in (("--provider", provider_b.base_url), ("--client-id", "another-app-id")):
        result = await cli(*argv, flag, value)
        assert result.code == 2, result.text
        line = _one_error_line(result.err)
        assert flag in line and value in line and "nothing was sent" in line
        assert result.out == ""
    assert provider_b.requests == []
    assert dict(fake.counters.requests) == calls
    # Refused before anything was written, too (collect's --out and --checkpoint).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["netrex"]


@pytest.mark.parametrize("command", ["schema", "collect"])
async def test_schema_and_collect_need_bind_for_an_unbound_grant(
    cli: Cli, fake: FakeNetrex, tmp_path: Path, command: str
) -> None:
    await FileTokenStore(cli.token_file).save(fake.issue_token(("read",)))
    result = await cli(*api_command_argv(command, tmp_path))
    assert result.code == 2
    assert "--bind" in _one_error_line(result.err)
    assert fake.counters.api_calls == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["netrex"]
