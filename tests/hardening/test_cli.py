"""The CLI: its loopback receiver under hostile callbacks, and its output never showing a
secret, whatever the provider does (every output goes through ``secret_registry``)."""

from __future__ import annotations

import io
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import attrs
import pytest
from yarl import URL

from netrex_async._cli import amain
from netrex_async._stores._file import FileTokenStore
from netrex_async.testing import FakeNetrex, Fault

HOSTILE = (
    "<script>alert(document.cookie)</script><img src=x onerror=alert(1)>"
    "\x1b[2J\x1b[31mRED\x07\r\nnetrex-async: Logged in\u202edesrever\u2028x"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@attrs.define
class Run:
    code: int
    out: str
    err: str


@attrs.define
class Cli:
    fake: FakeNetrex
    token_file: Path
    registry: object
    pages: list[tuple[int, str, dict[str, str]]] = attrs.field(factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {
            "NETREX_PROVIDER": self.fake.base_url,
            "NETREX_CLIENT_ID": self.fake.client_id,
            "NETREX_CLIENT_SECRET": self.fake.client_secret,
            "NETREX_REDIRECT_URI": self.fake.redirect_uri,
            "NETREX_TOKEN_FILE": str(self.token_file),
        }

    async def __call__(
        self,
        *argv: str,
        opener: Callable[[str], Awaitable[None]] | None = None,
        stdin: str = "",
    ) -> Run:
        out, err = io.StringIO(), io.StringIO()
        code = await amain(
            list(argv),
            env=self.env,
            stdin=io.StringIO(stdin),
            stdout=out,
            stderr=err,
            opener=opener,
        )
        run = Run(int(code), out.getvalue(), err.getvalue())
        self.registry.check(run.out, run.err)  # type: ignore[attr-defined]
        return run

    async def get(self, url: str, method: str = "GET", **headers: str) -> int:
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, url, headers=headers, allow_redirects=False) as resp,
        ):
            text = await resp.text()
            self.pages.append((resp.status, text, dict(resp.headers)))
            return resp.status

    async def browser(self, url: str) -> None:
        """A browser that approves at the fake and follows its redirect to the receiver."""
        await self.get(await self.fake.authorize(url))


@pytest.fixture(name="cli")
async def _cli(tmp_path: Path, secret_registry: object) -> AsyncIterator[Cli]:
    redirect_uri = f"http://127.0.0.1:{_free_port()}/callback"
    async with FakeNetrex(redirect_uri=redirect_uri) as fake:
        yield Cli(fake, tmp_path / "netrex" / "token.json", secret_registry)


def _assert_terminal_safe(text: str) -> None:
    for c in text:
        assert c in "\n" or not (ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F), repr(c)
    assert "\u202e" not in text
    assert "\u2028" not in text
    assert not any(line.startswith("netrex-async: Logged in") for line in text.splitlines())


def _assert_page_safe(page: str) -> None:
    assert "<script>" not in page
    assert "<img" not in page
    assert "&lt;script&gt;" in page
    assert "\x1b" not in page
    assert "\x07" not in page


async def test_hostile_callback_error_is_escaped_on_the_page_and_the_terminal(cli):
    async def opener(url: str) -> None:
        state = URL(url).query["state"]
        callback = URL(cli.fake.redirect_uri).with_query(
            state=state, error="server_error", error_description=HOSTILE
        )
        await cli.get(str(callback))

    run = await cli("login", "--timeout", "10", opener=opener)
    assert run.code != 0
    assert cli.fake.counters.requests["token"] == 0
    status, page, headers = cli.pages[-1]
    assert status == 400
    _assert_page_safe(page)
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    _assert_terminal_safe(run.err + run.out)
    assert "\\x1b" in run.err  # shown, escaped
    assert not cli.token_file.exists()


async def test_receiver_refuses_wrong_paths_methods_hosts_and_states_then_logs_in(cli):
    statuses: dict[str, int] = {}

    async def opener(url: str) -> None:
        state = URL(url).query["state"]
        callback = URL(cli.fake.redirect_uri)
        good = callback.with_query(state=state, code="not-a-real-code-123")
        statuses["root"] = await cli.get(str(callback.with_path("/")))
        statuses["favicon"] = await cli.get(str(callback.with_path("/favicon.ico")))
        statuses["longer path"] = await cli.get(str(good.with_path("/callbackx")))
        for method in ("POST", "PUT", "DELETE", "HEAD"):
            statuses[method] = await cli.get(str(good), method=method)
        statuses["other host"] = await cli.get(str(good), Host="evil.example:80")
        statuses["prefetch"] = await cli.get(str(good), Purpose="prefetch")
        wrong = callback.with_query(
            state="forged-state-0123456789", error="x", error_description=HOSTILE
        )
        statuses["wrong state"] = await cli.get(str(wrong))
        _assert_page_safe(cli.pages[-1][1])
        statuses["two states"] = await cli.get(
            str(callback) + f"?state={state}&state={state}&code=not-a-real-code-123"
        )
        await cli.browser(url)  # the real callback still works: nothing was used up

    run = await cli("login", "--timeout", "10", opener=opener)
    assert run.code == 0, run.err
    assert statuses == {
        "root": 404,
        "favicon": 404,
        "longer path": 404,
        "POST": 405,
        "PUT": 405,
        "DELETE": 405,
        "HEAD": 405,
        "other host": 421,
        "prefetch": 503,
        "wrong state": 400,
        "two states": 400,
    }
    assert cli.pages[-1][0] == 200
    assert cli.fake.counters.code_exchanges == 1
    assert await FileTokenStore(cli.token_file).load() is not None
    _assert_terminal_safe(run.err + run.out)


async def test_no_command_shows_a_secret_whatever_the_provider_does(cli):
    # Every run is checked against every secret the fake issued or received.
    assert (await cli("--debug", "login", "--scope", "read,write", opener=cli.browser)).code == 0
    for argv in (("status",), ("status", "--json"), ("--debug", "query", "{cameraList{name}}")):
        run = await cli(*argv)
        assert run.code == 0, run.err
    assert (await cli("--debug", "refresh")).code == 0
    for fault in (
        Fault.malformed("html"),
        Fault.status(503),
        Fault.drop(),
        Fault.status(400, body={"error": "invalid_grant"}),
    ):
        cli.fake.inject("token", fault, times=None)
        assert (await cli("--debug", "refresh")).code != 0
        cli.fake.clear_faults()
    # The API echoes the bearer token in its error answers.
    grant = cli.fake.grants[0]
    body = f"denied for Bearer {grant.access_token}"
    cli.fake.inject("graphql", Fault.status(500, body=body), times=None)
    assert (await cli("--debug", "query", "{cameraList{name}}")).code != 0
    cli.fake.clear_faults()
    assert (await cli("--debug", "revoke")).code == 0
    assert (await cli("--debug", "query", "{cameraList{name}}")).code != 0
    assert (await cli("status")).code != 0


async def test_pasted_callback_with_a_hostile_error_is_escaped(cli):
    async def paste_flow() -> Run:
        return await cli(
            "login",
            "--paste",
            "--timeout",
            "10",
            stdin=f"{cli.fake.redirect_uri}?state=whatever-state-1234&error=x&"
            f"error_description={HOSTILE.replace('&', '%26')}\n",
        )

    run = await paste_flow()
    assert run.code != 0
    _assert_terminal_safe(run.err + run.out)
    assert cli.fake.counters.requests["token"] == 0
