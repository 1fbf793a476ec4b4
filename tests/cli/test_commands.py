"""status, refresh, revoke and query against FakeNetrex; usage, config and output rules."""

from __future__ import annotations

import asyncio
import importlib
import io
import json
import logging
import time
from typing import Any

import pytest

from netrex_async import FileTokenStore, Token
from netrex_async.testing import FakeNetrex, Fault

from .conftest import Browser, Cli, free_port


async def _stored(cli: Cli) -> Token:
    token = await FileTokenStore(cli.token_file).load()
    assert token is not None
    return token


async def _store_expired_token(cli: Cli, fake: FakeNetrex) -> Token:
    """A grant whose stored access token has expired (as after a night off)."""
    fresh = fake.issue_token(("read",))
    fake.expire_token(fresh)
    token = Token(
        access_token=fresh.access_token,
        refresh_token=fresh.refresh_token,
        issued_at=time.time() - 7200,
        expires_at=time.time() - 3600,
        scopes=("read",),
    )
    await FileTokenStore(cli.token_file).save(token)
    cli.bind()
    return token


# -- status -------------------------------------------------------------------------------


async def test_status(cli: Cli, fake: FakeNetrex, browser: Browser) -> None:
    await cli.login(browser)
    del cli.env["NETREX_CLIENT_ID"]  # status reads what login saved
    result = await cli("status")
    assert result.code == 0
    token = await _stored(cli)
    assert f"provider     {fake.base_url}" in result.out
    assert f"client id    {fake.client_id}" in result.out
    assert "scopes       read, events" in result.out
    assert "expires in   59 min" in result.out
    assert "refresh      possible" in result.out
    assert f"grant        {token.fingerprint}" in result.out
    assert str(cli.token_file) in result.out


async def test_status_json(cli: Cli, fake: FakeNetrex, browser: Browser) -> None:
    await cli.login(browser)
    result = await cli("status", "--json")
    assert result.code == 0
    info = json.loads(result.out)
    token = await _stored(cli)
    assert info["stored"] is True
    assert info["provider"] == fake.base_url
    assert info["scopes"] == ["read", "events"]
    assert info["can_refresh"] is True
    assert info["expired"] is False
    assert 3500 < info["expires_in"] <= 3600
    assert info["grant_fingerprint"] == token.fingerprint
    assert info["access_token_fingerprint"] == token.access_fingerprint
    assert info["client_secret_set"] is True
    assert info["token_file"] == str(cli.token_file)
    assert info["bound"] is True
    assert info["refused"] is None
    # A fingerprint is named as one: `jq -r .access_token` must not yield a fake bearer.
    assert "access_token" not in info
    assert "refresh_token" not in info
    assert "grant" not in info


async def test_status_says_when_refresh_needs_the_secret(cli: Cli, browser: Browser) -> None:
    await cli.login(browser)
    del cli.env["NETREX_CLIENT_SECRET"]
    result = await cli("status")
    assert "needs NETREX_CLIENT_SECRET" in result.out


async def test_status_without_a_token(cli: Cli) -> None:
    result = await cli("status")
    assert result.code == 3
    assert "No token stored" in result.out
    result = await cli("status", "--json")
    assert result.code == 3
    assert json.loads(result.out)["stored"] is False


async def test_status_of_a_corrupt_token_file(cli: Cli) -> None:
    cli.token_file.parent.mkdir(mode=0o700)
    cli.token_file.write_text("{not json")
    cli.token_file.chmod(0o600)
    result = await cli("status")
    assert result.code == 5
    assert str(cli.token_file) in result.err
    assert "corrupt" in result.err
    assert "Traceback" not in result.err
    assert result.err.count("\n") == 1


async def test_a_corrupt_config_file(cli: Cli, browser: Browser) -> None:
    await cli.login(browser)
    cli.config_file.write_text("[]")
    result = await cli("status")
    assert result.code == 5
    assert str(cli.config_file) in result.err


# -- refresh ------------------------------------------------------------------------------


async def test_refresh(cli: Cli, fake: FakeNetrex, browser: Browser) -> None:
    await cli.login(browser)
    before = await _stored(cli)
    for name in ("NETREX_CLIENT_ID", "NETREX_PROVIDER", "NETREX_REDIRECT_URI"):
        del cli.env[name]  # only the secret is needed now
    result = await cli("refresh")
    assert result.code == 0, result.err
    after = await _stored(cli)
    assert after.access_token != before.access_token
    assert after.refresh_token != before.refresh_token  # the fake rotates them
    assert fake.counters.refreshes == 1
    assert "Refreshed" in result.out
    assert after.fingerprint in result.out


async def test_refresh_of_an_expired_token_refreshes_once(cli: Cli, fake: FakeNetrex) -> None:
    await _store_expired_token(cli, fake)
    result = await cli("refresh")
    assert result.code == 0, result.err
    assert fake.counters.refreshes == 1


async def test_refresh_without_a_token(cli: Cli) -> None:
    result = await cli("refresh")
    assert result.code == 3
    assert "no token is stored" in result.err
    assert "netrex-async login" in result.err


async def test_refresh_of_a_temporary_grant(cli: Cli, browser: Browser) -> None:
    secret = cli.env.pop("NETREX_CLIENT_SECRET")
    await cli.login(browser)
    cli.env["NETREX_CLIENT_SECRET"] = secret
    result = await cli("refresh")
    assert result.code == 3
    assert "temporary" in result.err


async def test_refresh_without_the_secret(cli: Cli, browser: Browser) -> None:
    await cli.login(browser)
    del cli.env["NETREX_CLIENT_SECRET"]
    result = await cli("refresh")
    assert result.code == 2
    assert "NETREX_CLIENT_SECRET" in result.err


async def test_refresh_of_a_revoked_grant_asks_for_a_login(
    cli: Cli, fake: FakeNetrex, browser: Browser
) -> None:
    await cli.login(browser)
    fake.revoke_all()
    result = await cli("refresh")
    assert result.code == 3
    assert "authorize again" in result.err
    assert "Traceback" not in result.err


async def test_refresh_with_the_network_down(cli: Cli, fake: FakeNetrex, browser: Browser) -> None:
    await cli.login(browser)
    await fake.aclose()
    result = await cli("refresh")
    assert result.code == 4
    assert "network:" in result.err
    assert "Traceback" not in result.err


async def test_secret_from_a_file(cli: Cli, fake: FakeNetrex, browser: Browser, tmp_path) -> None:
    await cli.login(browser)
    secret_file = tmp_path / "secret"
    secret_file.write_text(fake.client_secret + "\n")
    del cli.env["NETREX_CLIENT_SECRET"]
    result = await cli("refresh", "--client-secret-file", str(secret_file))
    assert result.code == 0, result.err


# -- revoke -------------------------------------------------------------------------------


async def test_revoke(cli: Cli, fake: FakeNetrex, browser: Browser) -> None:
    await cli.login(browser)
    token = await _stored(cli)
    result = await cli("revoke")
    assert result.code == 0, result.err
    assert not fake.is_valid(token)
    assert fake.grants[0].revoked
    assert not cli.token_file.exists()
    assert cli.config_file.exists()  # not a secret: the next login reuses it
    assert "Revoked" in result.out
    again = await cli("revoke")
    assert again.code == 3


async def test_revoke_with_the_network_down_keeps_the_token(
    cli: Cli, fake: FakeNetrex, browser: Browser
) -> None:
    await cli.login(browser)
    await fake.aclose()
    result = await cli("revoke")
    assert result.code == 4
    assert "--force" in result.err
    assert cli.token_file.exists()
    forced = await cli("revoke", "--force")
    assert forced.code == 0
    assert "warning" in forced.err
    assert not cli.token_file.exists()


async def test_revoke_refused_by_the_provider(cli: Cli, fake: FakeNetrex, browser: Browser) -> None:
    await cli.login(browser)
    fake.inject("revoke", Fault.status(400, body={"success": False, "message": "no \x1b[2J"}))
    result = await cli("revoke")
    assert result.code == 3
    assert "\x1b" not in result.err
    assert "\\x1b[2J" in result.err
    assert cli.token_file.exists()


# -- query --------------------------------------------------------------------------------


async def test_query(cli: Cli, fake: FakeNetrex, browser: Browser) -> None:
    await cli.login(browser)
    result = await cli("query", "{cameraList{name}}")
    assert result.code == 0, result.err
    assert json.loads(result.out) == {"cameraList": [{"name": c.name} for c in fake.cameras]}
    assert result.err == ""


async def test_query_with_variables_from_stdin(
    cli: Cli, fake: FakeNetrex, browser: Browser
) -> None:
    await cli.login(browser)
    camera = fake.cameras[1]
    result = await cli(
        "query",
        "-",
        "--variables",
        json.dumps({"id": camera.id}),
        "--compact",
        stdin=io.StringIO("query($id: ID!) { camera(id: $id) { name } }"),
    )
    assert result.code == 0, result.err
    assert result.out == json.dumps({"camera": {"name": camera.name}}, ensure_ascii=False) + "\n"


async def test_query_refreshes_an_expired_token(cli: Cli, fake: FakeNetrex) -> None:
    await _store_expired_token(cli, fake)
    result = await cli("query", "{me{name}}")
    assert result.code == 0, result.err
    assert fake.counters.refreshes == 1
    assert (await _stored(cli)).expires_at > time.time()  # type: ignore[operator]


async def test_query_graphql_errors(cli: Cli, browser: Browser) -> None:
    await cli.login(browser)
    result = await cli("query", "{cameraList{nam}}")
    assert result.code == 1
    assert result.out == ""
    assert "GraphQL: Cannot query field 'nam'" in result.err
    assert result.err.count("\n") == 1


async def test_query_escapes_control_characters(
    cli: Cli, fake: FakeNetrex, browser: Browser
) -> None:
    await cli.login(browser)
    fake.cameras[0].name = "Evil \x1b]0;pwned\x07\u202e name"
    result = await cli("query", "{cameraList{name}}")
    assert result.code == 0
    assert "\x1b" not in result.out
    assert "\u202e" not in result.out
    assert json.loads(result.out)["cameraList"][0]["name"] == fake.cameras[0].name
    fake.inject(
        "graphql",
        Fault.status(200, body={"errors": [{"message": "bad \x1b[31mred\u202e"}], "data": None}),
    )
    result = await cli("query", "{cameraList{name}}")
    assert result.code == 1
    assert "\x1b" not in result.err
    assert "\u202e" not in result.err
    assert "\\x1b[31mred" in result.err


async def test_query_usage_errors(cli: Cli, browser: Browser) -> None:
    await cli.login(browser)
    result = await cli("query", "{me{name}}", "--variables", "{not json")
    assert result.code == 2
    assert "--variables is not valid JSON" in result.err
    result = await cli("query", "{me{name}}", "--variables", "[1]")
    assert result.code == 2
    assert "JSON object" in result.err
    result = await cli("query", "  ")
    assert result.code == 2


async def test_query_with_a_user_token(cli: Cli, fake: FakeNetrex, secret_registry) -> None:
    user_token = fake.issue_token(("read",), with_refresh=False).access_token
    secret_registry.add(user_token)
    env = {"NETREX_PROVIDER": fake.base_url, "NETREX_TOKEN_FILE": str(cli.token_file)}
    result = await cli("query", "{me{scopes}}", "--user-token", user_token, env=env)
    assert result.code == 0, result.err
    assert json.loads(result.out) == {"me": {"scopes": ["read"]}}
    result = await cli("query", "{me{scopes}}", env={**env, "NETREX_TOKEN": user_token})
    assert result.code == 0, result.err
    result = await cli(
        "query", "{me{scopes}}", "--user-token", "-", env=env, stdin=io.StringIO(user_token)
    )
    assert result.code == 0, result.err
    assert not cli.token_file.exists()

    fake.revoke_all()
    result = await cli("query", "{me{scopes}}", env={**env, "NETREX_TOKEN": user_token})
    assert result.code == 3
    assert "user token" in result.err


async def test_query_without_a_token(cli: Cli) -> None:
    result = await cli("query", "{me{name}}")
    assert result.code == 3
    assert "netrex-async login" in result.err


async def test_query_with_the_network_down(cli: Cli, fake: FakeNetrex, browser: Browser) -> None:
    await cli.login(browser)
    await fake.aclose()
    result = await cli("query", "{me{name}}")
    assert result.code == 4
    assert "network:" in result.err


# -- the whole tool -----------------------------------------------------------------------


async def test_usage_errors_exit_2(cli: Cli) -> None:
    result = await cli("teleport")
    assert result.code == 2
    assert "invalid choice" in result.err
    result = await cli("login", "--timeout", "soon")
    assert result.code == 2
    result = await cli()
    assert result.code == 2
    result = await cli("--help")
    assert result.code == 0
    assert "exit codes" in result.out
    for command in ("login", "status", "refresh", "revoke", "query", "demo"):
        result = await cli(command, "--help")
        assert result.code == 0, command
        assert command in result.out


async def test_an_invalid_provider_url(cli: Cli) -> None:
    result = await cli("status", "--provider", "http://netrex.example.com")
    assert result.code == 3  # no token; status does not need the provider
    assert "https" not in result.err
    cli.env["NETREX_PROVIDER"] = "http://netrex.example.com"
    result = await cli("refresh")
    assert result.code == 2
    assert "https" in result.err


async def test_debug_tells_the_story_without_secrets(
    cli: Cli, fake: FakeNetrex, browser: Browser
) -> None:
    await cli.login(browser)
    fake.expire_all()
    result = await cli("--debug", "query", "{me{name}}")
    assert result.code == 0
    assert "netrex_async.manager" in result.err or "netrex_async.client" in result.err
    assert "refresh" in result.err
    # (every command's output is checked for secrets by the runner)
    logging.getLogger("netrex_async").debug("after the command")  # the logger still works
    assert logging.getLogger("netrex_async").handlers  # only the suite's own capture left


async def test_debug_shows_a_traceback_for_expected_failures_too(cli: Cli) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    cli.env["NETREX_PROVIDER"] = down
    result = await cli("status", "--debug")  # works offline
    assert result.code == 3
    cli.token_file.parent.mkdir(mode=0o700)
    await FileTokenStore(cli.token_file).save(Token(access_token="x" * 20, refresh_token="y" * 20))
    cli.bind(down)
    result = await cli("refresh", "--debug")
    assert result.code == 4
    assert "Traceback" in result.err


async def test_no_command_prints_a_secret(cli: Cli, fake: FakeNetrex, browser: Browser) -> None:
    # Every command, one after the other; the runner checks each output against every
    # secret the fake issued or received (client secret, codes, tokens, verifiers).
    await cli.login(browser, "--pkce")
    for argv in (
        ("status",),
        ("status", "--json"),
        ("--debug", "refresh"),
        ("--debug", "query", "{me{name scopes}}"),
        ("query", "{cameraList{nam}}"),
        ("--debug", "revoke"),
        ("status",),
    ):
        await cli(*argv)
        await asyncio.sleep(0)
    assert len(cli.results) == 8
    assert fake.counters.refreshes >= 1


async def test_the_demo_in_process_prints_no_secret(cli: Cli, secret_registry) -> None:
    # In-process, the demo's own fake provider is known to the secret registry, so its
    # whole output (story, progress, summary, debug log) is checked against its secrets.
    result = await cli(
        "--debug", "demo", "--tasks", "20", "--duration", "1.5", "--lifetime", "1", env={}
    )
    assert result.code == 0, result.text
    assert "Result: every check passed." in result.out
    assert "netrex_async.manager" in result.err  # the debug story
    assert len(secret_registry.known()) > 5


# -- issue 14: warnings, advice in the CLI's words, help, provider URLs, the demo --------


async def test_library_warnings_are_shown_one_line_each(cli: Cli, browser: Browser) -> None:
    await cli.login(browser)
    cli.token_file.chmod(0o644)
    result = await cli("status")
    assert result.code == 0
    assert result.err.splitlines() == [
        "netrex-async: warning: token file had permissions 0o644; restricted to 0600 "
        f"(consider the grant exposed) ({cli.token_file})"
    ]
    assert cli.token_file.stat().st_mode & 0o777 == 0o600
    # Shown once: the next command finds nothing to say.
    assert (await cli("status")).err == ""


async def test_a_closed_stdout_is_not_an_internal_error(cli: Cli, browser: Browser) -> None:
    await cli.login(browser)

    class Closed(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    err = io.StringIO()
    from netrex_async._cli import amain

    try:
        await amain(["status"], env=cli.env, stdout=Closed(), stderr=err)
    except BrokenPipeError:
        pass  # main() turns it into a quiet exit (tests/cli/test_end_to_end.py)
    else:
        raise AssertionError("the broken pipe was swallowed")
    assert "internal error" not in err.getvalue()


async def _corrupt(cli: Cli) -> None:
    cli.token_file.parent.mkdir(mode=0o700, exist_ok=True)
    cli.token_file.write_text('{\n  "access_token": "tru')  # an unterminated string
    cli.token_file.chmod(0o600)


async def test_a_corrupt_token_file_gets_cli_advice(cli: Cli, browser: Browser) -> None:
    await _corrupt(cli)
    for argv in (("status",), ("refresh",), ("query", "{me{name}}"), ("revoke",), ("login",)):
        result = await cli(*argv, opener=browser)
        assert result.code == 5, (argv, result.err)
        assert result.err.count("\n") == 1, result.err
        assert "login --overwrite-corrupt" in result.err
        assert "revoke --force" in result.err
        assert "clear()" not in result.err
        assert "overwrite_corrupt=True" not in result.err
        assert "at at" not in result.err  # was "Unterminated string starting at at line 2"
        assert "Unterminated string at line 2 column 19" in result.err
    assert browser.opened == []  # login failed before the browser


async def test_revoke_force_deletes_a_corrupt_token_file(cli: Cli) -> None:
    await _corrupt(cli)
    result = await cli("revoke", "--force")
    assert result.code == 0, result.err
    assert not cli.token_file.exists()
    assert "corrupt" in result.err


async def test_login_overwrite_corrupt_replaces_a_corrupt_token_file(
    cli: Cli, fake: FakeNetrex, browser: Browser
) -> None:
    await _corrupt(cli)
    result = await cli.login(browser, "--overwrite-corrupt")
    assert "replaced (--overwrite-corrupt)" in result.err
    assert fake.is_valid(await _stored(cli))
    assert (await cli("query", "{me{name}}")).code == 0


async def test_a_rejected_user_token_from_the_environment(
    cli: Cli, fake: FakeNetrex, secret_registry
) -> None:
    user_token = fake.issue_token(("read",), with_refresh=False).access_token
    secret_registry.add(user_token)
    fake.revoke_all()
    result = await cli("query", "{me{name}}", env={**cli.env, "NETREX_TOKEN": user_token})
    assert result.code == 3
    assert "unset NETREX_TOKEN" in result.err
    assert "run `netrex-async login`" not in result.err
    result = await cli("query", "{me{name}}", f"--user-token={user_token}")  # may start with -
    assert result.code == 3
    assert "--user-token" in result.err
    assert "NETREX_TOKEN" not in result.err


async def test_a_wrong_secret_from_a_file_names_the_file_option(
    cli: Cli, browser: Browser, tmp_path
) -> None:
    await cli.login(browser)
    secret_file = tmp_path / "secret"
    secret_file.write_text("not-the-client-secret-of-this-app\n")
    del cli.env["NETREX_CLIENT_SECRET"]
    result = await cli("refresh", "--client-secret-file", str(secret_file))
    assert result.code == 3, result.err
    assert "--client-secret-file" in result.err
    assert str(secret_file) in result.err
    assert "NETREX_CLIENT_SECRET" not in result.err


async def test_query_and_user_token_both_from_stdin(cli: Cli) -> None:
    result = await cli(
        "query", "-", "--user-token", "-", stdin=io.StringIO("{me{name}}\nsome-token-value\n")
    )
    assert result.code == 2
    assert "cannot both be read from stdin" in result.err
    assert "NETREX_TOKEN" in result.err


async def test_help_lists_only_options_that_do_something(cli: Cli) -> None:
    demo = (await cli("demo", "--help")).out
    assert "--token-file" not in demo
    assert "--provider" not in demo
    status = (await cli("status", "--help")).out
    for ignored in (
        "--pkce",
        "--client-secret-file",
        "--grant-type-name",
        "--credentials-in",
        "--redirect-uri",
    ):
        assert ignored not in status, ignored
    for used in ("--token-file", "--provider", "--client-id", "--json"):
        assert used in status, used


async def test_a_provider_url_with_a_path_is_refused(
    cli: Cli, fake: FakeNetrex, browser: Browser
) -> None:
    await cli.login(browser)
    calls = dict(fake.counters.requests)
    for url in (f"{fake.base_url}/api/graphql.php", f"{fake.base_url}/oauth2/"):
        for argv in (("query", "{me{name}}"), ("refresh",), ("login",)):
            result = await cli(*argv, "--provider", url, opener=browser)
            assert result.code == 2, (argv, result.err)
            assert "has a path" in result.err
            assert f"like {fake.base_url} " in result.err
    assert dict(fake.counters.requests) == calls
    assert len(browser.opened) == 1  # the first login only


async def test_the_demos_final_figures_agree_with_its_summary(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refresh that lands while the workers stop is not in the final line's count."""
    # (the package's own name _demo is a function; the module is in sys.modules)
    _demo = importlib.import_module("netrex_async._cli._demo")
    run_traffic = _demo._run_traffic
    enter = _demo._FakeThread.__aenter__
    servers: list[Any] = []

    async def capture(self: Any) -> Any:
        servers.append(self)
        return await enter(self)

    async def traffic(*args: Any, at_stop: Any, **kwargs: Any) -> Any:
        async def stop_then_refresh() -> dict[str, int]:
            seen = await at_stop()
            # As if one more refresh arrived at the provider while requests drained.
            server = servers[0]
            counters = server.fake.counters
            await server.call(lambda: counters.token_requests.update(refresh_token=1))
            return seen

        return await run_traffic(*args, at_stop=stop_then_refresh, **kwargs)

    monkeypatch.setattr(_demo._FakeThread, "__aenter__", capture)
    monkeypatch.setattr(_demo, "_run_traffic", traffic)
    result = await cli("demo", "--tasks", "20", "--duration", "1.5", "--lifetime", "1", env={})
    assert result.code == 0, result.text
    lines = result.out.splitlines()
    progress = [line for line in lines if "token refreshes" in line and "requests" in line]
    final = progress[-1]
    summary = next(line for line in lines if line.strip().startswith("token refreshes "))
    refreshes = int(summary.split()[2])
    assert final.endswith(f"token refreshes {refreshes}"), (final, summary)
    requests_line = next(line for line in lines if line.strip().startswith("requests "))
    requests = int(requests_line.split()[1].replace(",", ""))
    assert f" {requests:,} requests" in final
    assert sum(f" {requests:,} requests" in line for line in progress) == 1  # once
    assert "(+1 while the workers stopped" in result.out


def test_error_records_wait_for_the_outcome() -> None:
    """An ERROR record precedes the exception whose error line says it again: held."""
    from netrex_async._cli._output import Console, WarningLogging

    for ok in (True, False):
        out, err = io.StringIO(), io.StringIO()
        with WarningLogging(Console(out, err)) as logs:
            logging.getLogger("netrex_async.manager").error("the refresh failed for good")
            logging.getLogger("netrex_async.stores").warning("at once")
            assert err.getvalue() == "netrex-async: warning: at once\n"
            logs.finish(ok=ok)
        shown = "netrex-async: error: the refresh failed for good\n" if ok else ""
        assert err.getvalue() == "netrex-async: warning: at once\n" + shown
        assert out.getvalue() == ""
