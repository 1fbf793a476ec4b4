"""The loopback receiver of ``login``: what it answers, what it takes, what it shows."""

from __future__ import annotations

import asyncio
import io
import socket

import aiohttp
import pytest

from netrex_async._cli._exits import CliError
from netrex_async._cli._login import LoopbackReceiver, check_redirect_uri
from netrex_async._cli._output import Console

from .conftest import free_port

STATE = "the-state-of-this-login-0123456789"


@pytest.fixture(name="uri")
def _uri() -> str:
    return f"http://127.0.0.1:{free_port()}/callback"


@pytest.fixture(name="console")
def _console() -> Console:
    return Console(io.StringIO(), io.StringIO())


async def _get(url: str, **headers: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers=headers, allow_redirects=False) as response:
            return response.status, await response.text()


async def test_answers_its_callback_once_and_nothing_else(uri: str, console: Console) -> None:
    async with LoopbackReceiver(uri, console=console) as receiver:
        receiver.expect(STATE)
        assert receiver.address[0] == "127.0.0.1"
        base = uri.rsplit("/", 1)[0]
        # other paths, favicon, other methods and prefetches do not use up the callback
        assert (await _get(base + "/"))[0] == 404
        assert (await _get(base + "/favicon.ico"))[0] == 404
        assert (await _get(base + "/callbackx?code=c&state=" + STATE))[0] == 404
        async with aiohttp.ClientSession() as session:
            async with session.post(uri + "?code=c&state=" + STATE) as response:
                assert response.status == 405
            async with session.head(uri + "?code=c&state=" + STATE) as response:
                assert response.status == 405
        assert (await _get(uri + "?code=c&state=" + STATE, Purpose="prefetch"))[0] == 503
        assert (await _get(uri + "?code=c&state=" + STATE, **{"Sec-Purpose": "prefetch"}))[0] == 503
        assert not receiver.callback.done()

        page = asyncio.create_task(_get(uri + "?code=the-code&state=" + STATE))
        url = await asyncio.wait_for(asyncio.shield(receiver.callback), 5)
        assert url == uri + "?code=the-code&state=" + STATE
        receiver.finish(True, "The token was saved.")
        status, text = await page
        assert status == 200
        assert "Logged in" in text
        # one shot: a second callback is not taken
        status, text = await _get(uri + "?code=another&state=" + STATE)
        assert status == 410
    # the port is closed once the login is done
    with socket.socket() as s:
        assert s.connect_ex(receiver.address) != 0


async def test_a_callback_with_another_state_is_ignored(uri: str, console: Console) -> None:
    async with LoopbackReceiver(uri, console=console) as receiver:
        receiver.expect(STATE)
        status, text = await _get(uri + "?code=c&state=an-old-login")
        assert status == 400
        assert "does not carry the state of the login in progress" in text
        assert not receiver.callback.done()
        assert receiver.ignored == 1
        assert "without the state of this login" in console.err.getvalue()  # type: ignore[attr-defined]
        # nor does a callback without any state end the login (anyone on this machine
        # could send one), though what it says is shown
        status, text = await _get(uri + "?error=access_denied&error_description=%3Cb%3Eno")
        assert status == 400
        assert "The provider said: access_denied: &lt;b&gt;no" in text
        assert "error=access_denied" in console.err.getvalue()  # type: ignore[attr-defined]
        status, _ = await _get(uri + "?code=c")
        assert status == 400
        assert receiver.ignored == 3
        assert not receiver.callback.done()


async def test_requests_for_another_host_are_refused(uri: str, console: Console) -> None:
    # A page of another site whose name resolves to 127.0.0.1 (DNS rebinding).
    async with LoopbackReceiver(uri, console=console) as receiver:
        receiver.expect(STATE)
        status, _ = await _get(uri + "?code=c&state=" + STATE, Host="evil.example:80")
        assert status == 421
        assert not receiver.callback.done()


async def test_the_page_escapes_what_the_provider_sent(uri: str, console: Console) -> None:
    evil = "<script>alert(document.cookie)</script>"
    async with LoopbackReceiver(uri, console=console) as receiver:
        receiver.expect(STATE)
        query = f"?error=access_denied&error_description={evil}&state={STATE}"
        page = asyncio.create_task(_get(uri + query))
        await asyncio.wait_for(asyncio.shield(receiver.callback), 5)
        receiver.finish(False, f"authorization was denied (access_denied): {evil}")
        status, text = await page
    assert status == 400
    assert "<script>" not in text
    assert "&lt;script&gt;alert(document.cookie)&lt;/script&gt;" in text


async def test_the_page_of_a_real_login_escapes_the_description(uri: str) -> None:
    # Through the whole login: the provider's error_description reaches the page escaped.
    from netrex_async import OAuth2App, Provider
    from netrex_async._cli._login import browser_login

    pages: list[str] = []

    async def provider_refuses(url: str) -> None:
        from yarl import URL

        state = URL(url).query["state"]
        callback = (
            f"{uri}?error=server_error&error_description=%3Cscript%3Ex()%3C/script%3E&state={state}"
        )
        pages.append((await _get(callback))[1])

    app = OAuth2App(
        client_id="client-1",
        client_secret="a-client-secret-1234",
        redirect_uri=uri,
        provider=Provider("http://127.0.0.1:9"),
    )
    console = Console(io.StringIO(), io.StringIO())
    with pytest.raises(Exception, match="server_error"):
        await browser_login(
            app, "read", console=console, opener=provider_refuses, within=5, narrate=False
        )
    assert "<script>" not in pages[0]
    assert "&lt;script&gt;x()&lt;/script&gt;" in pages[0]


@pytest.mark.parametrize(
    ("uri", "any_port", "expected"),
    [
        ("http://127.0.0.1:8765/callback", False, ("127.0.0.1", 8765, "/callback")),
        ("http://localhost:8765/cb", False, ("127.0.0.1", 8765, "/cb")),
        ("http://[::1]:8765/cb", False, ("::1", 8765, "/cb")),
        ("http://127.0.0.1/callback", True, ("127.0.0.1", 0, "/callback")),
        ("http://127.0.0.1:0/callback", True, ("127.0.0.1", 0, "/callback")),
        ("http://127.0.0.1:8765", False, ("127.0.0.1", 8765, "/")),
    ],
)
def test_where_the_receiver_listens(uri: str, any_port: bool, expected: tuple) -> None:
    assert check_redirect_uri(uri, any_port=any_port) == expected


@pytest.mark.parametrize(
    ("uri", "words"),
    [
        ("http://127.0.0.1/callback", "has no port"),
        ("http://127.0.0.1:0/callback", "has no port"),
        ("http://0.0.0.0:8765/callback", "not on this machine"),
        ("http://192.168.1.5:8765/callback", "not on this machine"),
        ("https://127.0.0.1:8765/callback", "plain http"),
    ],
)
def test_redirect_uris_refused(uri: str, words: str) -> None:
    with pytest.raises(CliError, match=words):
        check_redirect_uri(uri, any_port=False)
