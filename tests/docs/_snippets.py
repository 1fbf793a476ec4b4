"""Find the code blocks of a Markdown page and run them, in order, against a FakeNetrex.

How a page's blocks run (the contract the docs are written to; see tests/docs/README.md):

* Fenced ```` ```python ```` blocks run in order in **one namespace per page**, so a later
  block may use what an earlier one defined. A block with a top-level ``await`` (or
  ``async with``/``async for``) runs as in ``python -m asyncio``, on one event loop that
  lives as long as the page; a block that calls ``asyncio.run(...)`` works too.
* Fenced ``sh``/``bash``/``console`` blocks run with ``bash -euo pipefail`` in the page's
  working folder (a fresh temporary folder, also ``$HOME``).
* Other languages (``text``, ``toml``, ``json``, ...) are shown, not run; a block preceded by
  ``<!-- file: NAME -->`` is written to NAME in the working folder first (a test module,
  a ``pyproject.toml``), so that a later shell block can use it.
* ``<!-- skip: REASON -->`` on the line before a block skips it (REASON is required), and
  ``<!-- needs: redis -->`` runs it only where a Redis server answers.

What talks to "the real provider" talks to a FakeNetrex started for the page in a thread
of its own, by these substitutions and variables:

* the provider URLs ``https://system2.netrex.cz`` and ``https://cloud.camstreamer.com``
  become the fake's base URL;
* ``NETREX_PROVIDER``, ``NETREX_CLIENT_ID``, ``NETREX_CLIENT_SECRET``,
  ``NETREX_REDIRECT_URI`` describe the fake's registered app (a redirect URI on a free
  port; ``http://127.0.0.1:8765/callback`` is registered too); ``NETREX_TOKEN_FILE`` is
  unset (the CLI's default file lies in the temporary ``$HOME``);
* python blocks find a user token the fake issued in ``NETREX_TOKEN``; shell blocks find
  it in the file ``user-token.txt`` instead, because the CLI prefers ``$NETREX_TOKEN`` to
  the stored grant;
* ``BROWSER`` is a scripted browser, so ``webbrowser.open`` (``netrex-async login``)
  approves the consent page and follows the redirect to the loopback receiver;
* ``input()`` in a python block plays the browser on the last authorization URL the page
  printed and returns the URL the browser was sent back to;
* Redis URLs ``redis://...``/``rediss://...`` in a python block become the test Redis
  (``NETREX_TEST_REDIS_URL``, default ``redis://127.0.0.1:6379/15``) and, in the blocks
  that name one, ``key="..."`` arguments get a unique suffix (the keys are deleted after
  the page).
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import io
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from netrex_async.testing import FakeNetrex

T = TypeVar("T")

PYTHON = frozenset({"python", "py", "python3"})
SHELL = frozenset({"sh", "bash", "shell", "console"})
REAL_PROVIDERS = ("https://system2.netrex.cz", "https://cloud.camstreamer.com")
# The redirect URI the examples register (the fake's default); a free port is the default.
EXAMPLE_REDIRECT = "http://127.0.0.1:8765/callback"
DEFAULT_REDIS = "redis://127.0.0.1:6379/15"
BROWSER_SCRIPT = Path(__file__).resolve().parents[1] / "cli" / "scripted_browser.py"

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*(?P<name>skip|file|needs)\s*:\s*(?P<arg>.*?)\s*-->\s*$")
_ANY_COMMENT = re.compile(r"^\s*<!--.*-->\s*$")
_REDIS_URL = re.compile(r"""(["'])rediss?://[^"']*\1""")
_KEY_ARG = re.compile(r"""\bkey=(["'])(?P<key>[^"']+)\1""")
_AUTH_URL = re.compile(r"https?://\S+/oauth2/auth\?\S+")


class SnippetError(AssertionError):
    """A block of a page failed; the message names the page, the line and the reason."""


@dataclass(frozen=True)
class Block:
    """One fenced code block of a Markdown page."""

    path: str
    line: int  # 1-based line of the first line of code (after the opening fence)
    lang: str
    code: str
    skip: str | None = None  # the reason given in <!-- skip: REASON -->
    file: str | None = None  # <!-- file: NAME -->
    needs: str | None = None  # <!-- needs: redis -->

    @property
    def where(self) -> str:
        """``path:line`` of the block, for messages."""
        return f"{self.path}:{self.line}"


def extract_blocks(text: str, path: str = "<page>") -> list[Block]:
    """The fenced code blocks of ``text``, in order, with the directives before each.

    Raises:
        SnippetError: for an unclosed fence, a ``skip`` without a reason, or an unknown
            ``needs``.
    """
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, fence = match["indent"], match["fence"]
        lang = match["info"].strip().split(" ")[0].lower() if match["info"].strip() else ""
        directives = _directives_before(lines, i, path)
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            close = lines[j].strip()
            if close.startswith(fence[0] * len(fence)) and not close.strip(fence[0]):
                break
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j])
            j += 1
        else:
            raise SnippetError(f"{path}:{i + 1}: a code fence is never closed")
        blocks.append(Block(path, i + 2, lang, "\n".join(body) + "\n", **directives))
        i = j + 1
    return blocks


def _directives_before(lines: list[str], fence_line: int, path: str) -> dict[str, str]:
    """The ``<!-- name: arg -->`` comments right above a fence (blank lines allowed)."""
    found: dict[str, str] = {}
    k = fence_line - 1
    while k >= 0 and (not lines[k].strip() or _ANY_COMMENT.match(lines[k])):
        match = _DIRECTIVE.match(lines[k])
        if match:
            name, arg = match["name"], match["arg"]
            if not arg:
                raise SnippetError(f"{path}:{k + 1}: <!-- {name}: ... --> needs a value")
            if name == "needs" and arg != "redis":
                raise SnippetError(f"{path}:{k + 1}: unknown <!-- needs: {arg} -->")
            found.setdefault(name, arg)
        k -= 1
    return found


# -- the fake provider of a page, in a thread of its own ------------------------------------


class ThreadedFake:
    """A FakeNetrex serving from its own thread and event loop.

    The page's own code may block its event loop (``asyncio.run``, ``input()``) while
    the provider must keep answering, so the provider lives elsewhere.
    """

    def __init__(self, **settings: Any) -> None:
        self._settings = settings
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.fake: FakeNetrex | None = None

    def __enter__(self) -> FakeNetrex:
        self._thread.start()
        self.fake = self.run(self._start())
        return self.fake

    def __exit__(self, *exc: object) -> None:
        try:
            if self.fake is not None:
                self.run(self.fake.aclose())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    async def _start(self) -> FakeNetrex:
        fake = FakeNetrex(**self._settings)
        await fake.start()
        return fake

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the fake's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    def call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call ``func`` on the fake's loop (its state is not for two threads at once)."""
        done: Future[T] = Future()

        def call() -> None:
            try:
                done.set_result(func(*args, **kwargs))
            except BaseException as e:  # handed to the caller's thread
                done.set_exception(e)

        self._loop.call_soon_threadsafe(call)
        return done.result(30)


def free_port() -> int:
    """A loopback port nothing listens on (right now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- running a page ------------------------------------------------------------------------


@dataclass
class PageRun:
    """Runs the blocks of one page, in order, in one namespace, against one fake."""

    path: str
    workdir: Path
    redis_url: str | None = None  # None: no Redis here, blocks that need it are skipped
    ran: list[Block] = field(default_factory=list)
    skipped: list[Block] = field(default_factory=list)
    _suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    _redis_keys: set[str] = field(default_factory=set)
    _printed: io.StringIO = field(default_factory=io.StringIO)

    def run(self, blocks: list[Block]) -> None:
        """Run ``blocks``; the first failure raises :class:`SnippetError`."""
        redirect_uri = f"http://127.0.0.1:{free_port()}/callback"
        threaded = ThreadedFake(redirect_uri=redirect_uri, extra_redirect_uris=[EXAMPLE_REDIRECT])
        with _logging_kept(), threaded as fake, self._environment(threaded, fake) as env:
            namespace: dict[str, Any] = {
                "__name__": "__docs__",
                "input": self._input(threaded, fake),
            }
            failure: list[BaseException] = []

            def page() -> None:
                with asyncio.Runner() as runner:
                    try:
                        for block in blocks:
                            self._one(block, runner, namespace, env, fake)
                    except BaseException as e:  # handed to the test's thread
                        failure.append(e)
                    finally:
                        self._delete_redis_keys(runner)

            # A thread of its own: the page's event loop (and any asyncio.run() in it) sets
            # and unsets that thread's current loop, never the one of the test's thread.
            thread = threading.Thread(target=page, name=f"docs page {self.path}")
            thread.start()
            thread.join()
            if failure:
                raise failure[0]

    def _one(
        self,
        block: Block,
        runner: asyncio.Runner,
        namespace: dict[str, Any],
        env: dict[str, str],
        fake: FakeNetrex,
    ) -> None:
        if block.file:
            target = self.workdir / block.file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.code)
        if block.skip or (block.needs == "redis" and self.redis_url is None):
            self.skipped.append(block)
            return
        if block.lang in PYTHON and not block.file:
            self._python(block, runner, namespace, fake)
        elif block.lang in SHELL:
            self._shell(block, env, fake.base_url)
        else:
            return
        self.ran.append(block)

    def _python(
        self, block: Block, runner: asyncio.Runner, namespace: dict[str, Any], fake: FakeNetrex
    ) -> None:
        source = self.substitute(block.code, fake.base_url)
        try:
            code = compile(
                "\n" * (block.line - 1) + source,
                block.path,
                "exec",
                flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
                dont_inherit=True,
            )
        except SyntaxError as e:
            raise SnippetError(f"{block.where}: does not compile: {e}") from e
        tee = _Tee(self._printed, sys.stdout)
        try:
            with contextlib.redirect_stdout(tee), _cwd(self.workdir):
                result = eval(code, namespace)
                if asyncio.iscoroutine(result):
                    runner.run(result)
        except Exception as e:
            raise SnippetError(f"{block.where}: {type(e).__name__}: {e}") from e

    def _shell(self, block: Block, env: dict[str, str], base_url: str) -> None:
        bash = shutil.which("bash") or "/bin/bash"
        script = block.code
        for url in REAL_PROVIDERS:
            script = script.replace(url, base_url)
        try:
            done = subprocess.run(
                [bash, "-euo", "pipefail", "-c", script],
                cwd=self.workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            raise SnippetError(f"{block.where}: the shell block ran for over 120 s") from e
        if done.returncode:
            raise SnippetError(
                f"{block.where}: the shell block exited {done.returncode}\n"
                f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
            )

    def substitute(self, source: str, base_url: str) -> str:
        """``source`` with the real provider's URLs and Redis pointed at test servers."""
        for url in REAL_PROVIDERS:
            source = source.replace(url, base_url)
        # Keys are made unique only in blocks that name a Redis URL: elsewhere ``key=`` is
        # some other argument (``collect(..., key="id")``).
        if self.redis_url is not None and _REDIS_URL.search(source):
            source = _REDIS_URL.sub(repr(self.redis_url), source)

            def unique(match: re.Match[str]) -> str:
                key = f"{match['key']}-docs-{self._suffix}"
                self._redis_keys.add(key)
                return f"key={key!r}"

            source = _KEY_ARG.sub(unique, source)
        return source

    def _input(self, threaded: ThreadedFake, fake: FakeNetrex) -> Callable[[object], str]:
        def play_the_browser(prompt: object = "") -> str:
            urls = _AUTH_URL.findall(self._printed.getvalue())
            if not urls:
                raise SnippetError(f"input({prompt!r}): the page printed no authorization URL")
            return threaded.run(fake.authorize(urls[-1]))

        return play_the_browser

    @contextlib.contextmanager
    def _environment(self, threaded: ThreadedFake, fake: FakeNetrex) -> Iterator[dict[str, str]]:
        user_token = threaded.call(fake.issue_token, scopes="read", with_refresh=False)
        variables = {
            "HOME": str(self.workdir),
            "NETREX_PROVIDER": fake.base_url,
            "NETREX_CLIENT_ID": fake.client_id,
            "NETREX_CLIENT_SECRET": fake.client_secret,
            "NETREX_REDIRECT_URI": fake.redirect_uri,
            "NETREX_TOKEN": user_token.access_token,
            "BROWSER": f"{sys.executable} {BROWSER_SCRIPT} %s",
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
            "NO_PROXY": "*",
        }
        saved = {name: os.environ.get(name) for name in [*variables, "NETREX_TOKEN_FILE"]}
        os.environ.pop("NETREX_TOKEN_FILE", None)
        os.environ.update(variables)
        # The CLI prefers $NETREX_TOKEN to a stored grant: shell blocks find the user token
        # in a file instead, so that their `login`, `status` and `query` use the grant.
        token_file = self.workdir / "user-token.txt"
        token_file.write_text(user_token.access_token + "\n")
        token_file.chmod(0o600)
        shell_env = {k: v for k, v in os.environ.items() if k != "NETREX_TOKEN"}
        try:
            yield shell_env
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def _delete_redis_keys(self, runner: asyncio.Runner) -> None:
        if not self._redis_keys or self.redis_url is None:
            return
        import redis.asyncio

        async def delete() -> None:
            client = redis.asyncio.Redis.from_url(self.redis_url or DEFAULT_REDIS)
            try:
                for key in self._redis_keys:
                    async for name in client.scan_iter(match=f"*{key}*"):
                        await client.delete(name)
            finally:
                await client.aclose()

        runner.run(delete())


class _Tee(io.TextIOBase):
    """Writes to two text streams: what the page printed is kept for ``input()``."""

    def __init__(self, *streams: Any) -> None:
        self._streams = streams

    def write(self, text: str) -> int:
        for stream in self._streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self._streams:
            stream.flush()


@contextlib.contextmanager
def _logging_kept() -> Iterator[None]:
    """Undo what a page does to logging (handlers, levels), so later tests see none of it."""
    loggers = [logging.getLogger(), logging.getLogger("netrex_async")]
    saved = [(lg, lg.level, list(lg.handlers)) for lg in loggers]
    try:
        yield
    finally:
        for lg, level, handlers in saved:
            lg.setLevel(level)
            lg.handlers[:] = handlers


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)
