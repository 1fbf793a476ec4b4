"""``netrex-async login``: loopback receiver, paste mode, and every way it can fail."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import stat
from collections.abc import Callable

import pytest
from yarl import URL

from netrex_async import FileTokenStore
from netrex_async.testing import FakeNetrex

from .conftest import Browser, Cli, PasteInput, Result


def _port_is_closed(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


async def test_login_through_the_loopback_receiver(
    cli: Cli, fake: FakeNetrex, browser: Browser
) -> None:
    result = await cli.login(browser)

    assert "Logged in to " + fake.base_url in result.out
    assert "scopes      read, events" in result.out
    assert "refreshable" in result.out
    assert str(cli.token_file) in result.out
    # the browser went to the provider's consent page, then back to our receiver
    assert URL(browser.opened[0]).path == "/oauth2/auth"
    assert browser.pages[0][0] == 200
    assert "Logged in" in browser.pages[0][1]
    # the receiver is gone
    assert _port_is_closed(URL(fake.redirect_uri).port or 0)
    # the token is stored, 0600, and is the grant's
    token = await FileTokenStore(cli.token_file).load()
    assert token is not None
    assert fake.is_valid(token)
    assert fake.counters.code_exchanges == 1
    assert stat.S_IMODE(cli.token_file.stat().st_mode) == 0o600
    # the app's settings are saved next to it, 0600, without the secret
    config = json.loads(cli.config_file.read_text())
    assert config["client_id"] == fake.client_id
    assert config["provider"] == fake.base_url
    assert config["redirect_uri"] == fake.redirect_uri
    assert fake.client_secret not in cli.config_file.read_text()
    assert stat.S_IMODE(cli.config_file.stat().st_mode) == 0o600


async def test_login_options_reach_the_provider(
    cli: Cli, fake: FakeNetrex, browser: Browser
) -> None:
    fake.require_pkce = True
    fake.accept_params_in = "body"
    await cli.login(browser, "--pkce", "--grant-type-name", "auth_code", "--credentials-in", "body")
    [exchange] = fake.requests_to("token")
    assert exchange.form["grant_type"] == "auth_code"
    assert "code_verifier" in exchange.form
    assert not exchange.query
    auth = fake.requests_to("auth")[0]
    assert auth.query["code_challenge_method"] == "S256"
    config = json.loads(cli.config_file.read_text())
    assert config["grant_type_name"] == "auth_code"
    assert config["credentials_in"] == "body"
    assert config["use_pkce"] is True


async def test_login_without_a_secret_gets_a_temporary_grant(
    cli: Cli, fake: FakeNetrex, browser: Browser
) -> None:
    del cli.env["NETREX_CLIENT_SECRET"]
    result = await cli.login(browser)
    assert "temporary" in result.err
    assert "temporary grant" in result.out
    token = await FileTokenStore(cli.token_file).load()
    assert token is not None
    assert token.refresh_token is None


async def test_flags_win_over_the_environment(cli: Cli, fake: FakeNetrex, browser: Browser) -> None:
    cli.env["NETREX_CLIENT_ID"] = "someone-else"
    cli.env["NETREX_PROVIDER"] = "https://nowhere.invalid"
    other = cli.token_file.with_name("other.json")
    result = await cli.login(
        browser,
        "--client-id",
        fake.client_id,
        "--provider",
        fake.base_url,
        "--token-file",
        str(other),
    )
    assert str(other) in result.out
    assert other.exists()
    assert other.with_name("other.config.json").exists()
    assert not cli.token_file.exists()


async def test_login_with_any_port(cli: Cli, fake: FakeNetrex, browser: Browser) -> None:
    no_port = "http://127.0.0.1/callback"
    refused = await cli("login", "--redirect-uri", no_port, opener=browser)
    assert refused.code == 2
    assert "--any-port" in refused.err
    assert not browser.opened

    browser.register_redirect = True
    result = await cli("login", "--redirect-uri", no_port, "--any-port", opener=browser)
    assert result.code == 0, result.err
    sent = URL(browser.opened[0]).query["redirect_uri"]
    assert URL(sent).port not in (None, 80)
    # what was registered is saved, not the port of the moment
    assert json.loads(cli.config_file.read_text())["redirect_uri"] == no_port


async def test_denied_consent(cli: Cli, fake: FakeNetrex, browser: Browser) -> None:
    fake.consent = "deny"
    result = await cli("login", opener=browser)
    assert result.code == 3
    assert "denied" in result.err
    assert result.err.count("\n") <= 6  # guidance lines and one error line, no traceback
    assert "Traceback" not in result.err
    assert browser.pages[0][0] == 400
    assert "Login failed" in browser.pages[0][1]
    assert not cli.token_file.exists()
    assert fake.counters.code_exchanges == 0


async def test_timeout_without_a_browser_closes_the_port(cli: Cli, fake: FakeNetrex) -> None:
    result = await cli("login", "--no-browser", "--timeout", "0.3")
    assert result.code == 3
    assert "no callback arrived within 0.3 s" in result.err
    assert "/oauth2/auth?" in result.err  # the URL was printed for the user
    assert "Traceback" not in result.err
    assert _port_is_closed(URL(fake.redirect_uri).port or 0)


async def test_receiver_port_in_use(cli: Cli, fake: FakeNetrex, browser: Browser) -> None:
    port = URL(fake.redirect_uri).port
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port or 0))
        blocker.listen()
        result = await cli("login", opener=browser)
    assert result.code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.err
    assert not browser.opened


@pytest.mark.parametrize(
    ("uri", "words"),
    [
        ("https://app.example.com/callback", "not on this machine"),
        ("https://127.0.0.1:8443/callback", "plain http"),
    ],
)
async def test_redirect_uris_the_receiver_cannot_serve(
    cli: Cli, browser: Browser, uri: str, words: str
) -> None:
    result = await cli("login", "--redirect-uri", uri, opener=browser)
    assert result.code == 2
    assert words in result.err
    assert "--paste" in result.err


async def test_missing_client_id(cli: Cli, browser: Browser) -> None:
    del cli.env["NETREX_CLIENT_ID"]
    result = await cli("login", opener=browser)
    assert result.code == 2
    assert "no client id" in result.err


async def test_unknown_scope_is_a_usage_error(cli: Cli, browser: Browser) -> None:
    result = await cli("login", "--scope", "read,teleport", opener=browser)
    assert result.code == 2
    assert "unknown scope 'teleport'" in result.err
    assert "--allow-unknown-scope" in result.err  # the real flag, not the Python argument
    assert "allow_unknown=True" not in result.err
    assert browser.opened == []


async def test_allow_unknown_scope_asks_for_it(cli: Cli, browser: Browser) -> None:
    result = await cli("login", "--scope", "read,teleport", "--allow-unknown-scope", opener=browser)
    assert browser.opened, result.err
    assert URL(browser.opened[0]).query["scope"] == "read,teleport"


async def test_corrupt_token_file_fails_before_the_browser(cli: Cli, browser: Browser) -> None:
    cli.token_file.parent.mkdir(mode=0o700)
    cli.token_file.write_text('{"access_token": "tru')
    cli.token_file.chmod(0o600)
    result = await cli("login", opener=browser)
    assert result.code == 5
    assert str(cli.token_file) in result.err
    assert "corrupt" in result.err
    assert not browser.opened
    assert cli.token_file.read_text() == '{"access_token": "tru'


# -- paste mode ---------------------------------------------------------------------------


async def _wait_for_url(err: io.StringIO) -> str:
    for _ in range(500):
        await asyncio.sleep(0.01)
        for line in err.getvalue().splitlines():
            if "/oauth2/auth?" in line:
                return line.strip()
    raise AssertionError("the authorization URL was never printed")


async def _paste_flow(
    cli: Cli, fake: FakeNetrex, *extra: str, edit: Callable[[str], str] | None = None
) -> Result:
    """login --paste: wait for the URL, "open it in a browser", paste where it led."""
    stdin, err = PasteInput(), io.StringIO()
    task = asyncio.create_task(cli("login", "--paste", *extra, stdin=stdin, err=err))
    callback = await fake.authorize(await _wait_for_url(err))
    stdin.feed(edit(callback) if edit else callback)
    return await task


async def test_paste_mode(cli: Cli, fake: FakeNetrex) -> None:
    result = await _paste_flow(cli, fake)
    assert result.code == 0, result.err
    assert "Paste" in result.err or "paste" in result.err
    assert "Logged in" in result.out
    assert fake.counters.code_exchanges == 1
    assert await FileTokenStore(cli.token_file).load() is not None


async def test_paste_mode_accepts_the_query_string_alone(cli: Cli, fake: FakeNetrex) -> None:
    result = await _paste_flow(cli, fake, edit=lambda url: URL(url).query_string)
    assert result.code == 0, result.err


async def test_paste_mode_refuses_a_wrong_state(cli: Cli, fake: FakeNetrex) -> None:
    def wrong_state(url: str) -> str:
        return str(URL(url).update_query(state="not-the-state-we-sent-at-all"))

    result = await _paste_flow(cli, fake, edit=wrong_state)
    assert result.code == 3
    assert "state" in result.err
    assert fake.counters.code_exchanges == 0  # no token request left the process
    assert not cli.token_file.exists()


async def test_paste_mode_with_nothing_pasted(cli: Cli) -> None:
    stdin = PasteInput()
    stdin.close_input()
    result = await cli("login", "--paste", stdin=stdin)
    assert result.code == 3
    assert "no URL was pasted" in result.err


async def test_network_down(cli: Cli, fake: FakeNetrex) -> None:
    # The provider answers the probe, then goes away while the person is in the browser.
    stdin, err = PasteInput(), io.StringIO()
    task = asyncio.create_task(cli("login", "--paste", stdin=stdin, err=err))
    state = URL(await _wait_for_url(err)).query["state"]
    await fake.aclose()
    stdin.feed(str(URL(fake.redirect_uri).with_query(code="a-code-from-the-browser", state=state)))
    result = await task
    assert result.code == 4
    assert "network:" in result.err
    assert "Traceback" not in result.err
    assert not cli.token_file.exists()


async def test_login_with_the_system_browser(
    cli: Cli, fake: FakeNetrex, monkeypatch: pytest.MonkeyPatch
) -> None:
    import urllib.request
    import webbrowser

    def open_in_browser(url: str, *args: object, **kwargs: object) -> bool:
        # Runs in a worker thread, as webbrowser.open does for the CLI.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(url, timeout=10) as page:
            page.read()
        return True

    monkeypatch.setattr(webbrowser, "open", open_in_browser)
    result = await cli("login")
    assert result.code == 0, result.err
    assert "Opening the browser" in result.err
    assert fake.counters.code_exchanges == 1


async def test_login_when_no_browser_can_be_started(
    cli: Cli, fake: FakeNetrex, monkeypatch: pytest.MonkeyPatch
) -> None:
    import webbrowser

    monkeypatch.setattr(webbrowser, "open", lambda url, *a, **k: False)
    result = await cli("login", "--timeout", "0.3")
    assert result.code == 3
    assert "no browser could be started" in result.err
    assert "/oauth2/auth?" in result.err  # the URL to open by hand


# -- issue 14: fail fast on a mistyped provider, a live grant replaced -------------------


async def test_a_provider_that_does_not_answer_fails_before_the_browser(
    cli: Cli, browser: Browser
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens: connection refused
    cli.env["NETREX_PROVIDER"] = f"http://127.0.0.1:{port}"
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await cli("login", "--timeout", "60", opener=browser)
    assert result.code == 4, result.err
    assert loop.time() - started < 10
    assert "does not answer" in result.err
    assert "NETREX_PROVIDER" in result.err
    assert browser.opened == []
    assert not cli.token_file.exists()


async def test_a_provider_that_never_answers_is_given_a_bounded_time(
    cli: Cli, browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    from netrex_async._cli import _login

    monkeypatch.setattr(_login, "PROBE_TIMEOUT", 0.5)
    silent = socket.socket()  # accepts connections (the backlog), never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        cli.env["NETREX_PROVIDER"] = f"http://127.0.0.1:{silent.getsockname()[1]}"
        result = await asyncio.wait_for(cli("login", "--timeout", "60", opener=browser), 10)
    finally:
        silent.close()
    assert result.code == 4, result.err
    assert "no answer in time" in result.err
    assert browser.opened == []


async def test_login_over_a_live_grant_says_so(
    cli: Cli, fake: FakeNetrex, browser: Browser
) -> None:
    await cli.login(browser)
    old = await FileTokenStore(cli.token_file).load()
    assert old is not None
    result = await cli.login(browser)
    assert "--revoke-old" in result.err
    assert "still valid at the provider" in result.err
    assert old.fingerprint in result.err
    assert fake.is_valid(old)  # left alone without consent


async def test_login_revoke_old_revokes_the_replaced_grant(
    cli: Cli, fake: FakeNetrex, browser: Browser
) -> None:
    await cli.login(browser)
    old = await FileTokenStore(cli.token_file).load()
    assert old is not None
    result = await cli.login(browser, "--revoke-old")
    new = await FileTokenStore(cli.token_file).load()
    assert new is not None
    assert not fake.is_valid(old)
    assert fake.is_valid(new)
    assert f"Revoked the grant stored before ({old.fingerprint})" in result.err
    assert fake.counters.revocations == 1
