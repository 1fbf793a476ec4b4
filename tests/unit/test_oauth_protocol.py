"""The sans-I/O OAuth2 conversation: no network, no clock but the one passed in."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import string
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from yarl import URL

from netrex_async import (
    AuthorizationDenied,
    InvalidClient,
    InvalidGrant,
    OAuthError,
    Provider,
    ReauthorizationRequired,
    Scope,
    StateMismatch,
    Token,
    TokenEndpointError,
)
from netrex_async._oauth_protocol import (
    DEFAULT_REQUEST_MAX_AGE,
    MAX_CALLBACK_LENGTH,
    MAX_EXPIRES_IN,
    AuthorizationRequest,
    OAuth2App,
    TokenRequest,
    TransientAnswer,
    build_refresh_request,
    build_revoke_request,
    build_token_request,
    classify_error,
    new_authorization_request,
    parse_callback,
    parse_retry_after,
    parse_revoke_response,
    parse_token_response,
)

from ._leaks import assert_no_leaks
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

NOW = 1_800_000_000.0
CODE = "code-C0de+/=&x-123456"
PREVIOUS = Token(
    ACCESS_TOKEN,
    REFRESH_TOKEN,
    issued_at=NOW - 4000,
    expires_at=NOW - 400,
    scopes=("read", "events"),
)


def _body(data: Any) -> bytes:
    return json.dumps(data).encode()


# -- OAuth2App ---------------------------------------------------------------------------


def test_app_defaults(app: OAuth2App) -> None:
    assert app.grant_type_name == "authorization_code"
    assert app.credentials_in == "query"
    assert app.use_pkce is False
    assert app.provider == Provider(BASE_URL)
    assert not app.is_temporary
    assert OAuth2App(client_id="x", redirect_uri=REDIRECT_URI).provider == Provider()


def test_app_repr_hides_the_secret(app: OAuth2App) -> None:
    assert CLIENT_ID in repr(app)
    assert_no_leaks({"client_secret": CLIENT_SECRET}, objects=[app])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"client_id": ""},
        {"client_id": "  "},
        {"client_secret": ""},
        {"redirect_uri": "/callback"},
        {"redirect_uri": "ftp://h.example/cb"},
        {"redirect_uri": "https://h.example/cb#frag"},
        {"grant_type_name": "password"},
        {"credentials_in": "header"},
    ],
)
def test_app_validation(kwargs: dict[str, Any]) -> None:
    base: dict[str, Any] = {"client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI}
    with pytest.raises(ValueError):
        OAuth2App(**{**base, **kwargs})


def test_app_without_secret_is_temporary(temp_app: OAuth2App) -> None:
    assert temp_app.is_temporary
    assert temp_app.client_secret is None


# -- the authorization request -----------------------------------------------------------


def test_authorization_url(app: OAuth2App) -> None:
    req = new_authorization_request(app, [Scope.READ, Scope.EVENTS], now=NOW)
    url = URL(req.url)
    assert url.with_query(None) == URL(BASE_URL + "/oauth2/auth")
    q = url.query
    assert set(q) == {"response_type", "client_id", "redirect_uri", "scope", "state"}
    assert q["response_type"] == "code"
    assert q["client_id"] == CLIENT_ID
    assert q["redirect_uri"] == REDIRECT_URI
    assert q["scope"] == "read,events"
    assert q["state"] == req.state
    # The comma stays a comma on the wire (yarl leaves sub-delimiters alone in a query
    # value); either way it must decode to the provider's comma-separated form.
    raw = url.raw_query_string
    assert re.search(r"(^|&)scope=read(,|%2C)events(&|$)", raw)
    assert "scope=read,events" in raw
    assert req.scopes == ("read", "events")
    assert req.redirect_uri == REDIRECT_URI
    assert req.created_at == NOW
    assert req.max_age == DEFAULT_REQUEST_MAX_AGE
    assert req.code_verifier is None


def test_authorization_url_scope_forms(app: OAuth2App) -> None:
    assert URL(new_authorization_request(app, "read, events").url).query["scope"] == "read,events"
    assert URL(new_authorization_request(app, []).url).query["scope"] == ""
    with pytest.raises(ValueError, match="teleport"):
        new_authorization_request(app, "read,teleport")
    req = new_authorization_request(app, "read,teleport", allow_unknown_scopes=True)
    assert URL(req.url).query["scope"] == "read,teleport"


def test_state_is_at_least_128_bits_and_fresh(app: OAuth2App) -> None:
    states = {new_authorization_request(app, "read").state for _ in range(200)}
    assert len(states) == 200
    for state in states:
        assert set(state) <= set(string.ascii_letters + string.digits + "-_")
        raw = base64.urlsafe_b64decode(state + "=" * (-len(state) % 4))
        assert len(raw) >= 16


def test_no_pkce_by_default(app: OAuth2App) -> None:
    req = new_authorization_request(app, "read")
    assert req.code_verifier is None
    assert "code_challenge" not in URL(req.url).query
    assert "code_challenge_method" not in URL(req.url).query


def test_pkce_s256(app: OAuth2App) -> None:
    pkce = OAuth2App(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uri=REDIRECT_URI,
        provider=app.provider,
        use_pkce=True,
    )
    first = new_authorization_request(pkce, "read")
    second = new_authorization_request(pkce, "read")
    for req in (first, second):
        verifier = req.code_verifier
        assert verifier is not None
        # RFC 7636: 43 to 128 characters of [A-Z a-z 0-9 - . _ ~].
        assert re.fullmatch(r"[A-Za-z0-9\-._~]{43,128}", verifier)
        q = URL(req.url).query
        assert q["code_challenge_method"] == "S256"
        expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        assert q["code_challenge"] == expected.rstrip(b"=").decode()
        assert verifier not in req.url
    assert first.code_verifier != second.code_verifier


def test_authorization_request_repr_hides_verifier_and_state(app: OAuth2App) -> None:
    pkce = OAuth2App(client_id=CLIENT_ID, redirect_uri=REDIRECT_URI, use_pkce=True)
    req = new_authorization_request(pkce, "read")
    assert_no_leaks({"verifier": req.code_verifier, "state": req.state}, objects=[req])


# -- the callback ------------------------------------------------------------------------


@pytest.fixture(name="auth_request")
def _auth_request(app: OAuth2App) -> AuthorizationRequest:
    return new_authorization_request(app, "read,events", now=NOW)


def _callback(query: Any) -> str:
    return str(URL(REDIRECT_URI).with_query(query))


def test_callback_with_code(auth_request: AuthorizationRequest) -> None:
    result = parse_callback(
        _callback({"code": CODE, "state": auth_request.state}), auth_request, now=NOW + 5
    )
    assert result.code == CODE
    assert result.state == auth_request.state
    assert_no_leaks({"code": CODE}, objects=[result])


def test_callback_in_fragment_and_as_url(auth_request: AuthorizationRequest) -> None:
    frag = URL(REDIRECT_URI).with_fragment(f"code=abc12345&state={auth_request.state}")
    assert parse_callback(str(frag), auth_request, now=NOW).code == "abc12345"
    url = URL(_callback({"code": "abc12345", "state": auth_request.state}))
    assert parse_callback(url, auth_request, now=NOW).code == "abc12345"


@pytest.mark.parametrize(
    "query",
    [
        {"code": "abc12345"},
        {"code": "abc12345", "state": ""},
        {"code": "abc12345", "state": "not-the-state"},
        {"error": "access_denied"},
        {"error": "access_denied", "state": "forged"},
        {},
    ],
)
def test_state_missing_or_wrong(auth_request: AuthorizationRequest, query: dict[str, str]) -> None:
    with pytest.raises(StateMismatch):
        parse_callback(_callback(query), auth_request, now=NOW)


def test_state_prefix_or_case_change_refused(auth_request: AuthorizationRequest) -> None:
    s = auth_request.state
    for wrong in (s[:-1], s + "x", s.swapcase(), " " + s):
        with pytest.raises(StateMismatch):
            parse_callback(_callback({"code": "abc12345", "state": wrong}), auth_request, now=NOW)


def test_stale_request(auth_request: AuthorizationRequest) -> None:
    url = _callback({"code": "abc12345", "state": auth_request.state})
    parse_callback(url, auth_request, now=NOW + DEFAULT_REQUEST_MAX_AGE - 1)
    with pytest.raises(StateMismatch, match="older than"):
        parse_callback(url, auth_request, now=NOW + DEFAULT_REQUEST_MAX_AGE + 1)


def test_access_denied(auth_request: AuthorizationRequest) -> None:
    url = _callback(
        {
            "error": "access_denied",
            "error_description": "The user said no",
            "state": auth_request.state,
        }
    )
    with pytest.raises(AuthorizationDenied) as info:
        parse_callback(url, auth_request, now=NOW)
    assert info.value.error == "access_denied"
    assert "The user said no" in str(info.value)


def test_other_error(auth_request: AuthorizationRequest) -> None:
    url = _callback({"error": "server_error", "state": auth_request.state})
    with pytest.raises(OAuthError) as info:
        parse_callback(url, auth_request, now=NOW)
    assert type(info.value) is OAuthError
    assert info.value.error == "server_error"
    assert "server_error" in str(info.value)


def test_error_wins_over_code(auth_request: AuthorizationRequest) -> None:
    url = _callback({"error": "access_denied", "code": "abc12345", "state": auth_request.state})
    with pytest.raises(AuthorizationDenied):
        parse_callback(url, auth_request, now=NOW)


def test_control_characters_escaped(auth_request: AuthorizationRequest) -> None:
    url = _callback(
        {
            "error": "weird\r\nX-Injected: 1",
            "error_description": "line1\nline2\x1b[31mred\u202eevil",
            "state": auth_request.state,
        }
    )
    with pytest.raises(OAuthError) as info:
        parse_callback(url, auth_request, now=NOW)
    text = str(info.value)
    assert "\\n" in text
    assert "\\x1b" in text
    assert "\\u202e" in text
    assert not any(c in text for c in "\r\n\x1b\u202e")
    assert info.value.error is not None
    assert "\n" not in info.value.error


@pytest.mark.parametrize("name", ["code", "state", "error"])
def test_duplicated_parameter(auth_request: AuthorizationRequest, name: str) -> None:
    query = [("state", auth_request.state), ("code", "abc12345"), (name, "again-123")]
    if name == "error":
        query.append(("error", "access_denied"))
    with pytest.raises(OAuthError, match="more than once"):
        parse_callback(_callback(query), auth_request, now=NOW)


@pytest.mark.parametrize("code", ["", "   "])
def test_empty_code(auth_request: AuthorizationRequest, code: str) -> None:
    with pytest.raises(OAuthError, match="empty code"):
        parse_callback(
            _callback({"code": code, "state": auth_request.state}), auth_request, now=NOW
        )


def test_neither_code_nor_error(auth_request: AuthorizationRequest) -> None:
    with pytest.raises(OAuthError, match="neither"):
        parse_callback(_callback({"state": auth_request.state}), auth_request, now=NOW)


def test_oversized_url(auth_request: AuthorizationRequest) -> None:
    code = "c" * MAX_CALLBACK_LENGTH
    with pytest.raises(OAuthError, match="too long") as info:
        parse_callback(
            _callback({"code": code, "state": auth_request.state}), auth_request, now=NOW
        )
    assert not isinstance(info.value, StateMismatch)
    assert len(str(info.value)) < 200


@pytest.mark.parametrize(
    "url",
    ["http://[::1/cb?code={code}&state={state}", "http://h:99999/cb?code={code}&state={state}"],
)
def test_not_a_url_leaks_no_code(auth_request: AuthorizationRequest, url: str) -> None:
    with pytest.raises(OAuthError) as info:
        parse_callback(url.format(code=CODE, state=auth_request.state), auth_request, now=NOW)
    assert_no_leaks({"code": CODE}, exc=info.value)


_CODES = st.text(min_size=1, max_size=100).filter(lambda s: s.strip() != "")


@given(code=_CODES)
def test_any_code_comes_back_unchanged(code: str) -> None:
    app = OAuth2App(client_id=CLIENT_ID, redirect_uri=REDIRECT_URI)
    req = new_authorization_request(app, "read", now=NOW)
    url = URL(REDIRECT_URI).with_query({"code": code, "state": req.state})
    assert parse_callback(str(url), req, now=NOW).code == code


@given(
    query=st.lists(
        st.tuples(
            st.sampled_from(["code", "state", "error", "error_description", "x"]),
            st.text(max_size=30),
        ),
        max_size=6,
    )
)
def test_callback_parser_raises_only_oauth_errors(query: list[tuple[str, str]]) -> None:
    app = OAuth2App(client_id=CLIENT_ID, redirect_uri=REDIRECT_URI)
    req = new_authorization_request(app, "read", now=NOW)
    query = [(k, req.state if k == "state" and v == "" else v) for k, v in query]
    try:
        result = parse_callback(_callback(query), req, now=NOW)
    except OAuthError:
        return
    assert result.state == req.state
    assert result.code.strip()


# -- token, refresh and revoke requests --------------------------------------------------


def test_token_request_in_query(app: OAuth2App) -> None:
    req = build_token_request(app, CODE)
    assert req.form is None
    assert req.grant_type == "authorization_code"
    assert req.url.with_query(None) == URL(BASE_URL + "/oauth2/token")
    assert dict(req.url.query) == {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "grant_type": "authorization_code",
        "code": CODE,
        "redirect_uri": REDIRECT_URI,
    }
    assert req.safe_url == BASE_URL + "/oauth2/token"
    assert set(req.secrets) == {CLIENT_SECRET, CODE}
    assert_no_leaks({"client_secret": CLIENT_SECRET, "code": CODE}, objects=[req])


def test_token_request_in_body_with_auth_code(provider: Provider) -> None:
    app = OAuth2App(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uri=REDIRECT_URI,
        provider=provider,
        grant_type_name="auth_code",
        credentials_in="body",
    )
    req = build_token_request(app, CODE, code_verifier="verifier-0123456789")
    assert req.url == URL(BASE_URL + "/oauth2/token")
    assert not req.url.query_string
    assert req.form == {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "grant_type": "auth_code",
        "code": CODE,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": "verifier-0123456789",
    }
    assert req.grant_type == "auth_code"
    assert "verifier-0123456789" in req.secrets
    assert_no_leaks([CLIENT_SECRET, CODE, "verifier-0123456789"], objects=[req])


def test_temporary_grant_sends_no_secret(temp_app: OAuth2App) -> None:
    req = build_token_request(temp_app, CODE)
    assert "client_secret" not in req.url.query
    assert req.url.query["client_id"] == CLIENT_ID
    assert req.secrets == (CODE,)


def test_refresh_request(app: OAuth2App) -> None:
    req = build_refresh_request(app, PREVIOUS)
    assert dict(req.url.query) == {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "grant_type": "refresh_token",
        "refresh_token": REFRESH_TOKEN,
    }
    assert req.grant_type == "refresh_token"
    assert set(req.secrets) == {CLIENT_SECRET, REFRESH_TOKEN}
    assert ACCESS_TOKEN not in str(req.url)


def test_refresh_of_temporary_token(app: OAuth2App) -> None:
    with pytest.raises(ReauthorizationRequired):
        build_refresh_request(app, Token(ACCESS_TOKEN, None, issued_at=NOW))


def test_revoke_request(app: OAuth2App) -> None:
    req = build_revoke_request(app, PREVIOUS)
    assert req.url.with_query(None) == URL(BASE_URL + "/oauth2/revoke")
    assert dict(req.url.query) == {"access_token": ACCESS_TOKEN}
    assert req.secrets == (ACCESS_TOKEN,)
    assert req.safe_url == BASE_URL + "/oauth2/revoke"
    assert_no_leaks([ACCESS_TOKEN], objects=[req])


# -- token answers -----------------------------------------------------------------------


@pytest.fixture(name="token_req")
def _token_req(app: OAuth2App) -> TokenRequest:
    return build_token_request(app, CODE)


@pytest.fixture(name="refresh_req")
def _refresh_req(app: OAuth2App) -> TokenRequest:
    return build_refresh_request(app, PREVIOUS)


def _parse(req: TokenRequest, body: bytes | Any, status: int = 200, **kw: Any) -> Token:
    raw = body if isinstance(body, bytes) else _body(body)
    headers = kw.pop("headers", {"Content-Type": "application/json"})
    return parse_token_response(status, headers, raw, req, now=NOW, **kw)


def test_permanent_grant(token_req: TokenRequest) -> None:
    body = {"access_token": NEW_ACCESS_TOKEN, "expires_in": 3600, "refresh_token": "1234"}
    token = _parse(token_req, body, requested_scopes=("read",))
    assert token.access_token == NEW_ACCESS_TOKEN
    assert token.refresh_token == "1234"
    assert token.issued_at == NOW
    assert token.expires_at == NOW + 3600
    assert token.scopes == ("read",)


def test_temporary_grant(token_req: TokenRequest) -> None:
    token = _parse(token_req, {"access_token": NEW_ACCESS_TOKEN, "expires_in": 3600})
    assert token.refresh_token is None
    assert not token.can_refresh


@pytest.mark.parametrize("status", [200, 400, 401])
@pytest.mark.parametrize(
    ("error", "cls"),
    [
        ("invalid_grant", InvalidGrant),
        ("INVALID_GRANT", InvalidGrant),
        ("invalid_client", InvalidClient),
        ("unauthorized_client", InvalidClient),
        ("Error message", TokenEndpointError),
        ("Refresh token is invalid", InvalidGrant),
        ("The authorization code has expired", InvalidGrant),
        ("Client secret is wrong", InvalidClient),
        ("invalid_request", TokenEndpointError),
        ("unsupported_grant_type", TokenEndpointError),
    ],
)
def test_error_answers(
    token_req: TokenRequest, status: int, error: str, cls: type[OAuthError]
) -> None:
    with pytest.raises(OAuthError) as info:
        _parse(token_req, {"error": error}, status)
    assert type(info.value) is cls
    assert info.value.status == status
    assert info.value.error == error
    assert error in str(info.value)


def test_error_wins_over_a_token(token_req: TokenRequest) -> None:
    with pytest.raises(InvalidGrant):
        _parse(token_req, {"error": "invalid_grant", "access_token": NEW_ACCESS_TOKEN})


@pytest.mark.parametrize("no_error", [None, "", False])
def test_error_false_or_empty_is_no_error(token_req: TokenRequest, no_error: Any) -> None:
    token = _parse(token_req, {"error": no_error, "access_token": NEW_ACCESS_TOKEN})
    assert token.access_token == NEW_ACCESS_TOKEN


@pytest.mark.parametrize("error", [True, 0, 1, {"code": "invalid_grant"}, ["x"]])
def test_error_of_another_type_is_still_an_error(token_req: TokenRequest, error: Any) -> None:
    with pytest.raises(OAuthError):
        _parse(token_req, {"error": error, "access_token": NEW_ACCESS_TOKEN})


def test_error_description_carried(token_req: TokenRequest) -> None:
    body = {"error": "invalid_request", "error_description": "missing\nredirect_uri"}
    with pytest.raises(TokenEndpointError) as info:
        _parse(token_req, body, 400)
    assert "missing\\nredirect_uri" in str(info.value)


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_error_on_5xx_or_429_is_transient(token_req: TokenRequest, status: int) -> None:
    with pytest.raises(TransientAnswer) as info:
        _parse(token_req, {"error": "invalid_grant"}, status, headers={"Retry-After": "7"})
    assert info.value.status == status
    assert info.value.retry_after == 7
    assert isinstance(info.value.final, TokenEndpointError)
    assert info.value.final.status == status


@pytest.mark.parametrize("header", ["Retry-After", "retry-after", "RETRY-AFTER"])
def test_retry_after_header_name_is_case_insensitive(token_req: TokenRequest, header: str) -> None:
    with pytest.raises(TransientAnswer) as info:
        _parse(token_req, b"busy", 429, headers={header: "3"})
    assert info.value.retry_after == 3


def test_error_next_to_an_unencodable_token(token_req: TokenRequest) -> None:
    with pytest.raises(TokenEndpointError, match="refused"):
        _parse(token_req, b'{"error": "nope", "access_token": "\\ud800abcdefgh"}', 400)


def test_secrets_in_error_text_scrubbed(token_req: TokenRequest) -> None:
    body = {
        "error": f"bad secret {CLIENT_SECRET} for code {CODE}",
        "error_description": f"token {NEW_ACCESS_TOKEN} refused",
        "access_token": NEW_ACCESS_TOKEN,
    }
    with pytest.raises(OAuthError) as info:
        _parse(token_req, body, 400)
    assert "***" in str(info.value)
    assert_no_leaks([CLIENT_SECRET, CODE, NEW_ACCESS_TOKEN], exc=info.value)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"<html><body>Bad Gateway</body></html>", "not JSON"),
        (b'{"access_token": "abc", "expires_in": 36', "not JSON"),
        (b"", "not JSON"),
        (b"\xff\xfe\x00garbage", "not JSON"),
        (b"[]", "JSON list"),
        (b'[{"access_token": "abc"}]', "JSON list"),
        (b"null", "JSON null"),
        (b'"access_token"', "JSON str"),
        (b"42", "JSON int"),
        (b"{}", "access_token is missing"),
        (b'{"access_token": null}', "access_token is missing"),
        (b'{"access_token": ""}', "access_token is empty"),
        (b'{"access_token": "   "}', "access_token is empty"),
        (b'{"access_token": 12345}', "not a string"),
        (b'{"access_token": ["abc"]}', "not a string"),
        (b'{"access_token": "abc\\r\\nX-Evil: 1"}', "cannot have"),
        (b'{"access_token": "abc def"}', "cannot have"),
        (b'{"access_token": "abc\\u00e9"}', "cannot have"),
        (b'{"access_token": "\\ud800abcdefgh"}', "cannot have"),
        (b'{"access_token": "abc", "refresh_token": "r\\nt"}', "cannot have"),
        (b'{"access_token": "abc", "refresh_token": "  "}', "cannot have"),
        (b'{"access_token": "abc", "token_type": "mac"}', "not Bearer"),
        (b'{"access_token": "abc", "token_type": ""}', "not Bearer"),
        (b'{"access_token": "abc", "token_type": 1}', "not Bearer"),
        (b'{"access_token": "abc", "refresh_token": 5}', "refresh_token is not a string"),
        (b'{"access_token": "abc", "expires_in": -1}', "not positive"),
        (b'{"access_token": "abc", "expires_in": 0}', "not positive"),
        (b'{"access_token": "abc", "expires_in": "0"}', "not positive"),
        (b'{"access_token": "abc", "expires_in": -0.5}', "not positive"),
        (b'{"access_token": "abc", "expires_in": "soon"}', "not a number"),
        (b'{"access_token": "abc", "expires_in": ""}', "not a number"),
        (b'{"access_token": "abc", "expires_in": "NaN"}', "not a number"),
        (b'{"access_token": "abc", "expires_in": NaN}', "not a number"),
        (b'{"access_token": "abc", "expires_in": true}', "boolean"),
        (b'{"access_token": "abc", "expires_in": false}', "boolean"),
        (b'{"access_token": "abc", "expires_in": [3600]}', "list"),
        (b'{"access_token": "abc", "expires_in": {"s": 1}}', "dict"),
    ],
)
def test_malformed_answers(token_req: TokenRequest, body: bytes, match: str) -> None:
    with pytest.raises(TokenEndpointError, match=match) as info:
        _parse(token_req, body)
    assert info.value.status == 200
    assert info.value.error is None


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_malformed_answer_on_5xx_is_transient(token_req: TokenRequest, status: int) -> None:
    with pytest.raises(TransientAnswer) as info:
        _parse(token_req, b"<html>oops</html>", status, headers={"Content-Type": "text/html"})
    assert "text/html" in str(info.value.final)
    assert info.value.retry_after is None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405])
def test_4xx_without_error_is_final(token_req: TokenRequest, status: int) -> None:
    for body in (b"<html>no</html>", b"{}", b'{"access_token": "abc"}'):
        with pytest.raises(TokenEndpointError) as info:
            _parse(token_req, body, status)
        assert info.value.status == status


@pytest.mark.parametrize(
    ("value", "expires_at"),
    [
        (3600, NOW + 3600),
        (3600.5, NOW + 3600.5),
        (1, NOW + 1),
        ("3600", NOW + 3600),
        (" 3600 ", NOW + 3600),
        ("3600.25", NOW + 3600.25),
        (None, None),
        (MAX_EXPIRES_IN, NOW + MAX_EXPIRES_IN),
        (MAX_EXPIRES_IN + 1, NOW + MAX_EXPIRES_IN),
        (10**12, NOW + MAX_EXPIRES_IN),
        (1e300, NOW + MAX_EXPIRES_IN),
        ("1e400", NOW + MAX_EXPIRES_IN),
    ],
)
def test_expires_in_accepted(token_req: TokenRequest, value: Any, expires_at: float | None) -> None:
    token = _parse(token_req, {"access_token": "abc", "expires_in": value})
    assert token.expires_at == expires_at
    assert token.issued_at == NOW


@pytest.mark.parametrize("raw", [b"1" + b"0" * 400, b"Infinity", b"1e999"])
def test_expires_in_beyond_float_is_clamped(token_req: TokenRequest, raw: bytes) -> None:
    token = _parse(token_req, b'{"access_token": "abc", "expires_in": ' + raw + b"}")
    assert token.expires_at == NOW + MAX_EXPIRES_IN


def test_expires_in_missing(token_req: TokenRequest) -> None:
    token = _parse(token_req, {"access_token": "abc"})
    assert token.expires_at is None
    assert token.lifetime is None


@pytest.mark.parametrize("token_type", ["Bearer", "bearer", "BEARER", " Bearer ", None])
def test_bearer_token_types(token_req: TokenRequest, token_type: str | None) -> None:
    body: dict[str, Any] = {"access_token": "abc"}
    if token_type is not None:
        body["token_type"] = token_type
    assert _parse(token_req, body).token_type == "Bearer"


def test_refresh_answer_without_refresh_token_keeps_the_old(refresh_req: TokenRequest) -> None:
    for body in (
        {"access_token": NEW_ACCESS_TOKEN, "expires_in": 60},
        {"access_token": NEW_ACCESS_TOKEN, "expires_in": 60, "refresh_token": None},
        {"access_token": NEW_ACCESS_TOKEN, "expires_in": 60, "refresh_token": ""},
    ):
        token = _parse(refresh_req, body, previous=PREVIOUS)
        assert token.refresh_token == REFRESH_TOKEN
        assert token.access_token == NEW_ACCESS_TOKEN
        assert token.scopes == PREVIOUS.scopes


def test_refresh_answer_with_a_new_refresh_token_rotates(refresh_req: TokenRequest) -> None:
    body = {"access_token": NEW_ACCESS_TOKEN, "refresh_token": NEW_REFRESH_TOKEN}
    token = _parse(refresh_req, body, previous=PREVIOUS)
    assert token.refresh_token == NEW_REFRESH_TOKEN
    assert token.fingerprint != PREVIOUS.fingerprint


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("read,events", ("read", "events")),
        ("read events", ("read", "events")),
        (["write", "liveview"], ("write", "liveview")),
        ("read,future_right", ("read", "future_right")),
        ("", ("recordings",)),
        (None, ("recordings",)),
        (42, ("recordings",)),
        ("bad name!", ("recordings",)),
        (["bad name!"], ("recordings",)),
        (["read", 3], ("recordings",)),
    ],
)
def test_scopes_of_the_answer(
    token_req: TokenRequest, scope: Any, expected: tuple[str, ...]
) -> None:
    body: dict[str, Any] = {"access_token": "abc", "scope": scope}
    token = _parse(token_req, body, requested_scopes=("recordings",))
    assert token.scopes == expected


def test_scopes_fall_back_to_previous(refresh_req: TokenRequest) -> None:
    assert _parse(refresh_req, {"access_token": "abc"}, previous=PREVIOUS).scopes == (
        "read",
        "events",
    )


def test_failures_leave_the_previous_token_alone(refresh_req: TokenRequest) -> None:
    before = PREVIOUS.to_dict()
    for body in (b"null", b"{}", b'{"error": "invalid_grant"}', b"<html>"):
        with pytest.raises(OAuthError):
            _parse(refresh_req, body, previous=PREVIOUS)
    assert PREVIOUS.to_dict() == before


# Text with lone surrogates too: JSON can carry them ("\\ud800"), a URL cannot.
_ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=20)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20) | _ANY_TEXT,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=8,
)
_FIELDS = st.dictionaries(
    st.sampled_from(
        [
            "access_token",
            "refresh_token",
            "expires_in",
            "token_type",
            "scope",
            "error",
            "error_description",
            "other",
        ]
    ),
    _JSON | st.text(min_size=1, max_size=20) | st.integers(min_value=-(10**400), max_value=10**400),
    max_size=8,
)


def _check_outcome(req: TokenRequest, status: int, body: bytes) -> None:
    """A token, an OAuthError, or (5xx, 429) a TransientAnswer: nothing else, no leak."""
    outcome: Token | OAuthError | TransientAnswer
    try:
        outcome = parse_token_response(status, {}, body, req, now=NOW, previous=PREVIOUS)
    except (OAuthError, TransientAnswer) as e:
        outcome = e
    if isinstance(outcome, TransientAnswer):
        assert status >= 500 or status == 429
        assert isinstance(outcome.final, OAuthError)
        assert_no_leaks([CLIENT_SECRET, REFRESH_TOKEN], exc=outcome.final)
        return
    if isinstance(outcome, OAuthError):
        assert outcome.status == status
        assert_no_leaks([CLIENT_SECRET, REFRESH_TOKEN], exc=outcome)
        return
    token = outcome
    assert 200 <= status < 300
    assert token.access_token.strip()
    assert token.issued_at == NOW
    assert token.expires_at is None or NOW < token.expires_at <= NOW + MAX_EXPIRES_IN
    assert token.refresh_token is not None  # kept from PREVIOUS at worst
    assert Token.from_dict(json.loads(json.dumps(token.to_dict()))) == token


@settings(max_examples=300)
@given(data=_FIELDS, status=st.sampled_from([200, 201, 400, 401, 429, 500, 503]))
def test_token_parser_only_returns_a_token_or_raises_oauth_errors(
    data: dict[str, Any], status: int
) -> None:
    app = OAuth2App(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uri=REDIRECT_URI)
    req = build_refresh_request(app, PREVIOUS)
    _check_outcome(req, status, json.dumps(data).encode())


@given(body=st.binary(max_size=200) | _JSON.map(lambda v: json.dumps(v).encode()))
def test_token_parser_on_arbitrary_bodies(body: bytes) -> None:
    app = OAuth2App(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uri=REDIRECT_URI)
    _check_outcome(build_refresh_request(app, PREVIOUS), 200, body)


_TOKENS = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=50)


@given(
    access=_TOKENS,
    expires=st.integers(min_value=1, max_value=10**9) | st.floats(min_value=0.001, max_value=1e9),
)
def test_valid_answers_round_trip(access: str, expires: float) -> None:
    app = OAuth2App(client_id=CLIENT_ID, redirect_uri=REDIRECT_URI)
    req = build_token_request(app, CODE)
    body = json.dumps({"access_token": access, "expires_in": expires}).encode()
    token = parse_token_response(200, {}, body, req, now=NOW)
    assert token.access_token == access
    assert token.expires_at == NOW + min(float(expires), MAX_EXPIRES_IN)
    assert Token.from_dict(json.loads(json.dumps(token.to_dict()))) == token


# -- classify_error ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "description", "cls"),
    [
        ("invalid_grant", None, InvalidGrant),
        (" Invalid_Grant ", None, InvalidGrant),
        ("invalid grant", None, InvalidGrant),
        ("Refresh token is invalid", None, InvalidGrant),
        ("refresh_token expired", None, InvalidGrant),
        ("Code not found", None, InvalidGrant),
        ("Authorization code was already used", None, InvalidGrant),
        ("Error message", "refresh token revoked", InvalidGrant),
        ("invalid_client", None, InvalidClient),
        ("Client id unknown", None, InvalidClient),
        ("Error message", None, TokenEndpointError),
        ("System error", None, TokenEndpointError),
        ("invalid_scope", None, TokenEndpointError),
        # RFC codes are taken at their word, whatever the description says.
        ("invalid_request", "refresh token is invalid", TokenEndpointError),
        ("server_error", None, TokenEndpointError),
    ],
)
def test_classify_error(error: str, description: str | None, cls: type[OAuthError]) -> None:
    exc = classify_error(error, description, status=400)
    assert type(exc) is cls
    assert exc.status == 400
    assert error in str(exc)
    if description:
        assert description in str(exc)


# -- Retry-After -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 5 ", 5.0),
        ("0", 0.0),
        ("-3", 0.0),
        ("1.5", 1.5),
        (None, None),
        ("", None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),  # replaced below
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    if value and value.startswith("Wed"):
        when = 1445412480.0  # 2015-10-21 07:28:00 UTC
        assert parse_retry_after(value, now=when - 30) == 30.0
        assert parse_retry_after(value, now=when + 30) == 0.0
        return
    assert parse_retry_after(value, now=NOW) == seconds


# -- revocation answers ------------------------------------------------------------------


@pytest.fixture(name="revoke_req")
def _revoke_req(app: OAuth2App) -> TokenRequest:
    return build_revoke_request(app, PREVIOUS)


@pytest.mark.parametrize(
    "body",
    [
        b'{"success": true, "message": "Token revoked"}',
        "{\u201csuccess\u201d:true,\u201cmessage\u201d:\u201cInfo message\u201d}".encode(),
        b"",
        b"OK",
        b"<html>done</html>",
        b"null",
        b"[]",
        b"{}",
        b'{"success": "false"}',
    ],
)
@pytest.mark.parametrize("status", [200, 204])
def test_revoke_success(revoke_req: TokenRequest, body: bytes, status: int) -> None:
    assert parse_revoke_response(status, {}, body, revoke_req) is None


def test_revoke_refused(revoke_req: TokenRequest) -> None:
    body = _body({"success": False, "message": f"unknown token {ACCESS_TOKEN}"})
    with pytest.raises(TokenEndpointError, match="refused") as info:
        parse_revoke_response(200, {}, body, revoke_req)
    assert "unknown token ***" in str(info.value)
    assert_no_leaks([ACCESS_TOKEN], exc=info.value)
    with pytest.raises(TokenEndpointError, match="no reason given"):
        parse_revoke_response(200, {}, b'{"success": false}', revoke_req)


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_revoke_4xx_is_final(revoke_req: TokenRequest, status: int) -> None:
    with pytest.raises(TokenEndpointError) as info:
        parse_revoke_response(status, {}, b'{"error": "nope"}', revoke_req)
    assert info.value.status == status
    assert "nope" in str(info.value)


@pytest.mark.parametrize("status", [500, 503, 429])
def test_revoke_5xx_is_transient(revoke_req: TokenRequest, status: int) -> None:
    with pytest.raises(TransientAnswer) as info:
        parse_revoke_response(status, {"retry-after": "4"}, b"busy", revoke_req)
    assert info.value.retry_after == 4
    assert info.value.final.status == status
