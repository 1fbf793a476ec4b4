"""The authorization callback: every hostile or broken callback is refused before a
token request leaves the process, and its texts cannot forge a log line or a page."""

from __future__ import annotations

import time

import attrs
import pytest
from yarl import URL

from netrex_async import (
    AuthorizationDenied,
    AuthorizationRequest,
    InvalidGrant,
    OAuth2App,
    OAuth2Client,
    OAuthError,
    StateMismatch,
)
from netrex_async._oauth_protocol import MAX_CALLBACK_LENGTH, parse_callback
from netrex_async.testing import FakeNetrex


async def _callback(fake: FakeNetrex, oauth: OAuth2Client) -> tuple[AuthorizationRequest, URL]:
    """A real authorization at the fake: the request and the callback URL it produced."""
    request = oauth.authorization_request("read")
    callback = URL(await fake.authorize(request.url))
    assert callback.query["state"] == request.state
    assert callback.query["code"]
    return request, callback


def _with(callback: URL, *pairs: tuple[str, str], drop: tuple[str, ...] = ()) -> str:
    """``callback`` with parameters removed (``drop``) and others appended (duplicates too)."""
    kept = [(k, v) for k, v in callback.query.items() if k not in drop]
    return str(callback.with_query([*kept, *pairs]))


def _no_token_request(fake: FakeNetrex) -> None:
    assert fake.counters.requests["token"] == 0, "a token request was sent"


async def test_missing_state_is_refused_before_any_token_request(fake, oauth, secret_registry):
    request, callback = await _callback(fake, oauth)
    with pytest.raises(StateMismatch) as e:
        await oauth.exchange(_with(callback, drop=("state",)), request)
    _no_token_request(fake)
    secret_registry.check(e)


async def test_wrong_state_is_refused_before_any_token_request(fake, oauth, secret_registry):
    request, callback = await _callback(fake, oauth)
    forged = _with(callback, ("state", "forged-state-of-an-attacker"), drop=("state",))
    with pytest.raises(StateMismatch) as e:
        await oauth.exchange(forged, request)
    _no_token_request(fake)
    secret_registry.check(e)
    # The right callback still works afterwards: a forgery does not burn the login.
    token = await oauth.exchange(str(callback), request)
    assert fake.is_valid(token)


async def test_replayed_callback_is_refused_without_a_second_token_request(
    fake, oauth, secret_registry
):
    request, callback = await _callback(fake, oauth)
    token = await oauth.exchange(str(callback), request)
    with pytest.raises(StateMismatch) as e:
        await oauth.exchange(str(callback), request)
    assert fake.counters.code_exchanges == 1
    assert fake.is_valid(token)
    secret_registry.check(e)


async def test_replayed_code_through_another_client_is_refused_by_the_provider(
    fake, app, oauth, secret_registry
):
    # The state check is per OAuth2Client; a replay through a second client reaches the
    # provider, which refuses a used code (and, per RFC 6749, revokes what it gave).
    request, callback = await _callback(fake, oauth)
    token = await oauth.exchange(str(callback), request)
    async with OAuth2Client(app) as other:
        with pytest.raises(InvalidGrant) as e:
            await other.exchange(str(callback), request)
    assert fake.counters.code_exchanges == 2
    assert not fake.is_valid(token)
    secret_registry.check(e)


async def test_stale_state_is_refused_before_any_token_request(fake, oauth, secret_registry):
    request, callback = await _callback(fake, oauth)
    old = attrs.evolve(request, created_at=time.time() - request.max_age - 1)
    with pytest.raises(StateMismatch, match="older than") as e:
        await oauth.exchange(str(callback), old)
    _no_token_request(fake)
    secret_registry.check(e)


@pytest.mark.parametrize(
    ("error", "exc_type"),
    [("access_denied", AuthorizationDenied), ("server_error", OAuthError)],
)
async def test_code_and_error_together_means_error(fake, oauth, secret_registry, error, exc_type):
    request, callback = await _callback(fake, oauth)
    with pytest.raises(exc_type) as e:
        await oauth.exchange(_with(callback, ("error", error)), request)
    assert e.value.error == error
    _no_token_request(fake)
    secret_registry.check(e)  # the code that came along is not quoted


@pytest.mark.parametrize("name", ["state", "code", "error"])
async def test_duplicated_parameter_is_refused(fake, oauth, secret_registry, name):
    request, callback = await _callback(fake, oauth)
    value = {"state": request.state, "code": callback.query["code"], "error": "access_denied"}
    url = _with(callback, (name, value[name]))
    if name == "error":
        url = _with(URL(url), (name, value[name]))
    with pytest.raises(OAuthError, match="more than once") as e:
        await oauth.exchange(url, request)
    _no_token_request(fake)
    secret_registry.check(e)


async def test_appended_second_state_is_refused(fake, oauth, secret_registry):
    # An attacker who can append to the URL cannot make a second value win.
    request, callback = await _callback(fake, oauth)
    with pytest.raises(OAuthError) as e:
        await oauth.exchange(_with(callback, ("state", "attacker-state-value")), request)
    _no_token_request(fake)
    secret_registry.check(e)


@pytest.mark.parametrize("code", ["", "   ", "\t"])
async def test_empty_code_is_refused(fake, oauth, code):
    request, callback = await _callback(fake, oauth)
    with pytest.raises(OAuthError, match="empty code"):
        await oauth.exchange(_with(callback, ("code", code), drop=("code",)), request)
    _no_token_request(fake)


async def test_oversized_callback_is_refused_unparsed(fake, oauth, secret_registry):
    request, callback = await _callback(fake, oauth)
    huge = _with(callback, ("padding", "A" * MAX_CALLBACK_LENGTH))
    with pytest.raises(OAuthError, match="too long") as e:
        await oauth.exchange(huge, request)
    assert len(str(e.value)) < 200
    assert "AAAAAAAA" not in str(e.value)
    _no_token_request(fake)
    secret_registry.check(e)


HOSTILE = (
    "<script>alert(document.cookie)</script><img src=x onerror=alert(1)>"
    "\x1b[2J\x1b[31mFAKE\r\nINFO netrex_async: token refreshed\x00\x07\u202edesrever\u2028end"
)


@pytest.mark.parametrize("where", ["error", "error_description"])
def test_hostile_error_text_is_escaped_in_the_exception(where):
    app = OAuth2App(client_id="client-id", redirect_uri="http://127.0.0.1:8765/callback")
    request = AuthorizationRequest(
        url="https://system2.netrex.cz/oauth2/auth", state="state-value-1234", redirect_uri=""
    )
    params = {"state": request.state, "error": "server_error", "error_description": "fine"}
    params[where] = HOSTILE
    url = URL(app.redirect_uri).with_query(params)
    with pytest.raises(OAuthError) as e:
        parse_callback(url, request)
    for text in (str(e.value), str(e.value.error)):
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in text), text
        assert "\u202e" not in text
        assert "\u2028" not in text
    message = str(e.value)
    assert "\\x1b" in message  # shown, escaped
    assert "\\r\\n" in message
    assert len(message) < 600


def test_fragment_callback_cannot_smuggle_a_second_state():
    # Parameters are read from the query, or from the fragment only when the query has
    # none: a fragment never adds to (or overrides) what the query says.
    request = AuthorizationRequest(url="x", state="the-real-state-value", redirect_uri="")
    url = "http://127.0.0.1:8765/callback?code=code-from-query#state=the-real-state-value"
    with pytest.raises(StateMismatch):
        parse_callback(url, request)
