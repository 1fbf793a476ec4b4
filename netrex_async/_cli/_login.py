"""``login``: the browser step of the authorization code flow, and its loopback receiver.

The receiver is a tiny aiohttp.web server on a loopback address only (never 0.0.0.0),
on the port of the registered redirect URI. It takes one callback: a GET of its callback
path, addressed to a loopback host, carrying the state of the login in progress. Anything
else is answered and ignored, so that it cannot end the login: 404 (other paths, the
favicon), 405 (other methods), 503 (browser prefetches), 421 (another Host: DNS
rebinding), 400 (no state or another one: an old tab, another program, a forged link).
Its page escapes whatever the provider put in the URL.
"""

from __future__ import annotations

import asyncio
import html
import logging
import secrets
import shlex
import subprocess
import threading
import webbrowser
from collections.abc import Awaitable, Callable
from typing import TextIO

import aiohttp
import attrs
from aiohttp import web
from yarl import URL

from .._oauth import OAuth2Client
from .._oauth_protocol import AuthorizationRequest, OAuth2App
from .._provider import Provider, is_loopback_host
from .._redact import safe_text
from .._token import Token
from ._exits import CliError, ExitCode
from ._output import Console

__all__ = [
    "LoopbackReceiver",
    "Opener",
    "browser_command_opener",
    "browser_login",
    "http_browser",
    "paste_login",
    "probe_provider",
    "system_browser",
]

log = logging.getLogger("netrex_async.cli")

#: Opens the authorization URL: a browser, a command, or (in tests and the demo) HTTP.
Opener = Callable[[str], Awaitable[None]]

#: How long the callback page waits for the code exchange before answering anyway.
_PAGE_WAIT = 60.0

_PREFETCH_HEADERS = ("Purpose", "Sec-Purpose", "X-Purpose", "X-Moz")

#: How long ``login`` lets the provider take to answer before the browser step.
PROBE_TIMEOUT = 10.0


def _is_prefetch(request: web.BaseRequest) -> bool:
    for name in _PREFETCH_HEADERS:
        value = request.headers.get(name, "").lower()
        if "prefetch" in value or "preview" in value or "prerender" in value:
            return True
    return False


def _page(status: int, title: str, message: str) -> web.Response:
    body = (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:40em;margin:4em auto;"
        "padding:0 1em;line-height:1.5}</style></head>"
        f"<body><h1>{html.escape(title)}</h1><p>{html.escape(message)}</p></body></html>\n"
    )
    return web.Response(
        status=status,
        text=body,
        content_type="text/html",
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
            "Connection": "close",
        },
    )


def _plain(status: int, text: str) -> web.Response:
    return web.Response(
        status=status,
        text=text + "\n",
        headers={"Cache-Control": "no-store", "Connection": "close"},
    )


@attrs.frozen
class _Outcome:
    status: int
    title: str
    message: str


def check_redirect_uri(redirect_uri: str, *, any_port: bool) -> tuple[str, int, str]:
    """The address, port and path the receiver must serve for ``redirect_uri``.

    Raises:
        CliError: The URI is not plain http on a loopback host, or has no port (unless
            ``any_port``): the receiver could not get the callback (exit code 2).
    """
    url = URL(redirect_uri)
    if not is_loopback_host(url.host):
        raise CliError(
            f"the redirect URI {redirect_uri} is not on this machine, so no local receiver "
            "can get the callback: use --paste, or register a loopback URI such as "
            "http://127.0.0.1:8765/callback"
        )
    if url.scheme != "http":
        raise CliError(
            f"the redirect URI {redirect_uri} uses {url.scheme}; the local receiver speaks "
            "plain http on 127.0.0.1 only: register an http://127.0.0.1:PORT/... URI or use --paste"
        )
    host = (url.host or "").strip("[]")
    address = host if host not in ("localhost",) and not host.endswith("localhost") else "127.0.0.1"
    port = url.explicit_port
    if not port:
        if not any_port:
            raise CliError(
                f"the redirect URI {redirect_uri} has no port: the provider sends the browser "
                "back to exactly the registered URI, so the receiver must listen on its port. "
                "Register a URI with a fixed port (http://127.0.0.1:8765/callback), or pass "
                "--any-port if your provider accepts any port on a loopback redirect URI"
            )
        port = 0
    return address, port, url.path or "/"


class LoopbackReceiver:
    """A one-shot HTTP receiver for the OAuth2 callback, on a loopback address.

    Use as an async context manager: the port is open inside the ``async with`` only.

    Args:
        redirect_uri: The registered redirect URI (``http``, loopback host, a port).
        any_port: Listen on a free port when the URI has no port (or port 0), and tell
            the caller the actual URI through :attr:`redirect_uri`.
        console: Where to say that a stray callback was ignored.
    """

    def __init__(
        self, redirect_uri: str, *, any_port: bool = False, console: Console | None = None
    ):
        self._address, self._port, self._path = check_redirect_uri(redirect_uri, any_port=any_port)
        self._registered = URL(redirect_uri)
        self._console = console
        self._runner: web.BaseRunner | None = None
        self._state: str | None = None
        self._callback: asyncio.Future[str] | None = None
        self._outcome: asyncio.Future[_Outcome] | None = None
        self._bound_port: int | None = None
        self.ignored = 0

    @property
    def redirect_uri(self) -> str:
        """The redirect URI the provider must use (with the bound port, after start)."""
        if self._bound_port is None or self._registered.explicit_port:
            return str(self._registered)
        return str(self._registered.with_port(self._bound_port))

    @property
    def address(self) -> tuple[str, int]:
        """The listening address and port (after start)."""
        if self._bound_port is None:
            raise RuntimeError("the receiver has not been started")
        return self._address, self._bound_port

    async def __aenter__(self) -> LoopbackReceiver:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Listen on the loopback address.

        Raises:
            CliError: The port is in use or cannot be bound (exit code 2).
        """
        loop = asyncio.get_running_loop()
        self._callback = loop.create_future()
        self._outcome = loop.create_future()
        server = web.Server(self._handle, access_log=None)  # the URL holds the code
        runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._address, self._port)
            await site.start()
        except OSError as e:
            await runner.cleanup()
            raise CliError(
                f"cannot listen on {self._address}:{self._port} for the callback "
                f"({e.strerror or e}): is another login or program using that port?"
            ) from None
        self._runner = runner
        self._bound_port = int(runner.addresses[0][1])
        log.debug("callback receiver listening on %s:%s", self._address, self._bound_port)

    async def aclose(self) -> None:
        """Answer a waiting browser, then close the port. Idempotent."""
        if self._outcome is not None and not self._outcome.done():
            self._outcome.set_result(
                _Outcome(410, "Login ended", "This login has ended. You can close this window.")
            )
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
            log.debug("callback receiver closed")

    def expect(self, state: str) -> None:
        """The state of the login in progress: only a callback carrying it is taken."""
        self._state = state

    @property
    def callback(self) -> asyncio.Future[str]:
        """The future the callback URL arrives in."""
        assert self._callback is not None, "start() first"
        return self._callback

    def finish(self, ok: bool, message: str) -> None:
        """What the browser's page says once the code exchange is done."""
        if self._outcome is not None and not self._outcome.done():
            title = "Logged in" if ok else "Login failed"
            self._outcome.set_result(_Outcome(200 if ok else 400, title, message))

    def _addressed_to_us(self, host_header: str) -> bool:
        try:
            url = URL(f"http://{host_header}")
        except ValueError:
            return False
        return is_loopback_host(url.host) and url.port == self._bound_port

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.path != self._path:
            return _plain(404, "Not found")  # favicon.ico and friends
        if request.method != "GET":
            return _plain(405, "Method not allowed")
        if _is_prefetch(request):
            # A prefetch or preview must not use up the one-shot callback; a non-2xx
            # answer makes the browser drop it and load the page for real.
            return _plain(503, "Not for prefetching")
        assert self._callback is not None
        assert self._outcome is not None
        if self._callback.done():
            return _page(
                410, "Login finished", "This login has finished. You can close this window."
            )
        if not self._addressed_to_us(request.host):
            # DNS rebinding: a page of another site, resolved to 127.0.0.1.
            return _plain(421, "Misdirected request")
        states = request.query.getall("state", [])
        expected = self._state
        if (
            expected is None
            or len(states) != 1
            or not secrets.compare_digest(states[0].encode(), expected.encode())
        ):
            # Not the login in progress (an old tab, another program, a forged link): it
            # must not end this login. Answer, and keep waiting.
            self.ignored += 1
            error = request.query.get("error")
            said = f" (it says error={safe_text(error, limit=80)})" if error else ""
            if self._console is not None:
                self._console.warn(
                    f"ignored a callback without the state of this login{said}; still waiting"
                )
            message = (
                "This callback does not carry the state of the login in progress, so it was "
                "ignored. Use the link shown in the terminal, or start the login again."
            )
            if error:
                description = request.query.get("error_description")
                message += f" The provider said: {safe_text(error, limit=80)}" + (
                    f": {safe_text(description, limit=300)}" if description else ""
                )
            return _page(400, "Not this login", message)
        base = (
            self._registered.with_port(self._bound_port) if self._bound_port else self._registered
        )
        url = str(base.with_query(None))
        if request.query_string:
            url += "?" + request.query_string
        self._callback.set_result(url)
        try:
            outcome = await asyncio.wait_for(asyncio.shield(self._outcome), _PAGE_WAIT)
        except TimeoutError:
            outcome = _Outcome(200, "Received", "Return to the terminal to see the result.")
        return _page(outcome.status, outcome.title, outcome.message)


# -- the provider answers? -------------------------------------------------------------


async def probe_provider(provider: Provider, *, within: float | None = None) -> None:
    """Check that the provider answers HTTP at all, before a person is sent to the browser.

    One ``HEAD`` of the base URL, no redirect followed, nothing secret sent; any HTTP
    answer will do (what the provider says there is not documented).

    Args:
        provider: The provider to probe.
        within: Seconds to wait for an answer (default :data:`PROBE_TIMEOUT`).

    Raises:
        CliError: No answer within ``within`` seconds: the host is mistyped, down or
            unreachable (exit code 4).
    """
    within = PROBE_TIMEOUT if within is None else within
    timeout = aiohttp.ClientTimeout(total=within, sock_connect=min(within, 5.0))
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout, cookie_jar=aiohttp.DummyCookieJar()) as session,
            session.head(provider.base_url + "/", allow_redirects=False) as response,
        ):
            log.debug(
                "the provider answered the probe with HTTP %s",
                response.status,
                extra={"event": "cli.probe"},
            )
    except (aiohttp.ClientError, TimeoutError, OSError) as e:
        reason = "no answer in time" if isinstance(e, TimeoutError) else safe_text(e, limit=200)
        raise CliError(
            f"the provider {provider.base_url} does not answer ({reason}): check --provider or "
            "NETREX_PROVIDER (a typo in the host name?) and the network",
            ExitCode.NETWORK,
        ) from None


# -- openers ----------------------------------------------------------------------------


async def system_browser(url: str) -> None:
    """Open ``url`` in the user's default browser (or say it could not)."""
    try:
        opened = await asyncio.to_thread(webbrowser.open, url)
    except webbrowser.Error:
        opened = False
    if not opened:
        raise _OpenerFailed("no browser could be started: open the URL above yourself")


def browser_command_opener(command: str) -> Opener:
    """An opener that runs ``command`` with the URL as its last argument.

    ``{url}`` in the command is replaced instead, when present. The command is not
    waited for (a browser may keep running).
    """
    parts = shlex.split(command)
    if not parts:
        raise CliError("--browser-command is empty")

    async def open_with_command(url: str) -> None:
        argv = [p.replace("{url}", url) for p in parts] if "{url}" in command else [*parts, url]
        try:
            proc = await asyncio.to_thread(
                subprocess.Popen,  # the user's own command
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as e:
            raise _OpenerFailed(f"cannot run the browser command: {e.strerror or e}") from None
        # Reap it in the background when it ends, without blocking the login.
        threading.Thread(target=proc.wait, daemon=True, name="browser-command").start()

    return open_with_command


async def http_browser(url: str) -> None:
    """A scripted browser: GET the authorization URL, follow its redirect to the callback.

    For the demo and tests against a provider that decides consent by itself (FakeNetrex):
    one aiohttp GET without following redirects, then a GET of the ``Location`` (the
    loopback receiver), as a browser would.
    """
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        async with session.get(url, allow_redirects=False) as response:
            location = response.headers.get("Location")
            if not (300 <= response.status < 400 and location):
                text = await response.text(errors="replace")
                raise _OpenerFailed(
                    f"the authorization page answered HTTP {response.status} instead of a "
                    f"redirect: {safe_text(text, limit=200)}"
                )
        async with session.get(location, allow_redirects=False) as callback:
            await callback.read()


class _OpenerFailed(Exception):
    """The browser step failed; the user can still open the URL by hand."""


# -- the flow ---------------------------------------------------------------------------


def _callback_from_paste(text: str, redirect_uri: str) -> str:
    text = text.strip()
    if "://" not in text and "=" in text:
        # Only the query string was pasted.
        return str(URL(redirect_uri).with_query(None)) + "?" + text.lstrip("?")
    return text


async def _read_line(stdin: TextIO) -> str:
    """One line from ``stdin``, in a daemon thread (so Ctrl-C is never held up by it)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()

    def reader() -> None:
        def deliver(line: str | None, error: BaseException | None) -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(line or "")

        try:
            line = stdin.readline()
        except BaseException as e:  # handed to the loop
            loop.call_soon_threadsafe(deliver, None, e)
        else:
            loop.call_soon_threadsafe(deliver, line, None)

    threading.Thread(target=reader, daemon=True, name="paste-reader").start()
    return await future


async def _exchange(
    oauth: OAuth2Client, callback_url: str, request: AuthorizationRequest, console: Console
) -> Token:
    try:
        params = URL(callback_url).query
    except (TypeError, ValueError):
        params = None
    if params is not None:
        console.add_secret(*params.getall("code", []))
        log.debug(
            "callback received with %s",
            ", ".join(sorted(set(params))) or "no parameters",
            extra={"event": "cli.callback"},
        )
    console.add_secret(request.code_verifier)
    token = await oauth.exchange(callback_url, request)
    console.add_secret(token)
    log.debug("code exchanged", extra={"event": "cli.exchanged", "grant": token.fingerprint})
    return token


async def paste_login(
    oauth: OAuth2Client,
    scopes: str,
    *,
    console: Console,
    stdin: TextIO,
    within: float,
    allow_unknown_scopes: bool = False,
) -> Token:
    """Print the URL, read the redirected URL from ``stdin``, exchange its code."""
    request = oauth.authorization_request(scopes, allow_unknown_scopes=allow_unknown_scopes)
    console.add_secret(request.code_verifier)
    console.info("Open this URL in a browser (on any machine) and approve the access:\n")
    console.info(f"  {request.url}\n")
    console.info(
        f"The browser is then sent to {request.redirect_uri}; the page may fail to load, "
        "which is fine.\nCopy the full address from the address bar and paste it here:"
    )
    try:
        line = await asyncio.wait_for(_read_line(stdin), within)
    except TimeoutError:
        raise CliError(
            f"nothing was pasted within {within:g} s: run login again", ExitCode.AUTH
        ) from None
    if not line.strip():
        raise CliError("no URL was pasted: run login again", ExitCode.AUTH)
    callback = _callback_from_paste(line, request.redirect_uri)
    return await _exchange(oauth, callback, request, console)


async def browser_login(
    app: OAuth2App,
    scopes: str,
    *,
    console: Console,
    opener: Opener | None,
    within: float,
    any_port: bool = False,
    on_redirect_uri: Callable[[str], None] | None = None,
    make_client: Callable[[OAuth2App], OAuth2Client] = OAuth2Client,
    narrate: bool = True,
    allow_unknown_scopes: bool = False,
) -> tuple[Token, OAuth2App]:
    """The loopback flow: receiver up, browser opened (or URL printed), code exchanged.

    Args:
        app: The app; its redirect URI says where the receiver listens.
        scopes: The rights to ask for (``"read,events"``).
        console: Where guidance goes.
        opener: What opens the URL; ``None`` only prints it (``--no-browser``).
        within: Seconds to wait for the callback.
        any_port: Listen on a free port if the redirect URI has none.
        on_redirect_uri: Told the actual redirect URI once the receiver listens (the
            demo registers it with its fake provider).
        make_client: Builds the OAuth2 client for the final app.
        narrate: Tell the person at the terminal what to do (the URL, the wait).
        allow_unknown_scopes: Send scope names this library does not know.

    Returns:
        The token, and the app with the redirect URI actually used.

    Raises:
        CliError: No callback in time (exit code 3); the receiver cannot listen (2).
        OAuthError, TransportError: From the exchange.
    """
    async with LoopbackReceiver(app.redirect_uri, any_port=any_port, console=console) as receiver:
        if receiver.redirect_uri != app.redirect_uri:
            app = attrs.evolve(app, redirect_uri=receiver.redirect_uri)
        if on_redirect_uri is not None:
            on_redirect_uri(receiver.redirect_uri)
        async with make_client(app) as oauth:
            request = oauth.authorization_request(scopes, allow_unknown_scopes=allow_unknown_scopes)
            console.add_secret(request.code_verifier)
            receiver.expect(request.state)
            host, port = receiver.address
            opener_task: asyncio.Future[None] | None = None
            if narrate and opener is None:
                console.info("Open this URL in a browser on this machine and approve the access:\n")
                console.info(f"  {request.url}\n")
            elif narrate:
                console.info(
                    "Opening the browser to approve the access. If it does not open, visit:\n"
                )
                console.info(f"  {request.url}\n")
            if opener is not None:
                opener_task = asyncio.ensure_future(opener(request.url))
            if narrate:
                console.info(
                    f"Waiting for the callback on http://{host}:{port} (up to {within:g} s)..."
                )
            try:
                try:
                    callback = await _wait_for_callback(receiver, opener_task, within, console)
                except TimeoutError:
                    raise CliError(
                        f"no callback arrived within {within:g} s: run login again "
                        "(or use --paste on a machine without a browser)",
                        ExitCode.AUTH,
                    ) from None
                try:
                    token = await _exchange(oauth, callback, request, console)
                except BaseException as e:
                    receiver.finish(False, _page_error(e))
                    raise
                receiver.finish(
                    True, "Authorized. Return to the terminal; you can close this window."
                )
            finally:
                # A scripted browser waits for the page: let it read it before the port
                # closes (and collect its outcome, so no task is left unobserved).
                await _settle(opener_task)
            return token, app


def _page_error(exc: BaseException) -> str:
    text = safe_text(exc, limit=500)
    return f"{text}. See the terminal for details." if text else "See the terminal."


async def _settle(task: asyncio.Future[None] | None) -> None:
    if task is None:
        return
    if not task.done():
        await asyncio.wait({task}, timeout=5)
    if not task.done():
        task.cancel()
        await asyncio.wait({task})
    if not task.cancelled() and task.exception() is not None:
        log.debug("the browser step ended with %s", type(task.exception()).__name__)


async def _wait_for_callback(
    receiver: LoopbackReceiver,
    opener_task: asyncio.Future[None] | None,
    within: float,
    console: Console,
) -> str:
    """The callback URL; an opener that fails is reported, and waiting goes on."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    callback = receiver.callback
    pending: set[asyncio.Future[object]] = {callback}  # type: ignore[arg-type]
    if opener_task is not None:
        pending.add(opener_task)  # type: ignore[arg-type]
    while True:
        left = deadline - loop.time()
        if left <= 0:
            raise TimeoutError
        done, _ = await asyncio.wait(pending, timeout=left, return_when=asyncio.FIRST_COMPLETED)
        if callback in done:
            return callback.result()
        if not done:
            raise TimeoutError
        for task in done:
            pending.discard(task)
            exc = task.exception()
            if exc is not None:
                console.warn(f"{safe_text(exc, limit=300)}; still waiting for the callback")
