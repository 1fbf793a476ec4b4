"""The properties the parsers must keep for any input; shared by hypothesis and atheris.

* ``parse_token_response`` returns a :class:`Token` with a non-blank access token (only
  for a 2xx answer), or raises :class:`InvalidGrant`, :class:`InvalidClient`,
  :class:`TokenEndpointError`, or :class:`TransientAnswer` (only for 5xx and 429).
* ``parse_callback`` returns a non-blank code with the request's state, or raises
  :class:`StateMismatch`, :class:`AuthorizationDenied` or :class:`OAuthError`.
* No message of either (``str``, ``repr``, the ``error`` attribute) holds a secret of the
  request, or a token of the answer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from yarl import URL

from netrex_async import (
    AuthorizationDenied,
    AuthorizationRequest,
    InvalidClient,
    InvalidGrant,
    OAuth2App,
    OAuthError,
    Provider,
    StateMismatch,
    Token,
    TokenEndpointError,
)
from netrex_async._oauth_protocol import (
    MAX_EXPIRES_IN,
    TransientAnswer,
    build_refresh_request,
    build_token_request,
    parse_callback,
    parse_token_response,
)

CLIENT_SECRET = "fuzz-client-secret-7Hq2+/=x"
CODE = "fuzz-auth-code-Zp41Kw9xx"
REFRESH_TOKEN = "fuzz-refresh-token-Qm83Lv"
ACCESS_TOKEN = "fuzz-access-token-Rt55Nb"
VERIFIER = "fuzz-pkce-verifier-Yc07Hd0123456789abcdefghijklmnopqrstuvwxyz0123"
STATE = "fuzz-state-Lp29Xc-0123456789abcdef"
REQUEST_SECRETS = (CLIENT_SECRET, CODE, REFRESH_TOKEN)
NOW = 1_700_000_000.0
#: Shorter values are not scanned for: they would match by accident.
MIN_SECRET_LENGTH = 8

APP = OAuth2App(
    client_id="fuzz-client",
    client_secret=CLIENT_SECRET,
    redirect_uri="http://127.0.0.1:8765/callback",
    provider=Provider("https://netrex.test"),
)
PREVIOUS = Token(
    access_token=ACCESS_TOKEN,
    refresh_token=REFRESH_TOKEN,
    issued_at=NOW - 3600,
    expires_at=NOW,
    scopes=("read",),
)
REFRESH_REQUEST = build_refresh_request(APP, PREVIOUS)
CODE_REQUEST = build_token_request(APP, CODE, code_verifier=VERIFIER)
AUTH_REQUEST = AuthorizationRequest(
    url="https://netrex.test/oauth2/auth",
    state=STATE,
    code_verifier=VERIFIER,
    redirect_uri=APP.redirect_uri,
    created_at=NOW - 10,
)


def _messages(exc: BaseException) -> list[str]:
    texts = [str(exc), repr(exc)]
    for attr in ("error",):
        value = getattr(exc, attr, None)
        if value is not None:
            texts.append(str(value))
    final = getattr(exc, "final", None)
    if isinstance(final, BaseException):
        texts.extend(_messages(final))
    return texts


def _assert_hidden(secrets: list[str], texts: list[str]) -> None:
    for secret in secrets:
        if len(secret) < MIN_SECRET_LENGTH:
            continue
        for text in texts:
            assert secret not in text, f"a secret leaked into {text[:80]!r}..."


def answer_tokens(body: bytes) -> list[str]:
    """The token strings an answer carries, which the library must not quote either."""
    import json

    try:
        data = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return []
    if not isinstance(data, dict):
        return []
    return [v for k in ("access_token", "refresh_token") if isinstance(v := data.get(k), str)]


def check_token_response(
    status: int, headers: Mapping[str, str], body: bytes, *, refresh: bool = True
) -> Token | None:
    """Parse an answer; assert the properties; return the token if there was one."""
    request = REFRESH_REQUEST if refresh else CODE_REQUEST
    previous = PREVIOUS if refresh else None
    failure: BaseException | None = None
    try:
        token = parse_token_response(status, headers, body, request, now=NOW, previous=previous)
    except (TransientAnswer, InvalidGrant, InvalidClient, TokenEndpointError) as e:
        failure = e
    if failure is None:
        assert 200 <= status < 300, f"a token from HTTP {status}"
        assert isinstance(token.access_token, str)
        assert token.access_token.strip(), "a token with a blank access token"
        assert token.issued_at == NOW
        if token.expires_at is not None:
            assert math.isfinite(token.expires_at)
            assert NOW < token.expires_at <= NOW + MAX_EXPIRES_IN
        if token.refresh_token is not None:
            assert isinstance(token.refresh_token, str) and token.refresh_token
        return token
    if isinstance(failure, TransientAnswer):
        assert status >= 500 or status == 429, f"TransientAnswer for HTTP {status}"
        assert isinstance(failure.final, OAuthError)
    texts = _messages(failure)
    _assert_hidden([*request.secrets, *answer_tokens(body)], texts)
    return None


def check_callback(url: str, *, now: float = NOW) -> str | None:
    """Parse a callback URL; assert the properties; return the code if there was one."""
    failure: OAuthError | None = None
    try:
        result = parse_callback(url, AUTH_REQUEST, now=now)
    except OAuthError as e:
        failure = e
    if failure is None:
        assert result.state == STATE
        assert isinstance(result.code, str) and result.code.strip()
        return result.code
    allowed = (StateMismatch, AuthorizationDenied, OAuthError)
    assert type(failure) in allowed, f"unexpected {type(failure).__name__}"
    texts = _messages(failure)
    # What the callback itself says in error/error_description may be quoted (escaped);
    # a secret that is not part of that text must not appear.
    said = ""
    try:
        parsed = URL(url.strip())
        for params in (parsed.query, URL("?" + parsed.fragment).query):
            said += " ".join(params.getall("error", []) + params.getall("error_description", []))
    except (ValueError, TypeError):
        said = url
    _assert_hidden([s for s in (STATE, VERIFIER, CODE) if s not in said], texts)
    for text in texts:
        assert not any(ord(c) < 0x20 for c in text), "a control character in a message"
    return None
