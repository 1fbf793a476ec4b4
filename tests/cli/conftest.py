"""Fixtures of the CLI tests: a fake provider, a scripted browser, and a CLI runner.

Commands run in-process through ``amain`` (the same event loop as the fake), with their
own stdout, stderr, stdin and environment, so nothing of the developer's environment
(``NETREX_*``) leaks in. Every output is checked against every secret the test knows
(the suite-wide ``secret_registry``: all that each FakeNetrex issued or received).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import queue
import socket
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest
from _redis_server import redis_server  # noqa: F401  (a fixture: a Redis of the test's own)
from yarl import URL

from netrex_async import set_testing
from netrex_async._cli import amain
from netrex_async.testing import FakeNetrex


@pytest.fixture(name="no_backoff", autouse=True)
def _no_backoff() -> Iterator[None]:
    """Retries without sleeping (network-down cases stay fast)."""
    old = set_testing(True)
    try:
        yield
    finally:
        set_testing(old)


def free_port() -> int:
    """A loopback port nothing listens on (right now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(name="redirect_uri")
def _redirect_uri() -> str:
    return f"http://127.0.0.1:{free_port()}/callback"


@pytest.fixture(name="fake")
async def _fake(redirect_uri: str) -> AsyncIterator[FakeNetrex]:
    async with FakeNetrex(redirect_uri=redirect_uri) as fake:
        yield fake


@attrs.define
class Result:
    """What one command did."""

    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


class PasteInput(io.TextIOBase):
    """A stdin whose lines the test supplies while the command waits for them."""

    def __init__(self) -> None:
        self._lines: queue.Queue[str] = queue.Queue()

    def feed(self, line: str) -> None:
        self._lines.put(line if line.endswith("\n") else line + "\n")

    def close_input(self) -> None:
        self._lines.put("")

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        try:
            return self._lines.get(timeout=10)
        except queue.Empty:
            return ""

    def read(self, size: int | None = -1) -> str:
        return self.readline()


@attrs.define
class Browser:
    """A scripted browser: follows the provider's redirect to the loopback receiver.

    ``pages`` keeps ``(status, html)`` of each callback page it was shown.
    """

    fake: FakeNetrex | None = None
    register_redirect: bool = False
    pages: list[tuple[int, str]] = attrs.field(factory=list)
    opened: list[str] = attrs.field(factory=list)

    async def __call__(self, url: str) -> None:
        self.opened.append(url)
        if self.register_redirect and self.fake is not None:
            # --any-port: the provider must know the port the receiver chose.
            self.fake.add_redirect_uri(URL(url).query["redirect_uri"])
        async with aiohttp.ClientSession() as session:
            async with session.get(url, allow_redirects=False) as response:
                assert response.status == 302, await response.text()
                location = response.headers["Location"]
            async with session.get(location, allow_redirects=False) as page:
                self.pages.append((page.status, await page.text()))


@pytest.fixture(name="browser")
def _browser(fake: FakeNetrex) -> Browser:
    return Browser(fake)


class Cli:
    """Runs ``netrex-async`` commands in-process against the test's fake provider."""

    def __init__(self, fake: FakeNetrex, tmp_path: Path, registry: Any) -> None:
        self.fake = fake
        self.token_file = tmp_path / "netrex" / "token.json"
        self.config_file = tmp_path / "netrex" / "token.config.json"
        self.registry = registry
        self.env: dict[str, str] = {
            "NETREX_PROVIDER": fake.base_url,
            "NETREX_CLIENT_ID": fake.client_id,
            "NETREX_CLIENT_SECRET": fake.client_secret,
            "NETREX_REDIRECT_URI": fake.redirect_uri,
            "NETREX_TOKEN_FILE": str(self.token_file),
        }
        self.results: list[Result] = []

    async def __call__(
        self,
        *argv: str,
        env: Mapping[str, str] | None = None,
        stdin: io.TextIOBase | None = None,
        opener: Any = None,
        err: io.StringIO | None = None,
    ) -> Result:
        out = io.StringIO()
        err = err or io.StringIO()
        code = await amain(
            list(argv),
            env=self.env if env is None else env,
            stdin=stdin or io.StringIO(""),  # type: ignore[arg-type]
            stdout=out,
            stderr=err,
            opener=opener,
        )
        result = Result(int(code), out.getvalue(), err.getvalue())
        self.results.append(result)
        # No command ever shows a secret: checked after every command.
        self.registry.check(result.out, result.err)
        return result

    def bind(self, provider: str | None = None, client_id: str | None = None) -> None:
        """Record the stored grant's provider and app, as `login` does."""
        from netrex_async._cli._config import AppConfig, Binding, save_config

        provider = provider or self.fake.base_url
        client_id = client_id or self.fake.client_id
        self.config_file.parent.mkdir(mode=0o700, exist_ok=True)
        config = AppConfig(
            provider=provider,
            client_id=client_id,
            redirect_uri=self.fake.redirect_uri,
            bound=Binding(provider, client_id),
        )
        save_config(self.config_file, config)

    async def login(self, browser: Browser, *argv: str) -> Result:
        result = await self("login", "--scope", "read,events", *argv, opener=browser)
        assert result.code == 0, result.err
        return result


@pytest.fixture(name="cli")
def _cli(fake: FakeNetrex, tmp_path: Path, secret_registry: Any) -> Cli:
    return Cli(fake, tmp_path, secret_registry)


def clean_env(**extra: str) -> dict[str, str]:
    """The process environment without NETREX_* (for subprocesses), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETREX_")}
    env.update(extra)
    return env


#: The processes spawn_cli() started during the test running now.
_SPAWNED: list[asyncio.subprocess.Process] = []


async def spawn_cli(fake: FakeNetrex, args: list[str], **env: str) -> asyncio.subprocess.Process:
    """``netrex-async ARGS`` as a process with a user token of ``fake`` (its provider set
    by the environment, plus ``env``), stdout and stderr piped. Killed after the test if
    it still runs then (a failed test leaves no collector behind)."""
    token = fake.issue_token(("read",))
    environment = clean_env(NETREX_PROVIDER=fake.base_url, NETREX_TOKEN=token.access_token, **env)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "netrex_async",
        *args,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _SPAWNED.append(proc)
    return proc


@pytest.fixture(name="reap_cli", autouse=True)
async def reap_cli() -> AsyncIterator[None]:
    """Kill what spawn_cli() started and is still running when the test ends."""
    yield
    while _SPAWNED:
        proc = _SPAWNED.pop()
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.communicate()


def api_command_argv(command: str, tmp_path: Path) -> list[str]:
    """Arguments that make ``query``, ``schema`` or ``collect`` call the API (a collect's
    checkpoint and output in ``tmp_path``)."""
    if command == "query":
        return ["query", "{me{name}}"]
    if command == "schema":
        return ["schema", "--json"]
    return [
        "collect",
        "query($after: ID) { events(afterId: $after) { id type } }",
        "--items",
        "events",
        "--cursor",
        "after",
        "--key",
        "id",
        "--checkpoint",
        str(tmp_path / "events.checkpoint"),
        "--out",
        str(tmp_path / "events.jsonl"),
    ]
