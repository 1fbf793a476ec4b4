"""OAuth2Client against aioresponses: what goes on the wire, retries, redirects, sessions."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from yarl import URL

from netrex_async import (
    AuthorizationDenied,
    ClosedError,
    InvalidClient,
    InvalidGrant,
    NetrexError,
    OAuthError,
    ReauthorizationRequired,
    StateMismatch,
    Token,
    TokenEndpointError,
    TransportError,
)
from netrex_async._oauth import DEFAULT_TIMEOUT, MAX_BODY, OAuth2Client
from netrex_async._oauth_protocol import AuthorizationRequest, OAuth2App
from netrex_async._retry import CLEANUP_SLACK, RetryPolicy, set_testing, worst_case

from ._mock_http import MockHTTP as aioresponses
from .conftest import (
    ACCESS_TOKEN,
    BASE_URL,
    CLIENT_ID,
    CLIENT_SECRET,
    NEW_ACCESS_TOKEN,
    NEW_REFRESH_TOKEN,
    REDIRECT_URI,
    REFRESH_TOKEN,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("no_backoff")]

TOKEN_URL = re.compile(r"^https://netrex\.test/oauth2/token(\?.*)?$")
REVOKE_URL = re.compile(r"^https://netrex\.test/oauth2/revoke(\?.*)?$")
CODE = "code-C0de+/=&x-123456"
OLD = Token(ACCESS_TOKEN, REFRESH_TOKEN, issued_at=1000.0, expires_at=4600.0, scopes=("read",))
GRANT = {"access_token": NEW_ACCESS_TOKEN, "expires_in": 3600, "refresh_token": NEW_REFRESH_TOKEN}


@pytest.fixture(name="mocked")
def _mocked() -> Iterator[aioresponses]:
    with aioresponses() as m:
        yield m


@pytest_asyncio.fixture(name="client")
async def _client(app: OAuth2App) -> AsyncIterator[OAuth2Client]:
    async with OAuth2Client(app) as client:
        yield client


def _calls(m: aioresponses) -> list[tuple[str, URL, dict[str, Any]]]:
    return [
        (method, url, call.kwargs) for (method, url), calls in m.requests.items() for call in calls
    ]


def _sent(m: aioresponses) -> dict[str, str]:
    """Every parameter of the one request sent, from the query string and the form body."""
    calls = _calls(m)
    assert len(calls) == 1, calls
    _, url, kwargs = calls[0]
    return {**dict(url.query), **(kwargs.get("data") or {})}


def _callback(request: AuthorizationRequest, **extra: str) -> str:
    return str(URL(REDIRECT_URI).with_query({"code": CODE, "state": request.state, **extra}))


# -- exchange ----------------------------------------------------------------------------


async def test_exchange_in_query(client: OAuth2Client, mocked: aioresponses) -> None:
    mocked.post(TOKEN_URL, payload=GRANT)
    request = client.authorization_request("read,events")
    token = await client.exchange(_callback(request), request)
    assert token.access_token == NEW_ACCESS_TOKEN
    assert token.refresh_token == NEW_REFRESH_TOKEN
    assert token.scopes == ("read", "events")
    assert token.lifetime == pytest.approx(3600)
    [(method, url, kwargs)] = _calls(mocked)
    assert method == "POST"
    assert url.with_query(None) == URL(BASE_URL + "/oauth2/token")
    assert dict(url.query) == {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "grant_type": "authorization_code",
        "code": CODE,
        "redirect_uri": REDIRECT_URI,
    }
    assert kwargs["data"] is None
    assert kwargs["allow_redirects"] is False
    assert kwargs["middlewares"] == ()
    assert kwargs["timeout"] == DEFAULT_TIMEOUT


async def test_exchange_in_body_with_auth_code(app: OAuth2App, mocked: aioresponses) -> None:
    body_app = OAuth2App(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uri=REDIRECT_URI,
        provider=app.provider,
        grant_type_name="auth_code",
        credentials_in="body",
    )
    mocked.post(TOKEN_URL, payload=GRANT)
    async with OAuth2Client(body_app) as client:
        request = client.authorization_request("read")
        await client.exchange(_callback(request), request)
    [(_, url, kwargs)] = _calls(mocked)
    assert url == URL(BASE_URL + "/oauth2/token")
    assert kwargs["data"] == {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "grant_type": "auth_code",
        "code": CODE,
        "redirect_uri": REDIRECT_URI,
    }


async def test_exchange_with_pkce_sends_the_verifier(app: OAuth2App, mocked: aioresponses) -> None:
    pkce_app = OAuth2App(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uri=REDIRECT_URI,
        provider=app.provider,
        use_pkce=True,
    )
    mocked.post(TOKEN_URL, payload=GRANT)
    async with OAuth2Client(pkce_app) as client:
        request = client.authorization_request("read")
        await client.exchange(_callback(request), request)
    assert _sent(mocked)["code_verifier"] == request.code_verifier


async def test_temporary_grant(temp_app: OAuth2App, mocked: aioresponses) -> None:
    mocked.post(TOKEN_URL, payload={"access_token": NEW_ACCESS_TOKEN, "expires_in": 3600})
    async with OAuth2Client(temp_app) as client:
        request = client.authorization_request("read")
        token = await client.exchange(_callback(request), request)
        sent = _sent(mocked)
        assert "client_secret" not in sent
        assert sent["client_id"] == CLIENT_ID
        assert token.refresh_token is None
        with pytest.raises(ReauthorizationRequired):
            await client.refresh(token)
    assert len(_calls(mocked)) == 1  # the refresh sent nothing


async def test_exchange_twice_is_refused_without_a_second_request(
    client: OAuth2Client, mocked: aioresponses
) -> None:
    mocked.post(TOKEN_URL, payload=GRANT, repeat=True)
    request = client.authorization_request("read")
    await client.exchange(_callback(request), request)
    with pytest.raises(StateMismatch, match="already used"):
        await client.exchange(_callback(request), request)
    assert len(_calls(mocked)) == 1


async def test_replay_refused_even_when_the_first_exchange_failed(
    client: OAuth2Client, mocked: aioresponses
) -> None:
    mocked.post(TOKEN_URL, status=400, payload={"error": "invalid_grant"}, repeat=True)
    request = client.authorization_request("read")
    with pytest.raises(InvalidGrant):
        await client.exchange(_callback(request), request)
    with pytest.raises(StateMismatch):
        await client.exchange(_callback(request), request)
    assert len(_calls(mocked)) == 1


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({"code": CODE}, StateMismatch),
        ({"code": CODE, "state": "forged-state-value"}, StateMismatch),
        ({"error": "access_denied", "state": None}, AuthorizationDenied),
        ({"error": "server_error", "state": None}, OAuthError),
        ({"state": None}, OAuthError),
    ],
)
async def test_bad_callbacks_send_nothing(
    client: OAuth2Client, mocked: aioresponses, query: dict[str, Any], error: type[Exception]
) -> None:
    mocked.post(TOKEN_URL, payload=GRANT, repeat=True)
    request = client.authorization_request("read")
    query = {k: request.state if v is None else v for k, v in query.items()}
    with pytest.raises(error):
        await client.exchange(str(URL(REDIRECT_URI).with_query(query)), request)
    assert _calls(mocked) == []


async def test_stale_request_sends_nothing(client: OAuth2Client, mocked: aioresponses) -> None:
    mocked.post(TOKEN_URL, payload=GRANT, repeat=True)
    request = client.authorization_request("read")
    old = AuthorizationRequest(
        url=request.url,
        state=request.state,
        redirect_uri=REDIRECT_URI,
        created_at=request.created_at - 3600,
    )
    with pytest.raises(StateMismatch):
        await client.exchange(_callback(old), old)
    assert _calls(mocked) == []


@pytest.mark.parametrize("status", [200, 400])
@pytest.mark.parametrize(
    ("error", "cls"),
    [
        ("invalid_grant", InvalidGrant),
        ("invalid_client", InvalidClient),
        ("Error message", TokenEndpointError),
        ("Refresh token is invalid", InvalidGrant),
    ],
)
async def test_oauth_errors_are_not_retried(
    client: OAuth2Client, mocked: aioresponses, status: int, error: str, cls: type[Exception]
) -> None:
    mocked.post(TOKEN_URL, status=status, payload={"error": error}, repeat=True)
    with pytest.raises(cls) as info:
        await client.refresh(OLD)
    assert type(info.value) is cls
    assert error in str(info.value)
    assert len(_calls(mocked)) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_other_4xx_not_retried(
    client: OAuth2Client, mocked: aioresponses, status: int
) -> None:
    mocked.post(TOKEN_URL, status=status, body="<html>nope</html>", repeat=True)
    with pytest.raises(TokenEndpointError) as info:
        await client.refresh(OLD)
    assert info.value.status == status
    assert len(_calls(mocked)) == 1


# -- refresh -----------------------------------------------------------------------------


async def test_refresh(client: OAuth2Client, mocked: aioresponses) -> None:
    mocked.post(TOKEN_URL, payload={"access_token": NEW_ACCESS_TOKEN, "expires_in": 60})
    token = await client.refresh(OLD)
    assert token.access_token == NEW_ACCESS_TOKEN
    assert token.refresh_token == REFRESH_TOKEN  # kept
    assert token.scopes == OLD.scopes
    assert token.issued_at > OLD.issued_at
    sent = _sent(mocked)
    assert sent == {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "grant_type": "refresh_token",
        "refresh_token": REFRESH_TOKEN,
    }


async def test_refresh_rotates(client: OAuth2Client, mocked: aioresponses) -> None:
    mocked.post(TOKEN_URL, payload=GRANT)
    token = await client.refresh(OLD)
    assert token.refresh_token == NEW_REFRESH_TOKEN


async def test_refresh_of_a_temporary_token_sends_nothing(
    client: OAuth2Client, mocked: aioresponses
) -> None:
    mocked.post(TOKEN_URL, payload=GRANT, repeat=True)
    with pytest.raises(ReauthorizationRequired):
        await client.refresh(Token(ACCESS_TOKEN, None, issued_at=1.0))
    assert _calls(mocked) == []


# -- revoke ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"success": True, "message": "Info message"}),
        "\u201csuccess\u201d:true",
        "",
        "OK",
    ],
)
async def test_revoke(client: OAuth2Client, mocked: aioresponses, body: str) -> None:
    mocked.post(REVOKE_URL, body=body, content_type="text/plain")
    await client.revoke(OLD)
    [(method, url, kwargs)] = _calls(mocked)
    assert method == "POST"
    assert url.with_query(None) == URL(BASE_URL + "/oauth2/revoke")
    assert dict(url.query) == {"access_token": ACCESS_TOKEN}
    assert kwargs["allow_redirects"] is False


async def test_revoke_refused(client: OAuth2Client, mocked: aioresponses) -> None:
    mocked.post(REVOKE_URL, payload={"success": False, "message": "Unknown token"}, repeat=True)
    with pytest.raises(TokenEndpointError, match="Unknown token"):
        await client.revoke(OLD)
    assert len(_calls(mocked)) == 1


async def test_revoke_retries_5xx(client: OAuth2Client, mocked: aioresponses) -> None:
    mocked.post(REVOKE_URL, status=503, body="busy")
    mocked.post(REVOKE_URL, exception=aiohttp.ClientConnectionError("reset"))
    mocked.post(REVOKE_URL, payload={"success": True})
    await client.revoke(OLD)
    assert len(_calls(mocked)) == 3


# -- transient faults --------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        {"exception": aiohttp.ClientConnectionError("Connection reset by peer")},
        {"exception": aiohttp.ServerDisconnectedError()},
        {"exception": aiohttp.ClientOSError(104, "reset")},
        {"exception": TimeoutError()},
        {"exception": aiohttp.ServerTimeoutError("Timeout on reading data from socket")},
        {"exception": aiohttp.ConnectionTimeoutError("Connection timeout to host")},
        {"status": 500, "body": "<html>Internal</html>", "content_type": "text/html"},
        {"status": 502, "body": ""},
        {"status": 503, "payload": {"error": "temporarily_unavailable"}},
        {"status": 504, "body": "gateway"},
        {"status": 429, "body": "slow down", "headers": {"Retry-After": "1"}},
        {"status": 429, "payload": {"error": "Too many requests"}},
    ],
)
async def test_transient_faults_are_retried(
    client: OAuth2Client, mocked: aioresponses, fault: dict[str, Any]
) -> None:
    mocked.post(TOKEN_URL, **fault)
    mocked.post(TOKEN_URL, **fault)
    mocked.post(TOKEN_URL, payload=GRANT)
    token = await client.refresh(OLD)
    assert token.access_token == NEW_ACCESS_TOKEN
    assert len(_calls(mocked)) == 3


async def test_attempts_are_bounded_network(app: OAuth2App, mocked: aioresponses) -> None:
    mocked.post(TOKEN_URL, exception=aiohttp.ClientConnectionError("refused"), repeat=True)
    async with OAuth2Client(app, retry=RetryPolicy(attempts=3)) as client:
        with pytest.raises(TransportError) as info:
            await client.refresh(OLD)
    assert len(_calls(mocked)) == 3
    assert "ClientConnectionError" in str(info.value)
    assert BASE_URL + "/oauth2/token" in str(info.value)


@pytest.mark.parametrize(
    "template", ["Connection timeout to host {url}", "Connection refused: POST {url}", "{url!r}"]
)
async def test_transport_error_drops_the_query_string(
    app: OAuth2App, mocked: aioresponses, template: str
) -> None:
    """aiohttp's ConnectionTimeoutError quotes the request URL, query string and all."""

    def fail(url: URL, **kwargs: Any) -> None:
        raise aiohttp.ConnectionTimeoutError(template.format(url=url))

    mocked.post(TOKEN_URL, callback=fail, repeat=True)
    async with OAuth2Client(app, retry=RetryPolicy(attempts=1)) as client:
        with pytest.raises(TransportError) as info:
            await client.refresh(OLD)
    text = str(info.value)
    assert "ConnectionTimeoutError" in text
    assert BASE_URL + "/oauth2/token" in text
    assert "?" not in text
    assert "client_id" not in text
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__context__.__context__ is None


async def test_attempts_are_bounded_timeout(app: OAuth2App, mocked: aioresponses) -> None:
    mocked.post(TOKEN_URL, exception=TimeoutError(), repeat=True)
    async with OAuth2Client(app, retry=RetryPolicy(attempts=2)) as client:
        with pytest.raises(TransportError, match="TimeoutError"):
            await client.refresh(OLD)
    assert len(_calls(mocked)) == 2


async def test_attempts_are_bounded_5xx(client: OAuth2Client, mocked: aioresponses) -> None:
    mocked.post(TOKEN_URL, status=503, payload={"error": "down"}, repeat=True)
    with pytest.raises(TokenEndpointError) as info:
        await client.refresh(OLD)
    assert info.value.status == 503
    assert len(_calls(mocked)) == RetryPolicy().attempts


async def test_no_retries_with_one_attempt(app: OAuth2App, mocked: aioresponses) -> None:
    mocked.post(TOKEN_URL, status=503, repeat=True)
    async with OAuth2Client(app, retry=RetryPolicy(attempts=1)) as client:
        with pytest.raises(TokenEndpointError):
            await client.refresh(OLD)
    assert len(_calls(mocked)) == 1


@pytest.fixture(name="sleeps")
def _sleeps(caplog: pytest.LogCaptureFixture) -> Iterator[list[float]]:
    """Back-off on; the waits announced by the retry log lines, in order.

    The tests using it run on looptime's virtual clock, so waits are real sleeps of the
    event loop that take no wall-clock time, and their sum can be checked exactly.
    """
    caplog.set_level(logging.DEBUG, logger="netrex_async")
    sleeps: list[float] = []

    class Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if getattr(record, "event", None) == "oauth_retry":
                sleeps.append(record.sleep)  # type: ignore[attr-defined]

    handler = Recorder(logging.DEBUG)
    logger = logging.getLogger("netrex_async")
    logger.addHandler(handler)
    old = set_testing(False)
    try:
        yield sleeps
    finally:
        set_testing(old)
        logger.removeHandler(handler)


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


@pytest.mark.looptime
@pytest.mark.parametrize("header", ["Retry-After", "retry-after"])
async def test_retry_after_honoured_when_not_testing(
    client: OAuth2Client,
    mocked: aioresponses,
    sleeps: list[float],
    caplog: pytest.LogCaptureFixture,
    header: str,
) -> None:
    mocked.post(TOKEN_URL, status=429, body="slow down", headers={header: "7"})
    mocked.post(TOKEN_URL, status=503, body="busy", headers={header: "2"})
    mocked.post(TOKEN_URL, payload=GRANT)
    start = _loop_time()
    await client.refresh(OLD)
    assert _loop_time() - start == pytest.approx(9.0, abs=0.01)
    assert sleeps == [7.0, 2.0]
    retries = [r for r in caplog.records if getattr(r, "event", None) == "oauth_retry"]
    assert [r.sleep for r in retries] == [7.0, 2.0]  # type: ignore[attr-defined]


@pytest.mark.looptime
async def test_backoff_without_retry_after_is_jittered_and_bounded(
    client: OAuth2Client, mocked: aioresponses, sleeps: list[float]
) -> None:
    mocked.post(TOKEN_URL, exception=aiohttp.ClientConnectionError("x"), repeat=3)
    mocked.post(TOKEN_URL, payload=GRANT)
    start = _loop_time()
    await client.refresh(OLD)
    assert len(sleeps) == 3
    assert all(0 <= s <= RetryPolicy().max_wait for s in sleeps)
    assert _loop_time() - start == pytest.approx(sum(sleeps), abs=0.01)


@pytest.mark.looptime
async def test_retry_after_beyond_the_limit_ends_retrying(
    app: OAuth2App, mocked: aioresponses, sleeps: list[float]
) -> None:
    mocked.post(TOKEN_URL, status=429, body="later", headers={"Retry-After": "3600"}, repeat=True)
    async with OAuth2Client(app, retry=RetryPolicy(max_retry_after=30)) as client:
        start = _loop_time()
        with pytest.raises(TokenEndpointError) as info:
            await client.refresh(OLD)
        assert _loop_time() - start == pytest.approx(0, abs=0.01)
    assert info.value.status == 429
    assert sleeps == []
    assert len(_calls(mocked)) == 1


# -- redirects, sizes, sessions ----------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirects_are_not_followed(
    client: OAuth2Client, mocked: aioresponses, status: int
) -> None:
    mocked.post(TOKEN_URL, status=status, headers={"Location": "https://evil.example/steal"})
    mocked.post("https://evil.example/steal", payload=GRANT, repeat=True)
    mocked.get("https://evil.example/steal", payload=GRANT, repeat=True)
    with pytest.raises(TokenEndpointError, match="redirect") as info:
        await client.refresh(OLD)
    assert info.value.status == status
    assert [url.host for _, url, _ in _calls(mocked)] == ["netrex.test"]


async def test_revoke_redirect_not_followed(client: OAuth2Client, mocked: aioresponses) -> None:
    mocked.post(REVOKE_URL, status=307, headers={"Location": "https://evil.example/r"})
    mocked.post("https://evil.example/r", payload={"success": True})
    with pytest.raises(TokenEndpointError, match="redirect"):
        await client.revoke(OLD)
    assert len(_calls(mocked)) == 1


async def test_oversized_answer(client: OAuth2Client, mocked: aioresponses) -> None:
    big = json.dumps({**GRANT, "padding": "x" * (MAX_BODY + 10)})
    mocked.post(TOKEN_URL, body=big)
    with pytest.raises(TokenEndpointError, match="larger than"):
        await client.refresh(OLD)


async def test_owned_session_is_closed(app: OAuth2App, mocked: aioresponses) -> None:
    mocked.post(TOKEN_URL, payload=GRANT)
    client = OAuth2Client(app)
    await client.refresh(OLD)
    session = client._session
    assert session is not None
    assert not session.closed
    await client.aclose()
    assert session.closed
    await client.aclose()  # idempotent
    with pytest.raises(ClosedError, match="closed") as info:
        await client.refresh(OLD)
    assert isinstance(info.value, NetrexError) and isinstance(info.value, RuntimeError)


async def test_unused_client_opens_no_session(app: OAuth2App) -> None:
    async with OAuth2Client(app) as client:
        client.authorization_request("read")
    assert client._session is None


async def test_borrowed_session_is_left_open(app: OAuth2App, mocked: aioresponses) -> None:
    mocked.post(TOKEN_URL, payload=GRANT)
    async with aiohttp.ClientSession() as session:
        async with OAuth2Client(app, session=session) as client:
            await client.refresh(OLD)
            assert client._session is session
        assert not session.closed
        assert len(_calls(mocked)) == 1


async def test_borrowed_session_middlewares_do_not_run(
    app: OAuth2App, mocked: aioresponses
) -> None:
    seen: list[str] = []

    async def middleware(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        seen.append(str(request.url))
        return await handler(request)

    mocked.post(TOKEN_URL, payload=GRANT)
    async with aiohttp.ClientSession(middlewares=(middleware,)) as session:
        async with OAuth2Client(app, session=session) as client:
            await client.refresh(OLD)
    assert _calls(mocked)[0][2]["middlewares"] == ()


# -- one clock stamps tokens and judges requests -------------------------------------------


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_the_clock_stamps_every_token(app: OAuth2App, mocked: aioresponses) -> None:
    clock = _Clock(1_000_000.0)
    mocked.post(TOKEN_URL, payload=GRANT, repeat=True)
    async with OAuth2Client(app, clock=clock) as client:
        request = client.authorization_request("read")
        assert request.created_at == clock.now
        clock.now += 10
        token = await client.exchange(_callback(request), request)
        assert (token.issued_at, token.expires_at) == (1_000_010.0, 1_003_610.0)
        clock.now += 100
        token = await client.refresh(token)
        assert (token.issued_at, token.expires_at) == (1_000_110.0, 1_003_710.0)


async def test_a_token_is_stamped_when_its_request_was_sent(
    app: OAuth2App, mocked: aioresponses
) -> None:
    # The provider starts the token's life while the request is in flight: stamped at the
    # answer, a token that took 30 s to come would be thought to live 30 s longer than it
    # does at the provider.
    from aioresponses import CallbackResult

    from ._mock_http import _Response

    clock = _Clock(1_000_000.0)

    def slow(url: URL, **kwargs: Any) -> CallbackResult:
        clock.now += 30
        return CallbackResult(payload=GRANT, response_class=_Response)

    mocked.post(TOKEN_URL, callback=slow, repeat=True)
    async with OAuth2Client(app, clock=clock) as client:
        request = client.authorization_request("read")
        token = await client.exchange(_callback(request), request)
        assert (token.issued_at, token.expires_at) == (1_000_000.0, 1_003_600.0)
        token = await client.refresh(token)
        assert (token.issued_at, token.expires_at) == (1_000_030.0, 1_003_630.0)


async def test_the_clock_judges_the_age_of_a_request(app: OAuth2App, mocked: aioresponses) -> None:
    clock = _Clock(1_000_000.0)
    mocked.post(TOKEN_URL, payload=GRANT, repeat=True)
    async with OAuth2Client(app, clock=clock) as client:
        request = client.authorization_request("read")
        clock.now += request.max_age + 1  # the wall clock has not moved: the client's has
        with pytest.raises(StateMismatch, match="older than"):
            await client.exchange(_callback(request), request)
    assert _calls(mocked) == []


async def test_worst_case_follows_the_retry_deadline(app: OAuth2App) -> None:
    assert OAuth2Client(app).worst_case == worst_case(RetryPolicy())
    client = OAuth2Client(app, retry=RetryPolicy(max_time=7))
    assert 7 < client.worst_case <= 7 + CLEANUP_SLACK
