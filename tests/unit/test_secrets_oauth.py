"""No secret in any log line, exception text or repr, on every path of the OAuth2 flow.

Every test runs with DEBUG logging on everything, collects whatever the library raised
and whatever it logged, and hands it all to the leak checker, which also follows chained
exceptions and looks for percent-encoded copies of each secret.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from yarl import URL

from netrex_async import NetrexError, Token
from netrex_async._oauth import MAX_BODY, OAuth2Client
from netrex_async._oauth_protocol import (
    AuthorizationRequest,
    OAuth2App,
    build_refresh_request,
    build_revoke_request,
    build_token_request,
    parse_callback,
)
from netrex_async._retry import RetryPolicy

from ._leaks import assert_no_leaks
from ._mock_http import MockHTTP
from .conftest import (
    ACCESS_TOKEN,
    CLIENT_ID,
    CLIENT_SECRET,
    NEW_ACCESS_TOKEN,
    NEW_REFRESH_TOKEN,
    REDIRECT_URI,
    REFRESH_TOKEN,
)
from .test_oauth_client import REVOKE_URL, TOKEN_URL

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("no_backoff")]

CODE = "code-C0de+/=&x y-8d7c6b5a"
OLD = Token(ACCESS_TOKEN, REFRESH_TOKEN, issued_at=1000.0, expires_at=4600.0, scopes=("read",))
GRANT = {"access_token": NEW_ACCESS_TOKEN, "expires_in": 3600, "refresh_token": NEW_REFRESH_TOKEN}
# An answer may echo whatever its request sent: each test fills ECHO with those secrets.
# (A secret the request never carried cannot be known to the library, so is not echoed.)
ECHO = "{echo}"


class Run:
    """One scenario: the client, its request, and everything that must not leak."""

    def __init__(self, client: OAuth2Client, mock: MockHTTP, caplog: pytest.LogCaptureFixture):
        self.client = client
        self.mock = mock
        self.caplog = caplog
        self.errors: list[BaseException] = []
        self.objects: list[object] = [client, client.app, OLD]
        self.request = client.authorization_request("read,events")
        self.objects.append(self.request)

    @property
    def secrets(self) -> dict[str, str | None]:
        return {
            "client_secret": CLIENT_SECRET,
            "code": CODE,
            "access_token": ACCESS_TOKEN,
            "refresh_token": REFRESH_TOKEN,
            "new_access_token": NEW_ACCESS_TOKEN,
            "new_refresh_token": NEW_REFRESH_TOKEN,
            "pkce_verifier": self.request.code_verifier,
        }

    def echo_of_exchange(self) -> str:
        return f"{CLIENT_SECRET} {CODE} {self.request.code_verifier}"

    def callback(self, **query: str) -> str:
        return str(
            URL(REDIRECT_URI).with_query({"code": CODE, "state": self.request.state, **query})
        )

    async def attempt(self, action: Awaitable[Any]) -> Any:
        try:
            result = await action
        except NetrexError as e:
            self.errors.append(e)
            return None
        self.objects.append(result)
        return result

    def check(self) -> None:
        app = self.client.app
        self.objects += [
            build_token_request(app, CODE, code_verifier=self.request.code_verifier),
            build_refresh_request(app, OLD),
            build_revoke_request(app, OLD),
        ]
        # Run from a fixture's teardown too: take the records of every phase so far.
        records = [
            *self.caplog.get_records("setup"),
            *self.caplog.get_records("call"),
            *self.caplog.get_records("teardown"),
        ]
        assert records, "nothing was logged: is DEBUG logging on?"
        assert_no_leaks(self.secrets, records, self.errors, objects=self.objects)


@pytest.fixture(name="debug_logs")
def _debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="netrex_async")
    return caplog


@pytest.fixture(name="mock")
def _mock() -> Iterator[MockHTTP]:
    with MockHTTP() as m:
        yield m


@pytest_asyncio.fixture(name="run", params=["query", "body"])
async def _run(
    request: pytest.FixtureRequest,
    app: OAuth2App,
    mock: MockHTTP,
    debug_logs: pytest.LogCaptureFixture,
) -> AsyncIterator[Run]:
    pkce_app = OAuth2App(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uri=REDIRECT_URI,
        provider=app.provider,
        credentials_in=request.param,
        use_pkce=True,
    )
    async with OAuth2Client(pkce_app, retry=RetryPolicy(attempts=3)) as client:
        run = Run(client, mock, debug_logs)
        yield run
    run.check()


# -- faults the token and revoke endpoints can commit -------------------------------------


def _url_in_message(kind: type[Exception], template: str) -> Callable[..., Any]:
    """An aiohttp exception quoting the request URL, as aiohttp's own messages do.

    aiohttp raises ``ConnectionTimeoutError(f"Connection timeout to host {req.url}")``:
    the full URL, query string and all.
    """

    def callback(url: URL, **kwargs: Any) -> Any:
        raise kind(template.format(url=url))

    return callback


FAULTS: dict[str, dict[str, Any]] = {
    "ok": {"payload": GRANT},
    "invalid_grant echoing secrets": {"status": 400, "payload": {"error": f"invalid_grant {ECHO}"}},
    "invalid_client echoing secrets": {
        "status": 401,
        "payload": {"error": "invalid_client", "error_description": ECHO},
    },
    "free text on 200": {"payload": {"error": f"Error message: {ECHO}"}},
    "error next to a token": {
        "payload": {**GRANT, "error": f"{NEW_ACCESS_TOKEN} / {NEW_REFRESH_TOKEN}"}
    },
    "refresh token text": {"payload": {"error": f"Refresh token {ECHO} is invalid"}},
    "html": {"status": 200, "body": f"<html>{ECHO}</html>", "content_type": "text/html"},
    "truncated json": {"body": json.dumps(GRANT)[:-5]},
    "json array": {"body": json.dumps([GRANT])},
    "null": {"body": "null"},
    "empty access token": {"payload": {"access_token": "", "refresh_token": NEW_REFRESH_TOKEN}},
    "non-bearer": {"payload": {**GRANT, "token_type": "mac"}},
    "negative expires_in": {"payload": {**GRANT, "expires_in": -5}},
    "string expires_in": {"payload": {**GRANT, "expires_in": "soon"}},
    "bad refresh_token type": {"payload": {"access_token": NEW_ACCESS_TOKEN, "refresh_token": 7}},
    "500 echoing secrets": {"status": 500, "body": ECHO, "repeat": True},
    "503 json error echoing secrets": {
        "status": 503,
        "payload": {"error": ECHO, "error_description": ECHO},
        "repeat": True,
    },
    "429 with a long Retry-After": {
        "status": 429,
        "payload": {"error": ECHO},
        "headers": {"Retry-After": "86400"},
    },
    "redirect to a URL with secrets": {
        "status": 302,
        "headers": {"Location": f"https://evil.example/?s={CLIENT_SECRET}"},
    },
    # Just over the cap (aioresponses cannot feed much more than that in one piece).
    "oversized answer": {"body": ECHO + " " * MAX_BODY},
    "connection error with the URL": {
        "callback": _url_in_message(
            aiohttp.ClientConnectionError, "Connection refused: POST {url}"
        ),
        "repeat": True,
    },
    "connect timeout with the URL": {
        "callback": _url_in_message(
            aiohttp.ConnectionTimeoutError, "Connection timeout to host {url}"
        ),
        "repeat": True,
    },
    "read timeout": {"exception": aiohttp.ServerTimeoutError("Timeout on reading"), "repeat": True},
    "total timeout": {"exception": TimeoutError(), "repeat": True},
    "disconnected": {"exception": aiohttp.ServerDisconnectedError(), "repeat": True},
    "nothing listening (aioresponses quotes the URL)": {},
}


def _fill(value: Any, echo: str) -> Any:
    if isinstance(value, str):
        return value.replace(ECHO, echo)
    if isinstance(value, dict):
        return {k: _fill(v, echo) for k, v in value.items()}
    return value


def _expect(mock: MockHTTP, url: Any, fault: dict[str, Any], echo: str) -> None:
    if fault:
        mock.post(url, **_fill(fault, echo))


@pytest.mark.parametrize("fault", list(FAULTS.values()), ids=list(FAULTS))
async def test_exchange(run: Run, fault: dict[str, Any]) -> None:
    _expect(run.mock, TOKEN_URL, fault, run.echo_of_exchange())
    await run.attempt(run.client.exchange(run.callback(), run.request))
    # A replay is refused whatever happened the first time.
    await run.attempt(run.client.exchange(run.callback(), run.request))
    assert isinstance(run.errors[-1], NetrexError)


@pytest.mark.parametrize("fault", list(FAULTS.values()), ids=list(FAULTS))
async def test_refresh(run: Run, fault: dict[str, Any]) -> None:
    _expect(run.mock, TOKEN_URL, fault, f"{CLIENT_SECRET} {REFRESH_TOKEN}")
    await run.attempt(run.client.refresh(OLD))


@pytest.mark.parametrize(
    "fault",
    [
        {"body": "{\u201csuccess\u201d:true}"},
        {"payload": {"success": False, "message": ECHO}},
        {"status": 400, "payload": {"error": ECHO}},
        {"status": 503, "body": ECHO, "repeat": True},
        {"status": 307, "headers": {"Location": f"https://evil.example/?t={ACCESS_TOKEN}"}},
        FAULTS["connection error with the URL"],
        FAULTS["connect timeout with the URL"],
        FAULTS["total timeout"],
        {},
    ],
    ids=[
        "curly quotes",
        "refused",
        "400",
        "503",
        "redirect",
        "connection error",
        "connect timeout",
        "timeout",
        "nothing listening",
    ],
)
async def test_revoke(run: Run, fault: dict[str, Any]) -> None:
    _expect(run.mock, REVOKE_URL, fault, ACCESS_TOKEN)
    await run.attempt(run.client.revoke(OLD))


async def test_temporary_refresh(run: Run) -> None:
    await run.attempt(run.client.refresh(Token(ACCESS_TOKEN, None, issued_at=1.0)))
    assert run.errors


@pytest.mark.parametrize(
    "callback",
    [
        lambda r: r.callback(state="forged-state-value"),
        lambda r: str(URL(REDIRECT_URI).with_query({"code": CODE})),
        # The browser step carries no client secret and no verifier; only the code can
        # come back in a callback, even next to an error.
        lambda r: r.callback(error="access_denied", error_description=f"no ({CODE})"),
        lambda r: r.callback(error=f"server_error {CODE}", error_description=f"code {CODE}"),
        lambda r: r.callback(code=CODE + "&code=" + CODE),
        lambda r: r.callback() + "&code=" + CODE,
        lambda r: r.callback(padding="x" * 9000),
        lambda r: f"http://[::1/cb?code={CODE}&state={r.request.state}",
        lambda r: f"http://h:99999/cb?code={CODE}&state={r.request.state}",
    ],
    ids=[
        "wrong state",
        "no state",
        "access_denied",
        "other error",
        "code with an ampersand",
        "code twice",
        "oversized",
        "not a URL",
        "bad port",
    ],
)
async def test_callbacks(run: Run, callback: Callable[[Run], str]) -> None:
    run.mock.post(TOKEN_URL, payload=GRANT, repeat=True)
    await run.attempt(run.client.exchange(callback(run), run.request))


async def test_stale_request(run: Run) -> None:
    stale = AuthorizationRequest(
        url=run.request.url,
        state=run.request.state,
        code_verifier=run.request.code_verifier,
        redirect_uri=REDIRECT_URI,
        created_at=run.request.created_at - 3600,
    )
    run.objects.append(stale)
    await run.attempt(run.client.exchange(run.callback(), stale))
    assert run.errors


async def test_callback_result_repr(run: Run) -> None:
    run.objects.append(parse_callback(run.callback(), run.request))
    logging.getLogger("netrex_async.test").debug("callback parsed")


async def test_everything_in_one_session(run: Run) -> None:
    """The happy path end to end, then every fault in turn on one client."""
    run.mock.post(TOKEN_URL, payload=GRANT)
    token = await run.attempt(run.client.exchange(run.callback(), run.request))
    assert token is not None
    run.mock.post(TOKEN_URL, payload={"access_token": NEW_ACCESS_TOKEN, "expires_in": 60})
    assert await run.attempt(run.client.refresh(token)) is not None
    for fault in FAULTS.values():
        run.mock.clear()
        if fault:
            fault = {**fault, "repeat": True}
        _expect(run.mock, TOKEN_URL, fault, f"{CLIENT_SECRET} {NEW_REFRESH_TOKEN}")
        await run.attempt(run.client.refresh(token))
    run.mock.post(REVOKE_URL, body="{\u201csuccess\u201d:true}")
    await run.attempt(run.client.revoke(token))
    assert len(run.errors) >= len(FAULTS) - 1


async def test_the_checker_would_catch_a_leak(
    app: OAuth2App, mock: MockHTTP, caplog: pytest.LogCaptureFixture
) -> None:
    """The harness is not blind: a deliberate leak in a log line is found."""
    caplog.set_level(logging.DEBUG)
    async with OAuth2Client(app) as client:
        run = Run(client, mock, caplog)
        req = build_token_request(app, CODE)
        logging.getLogger("netrex_async.test").debug("sending %s", req.url)
        with pytest.raises(AssertionError, match="client_secret"):
            run.check()


async def test_client_repr(app: OAuth2App) -> None:
    async with OAuth2Client(app) as client:
        text = repr(client)
    assert CLIENT_ID in text
    assert app.provider.base_url in text
    assert_no_leaks({"client_secret": CLIENT_SECRET}, objects=[client])
