"""The provider's OAuth2 conversation, without I/O.

Builds authorization URLs and token requests, parses callbacks and token answers. Nothing
here touches the network or the clock except through its arguments, so every rule is
tested by hand; :mod:`netrex_async._oauth` is the one adapter that does the I/O.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import math
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import attrs
from multidict import MultiDict
from yarl import URL

from ._errors import (
    AuthorizationDenied,
    InvalidClient,
    InvalidGrant,
    OAuthError,
    ReauthorizationRequired,
    StateMismatch,
    TokenEndpointError,
)
from ._provider import Provider
from ._redact import safe_text, scrub
from ._scope import Scope
from ._token import Token

__all__ = [
    "MAX_EXPIRES_IN",
    "AuthorizationRequest",
    "OAuth2App",
    "TokenRequest",
    "build_refresh_request",
    "build_revoke_request",
    "build_token_request",
    "parse_callback",
    "parse_revoke_response",
    "parse_token_response",
]

#: A longer ``expires_in`` is taken as this (one year): no honest token lives longer,
#: and a 401 still tells when it died.
MAX_EXPIRES_IN = 365 * 24 * 3600.0
#: How long an authorization request may wait for its callback before its state is stale.
DEFAULT_REQUEST_MAX_AGE = 600.0
#: A callback URL longer than this is refused before it is parsed.
MAX_CALLBACK_LENGTH = 8192

GrantTypeName = Literal["authorization_code", "auth_code"]
CredentialsIn = Literal["query", "body"]


def _check_redirect_uri(instance: Any, attribute: attrs.Attribute[str], value: str) -> None:
    url = URL(value)
    if not url.is_absolute() or url.scheme not in ("http", "https"):
        raise ValueError(f"redirect_uri must be an absolute http(s) URL: {value!r}")
    if url.fragment:
        raise ValueError("redirect_uri must not have a fragment")


def _nonempty(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{attribute.name} must be a non-empty string")


def _opt_nonempty(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        _nonempty(instance, attribute, value)


@attrs.frozen(kw_only=True)
class OAuth2App:
    """An OAuth2 client application registered at the provider (``</> API`` menu).

    Args:
        client_id: The application's ``client_id``.
        client_secret: Its ``client_secret``; without it the provider grants only
            *temporary* access (an access token, no refresh token). Never shown in a repr.
        redirect_uri: One of the redirect URLs registered for the app, exactly.
        provider: Which installation to talk to (default ``https://system2.netrex.cz``).
        grant_type_name: ``"authorization_code"`` (the documented example, the default)
            or ``"auth_code"`` (the documented option list).
        credentials_in: ``"query"`` (as documented: every parameter in the URL's query
            string) or ``"body"`` (a form body).
        use_pkce: Add a PKCE S256 challenge to authorization requests (undocumented at
            the provider, so off by default).
    """

    client_id: str = attrs.field(validator=_nonempty)
    client_secret: str | None = attrs.field(default=None, repr=False, validator=_opt_nonempty)
    redirect_uri: str = attrs.field(validator=_check_redirect_uri)
    provider: Provider = attrs.field(factory=Provider)
    grant_type_name: GrantTypeName = attrs.field(
        default="authorization_code",
        validator=attrs.validators.in_(("authorization_code", "auth_code")),
    )
    credentials_in: CredentialsIn = attrs.field(
        default="query", validator=attrs.validators.in_(("query", "body"))
    )
    use_pkce: bool = False

    @property
    def is_temporary(self) -> bool:
        """Whether grants made with this app are temporary (no client secret)."""
        return self.client_secret is None


@attrs.frozen(kw_only=True)
class AuthorizationRequest:
    """One authorization attempt: the URL to open and what the callback must match.

    Made by :meth:`OAuth2Client.authorization_request`; handed back to
    :meth:`OAuth2Client.exchange` with the callback URL.

    Attributes:
        url: Where to send the user's browser.
        state: The CSRF value the callback must carry back unchanged.
        code_verifier: The PKCE verifier, when PKCE is on (a secret: never in a repr).
        scopes: The rights asked for.
        redirect_uri: Where the provider will send the browser back.
        created_at: Epoch seconds; a request older than its ``max_age`` is stale.
    """

    url: str = attrs.field(repr=False)
    state: str = attrs.field(repr=False)
    code_verifier: str | None = attrs.field(default=None, repr=False)
    scopes: tuple[str, ...] = ()
    redirect_uri: str
    created_at: float = attrs.field(factory=time.time)
    max_age: float = DEFAULT_REQUEST_MAX_AGE


def new_authorization_request(
    app: OAuth2App,
    scopes: str | Iterable[str],
    *,
    allow_unknown_scopes: bool = False,
    now: float | None = None,
) -> AuthorizationRequest:
    """Build the URL the browser opens, with a fresh 256-bit ``state``.

    Raises:
        ValueError: A scope is unknown (unless ``allow_unknown_scopes``) or malformed.
    """
    parsed = Scope.parse(scopes, allow_unknown=allow_unknown_scopes)
    state = secrets.token_urlsafe(32)
    query: dict[str, str] = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": app.redirect_uri,
        "scope": Scope.to_param(parsed),
        "state": state,
    }
    verifier = None
    if app.use_pkce:
        verifier = secrets.token_urlsafe(64)
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        query["code_challenge"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
        query["code_challenge_method"] = "S256"
    url = app.provider.auth_url.with_query(query)
    return AuthorizationRequest(
        url=str(url),
        state=state,
        code_verifier=verifier,
        scopes=tuple(str(s) for s in parsed),
        redirect_uri=app.redirect_uri,
        created_at=time.time() if now is None else now,
    )


@attrs.frozen(kw_only=True)
class CallbackResult:
    """What a valid callback carried: the code (a secret) and its state."""

    code: str = attrs.field(repr=False)
    state: str = attrs.field(repr=False)


def _single(params: MultiDict[str], name: str) -> str | None:
    values = params.getall(name, [])
    if len(values) > 1:
        raise OAuthError(f"the callback carries the parameter {name!r} more than once")
    return values[0] if values else None


def parse_callback(
    callback_url: str | URL, request: AuthorizationRequest, *, now: float | None = None
) -> CallbackResult:
    """Check a callback URL against its request and return the code.

    The state is checked first, whatever else the callback says: a callback with a
    missing or wrong state is refused with :class:`StateMismatch` before anything else
    is believed. Parameters may come in the query string or the fragment.

    Raises:
        StateMismatch: The state is missing, wrong, or the request is older than its
            ``max_age``.
        AuthorizationDenied: The callback says ``error=access_denied``.
        OAuthError: Any other ``error``; an empty or missing code; a parameter given
            twice; an oversized URL.
    """
    text = str(callback_url).strip()
    if len(text) > MAX_CALLBACK_LENGTH:
        raise OAuthError(f"the callback URL is too long ({len(text)} characters)")
    try:
        url = URL(text)
    except (ValueError, TypeError) as e:
        raise OAuthError("the callback is not a URL") from e
    params: MultiDict[str] = MultiDict(url.query)
    if "state" not in params and "code" not in params and "error" not in params and url.fragment:
        params = MultiDict(URL("?" + url.fragment).query)
    state = _single(params, "state")
    if not state:
        raise StateMismatch("the callback carries no state: it was not sent for this request")
    if not secrets.compare_digest(state.encode(), request.state.encode()):
        raise StateMismatch("the callback's state does not match the authorization request")
    now = time.time() if now is None else now
    if now - request.created_at > request.max_age:
        raise StateMismatch(
            f"the authorization request is older than {request.max_age:.0f} s: start again"
        )
    error = _single(params, "error")
    code = _single(params, "code")
    if error is not None:
        description = _single(params, "error_description")
        # A code next to an error is still a secret: keep it out of the message.
        shown = safe_text(scrub(error, [code]), limit=100)
        detail = f": {safe_text(scrub(description, [code]), limit=300)}" if description else ""
        if error == "access_denied":
            raise AuthorizationDenied(
                f"authorization was denied (access_denied){detail}", error="access_denied"
            )
        raise OAuthError(f"authorization failed: {shown}{detail}", error=shown)
    if code is None:
        raise OAuthError("the callback carries neither a code nor an error")
    if not code.strip():
        raise OAuthError("the callback carries an empty code")
    return CallbackResult(code=code, state=state)


@attrs.frozen(kw_only=True)
class TokenRequest:
    """An HTTP request to a token or revoke endpoint; its URL may hold secrets.

    Attributes:
        url: The full URL, query string included (never to be logged: use ``safe_url``).
        form: The form body, when parameters go in the body.
        secrets: Every secret value in the request, for scrubbing answers and errors.
        grant_type: The grant type sent (``None`` for revocation), for logs and counters.
    """

    url: URL = attrs.field(repr=False)
    form: dict[str, str] | None = attrs.field(default=None, repr=False)
    secrets: tuple[str, ...] = attrs.field(default=(), repr=False)
    grant_type: str | None = None

    @property
    def safe_url(self) -> str:
        """The endpoint URL without its query string: safe to show."""
        return str(self.url.with_query(None))


def _token_request(app: OAuth2App, params: dict[str, str], grant_type: str) -> TokenRequest:
    params = {"client_id": app.client_id, **params}
    if app.client_secret is not None:
        params["client_secret"] = app.client_secret
    secret_values = tuple(
        v
        for k, v in params.items()
        if k in ("client_secret", "code", "refresh_token", "code_verifier")
    )
    url = app.provider.token_url
    if app.credentials_in == "query":
        return TokenRequest(
            url=url.with_query(params), secrets=secret_values, grant_type=grant_type
        )
    return TokenRequest(url=url, form=params, secrets=secret_values, grant_type=grant_type)


def build_token_request(
    app: OAuth2App, code: str, *, code_verifier: str | None = None
) -> TokenRequest:
    """The code-for-token exchange request."""
    params = {
        "grant_type": app.grant_type_name,
        "code": code,
        "redirect_uri": app.redirect_uri,
    }
    if code_verifier is not None:
        params["code_verifier"] = code_verifier
    return _token_request(app, params, app.grant_type_name)


def build_refresh_request(app: OAuth2App, token: Token) -> TokenRequest:
    """The refresh request for ``token``'s grant.

    Raises:
        ReauthorizationRequired: The token has no refresh token (a temporary grant).
    """
    if token.refresh_token is None:
        raise ReauthorizationRequired(
            "this grant is temporary (no refresh token): authorize again to get a new token"
        )
    params = {"grant_type": "refresh_token", "refresh_token": token.refresh_token}
    return _token_request(app, params, "refresh_token")


def build_revoke_request(app: OAuth2App, token: Token) -> TokenRequest:
    """``POST {base}/oauth2/revoke?access_token=...`` as documented."""
    url = app.provider.revoke_url.with_query({"access_token": token.access_token})
    return TokenRequest(url=url, secrets=(token.access_token,), grant_type=None)


# Free-text errors that mean the grant is dead. The provider documents only
# ``{"error": "Error message"}``; RFC 6749 codes are matched exactly, and these phrases
# (inferred) catch a prose message about a bad refresh token or code.
_INVALID_GRANT_TEXT = re.compile(
    r"\b(invalid[_ ]grant|(refresh[_ ]token|authori[sz]ation[_ ]code|code)\b.{0,40}"
    r"\b(invalid|expired|revoked|unknown|not (valid|found)|used))",
    re.IGNORECASE,
)
_INVALID_CLIENT_TEXT = re.compile(
    r"\b(invalid[_ ]client|unauthori[sz]ed[_ ]client|client[_ ](secret|id)\b.{0,40}"
    r"\b(invalid|wrong|unknown|not (valid|found)))",
    re.IGNORECASE,
)


def classify_error(error: str, description: str | None, *, status: int | None) -> OAuthError:
    """The :class:`OAuthError` subclass for an ``error`` answer (texts already redacted)."""
    text = error if not description else f"{error}: {description}"
    message = f"the token endpoint refused the request: {text}"
    code = error.strip().lower()
    if code == "invalid_grant" or (code not in _RFC_CODES and _INVALID_GRANT_TEXT.search(text)):
        return InvalidGrant(message, error=error, status=status)
    if code in ("invalid_client", "unauthorized_client") or (
        code not in _RFC_CODES and _INVALID_CLIENT_TEXT.search(text)
    ):
        return InvalidClient(message, error=error, status=status)
    return TokenEndpointError(message, error=error, status=status)


_RFC_CODES = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "access_denied",
        "server_error",
        "temporarily_unavailable",
    }
)


class TransientAnswer(Exception):
    """A token endpoint answer worth retrying (5xx, 429). Internal to the retry loop."""

    def __init__(self, status: int, retry_after: float | None, final: OAuthError):
        super().__init__(str(final))
        self.status = status
        self.retry_after = retry_after
        self.final = final


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


#: Visible ASCII: what a token may hold (RFC 6750's b64token is a strict subset).
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value, whatever the case of its name in ``headers`` (a plain dict too)."""
    value = headers.get(name)
    if value is not None:
        return value
    lower = name.lower()
    for key, value in headers.items():
        if key.lower() == lower:
            return value
    return None


def _decode_json(body: bytes) -> tuple[bool, Any]:
    try:
        return True, json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False, None


def _expires_in(value: object, status: int) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise TokenEndpointError(
            "the token answer's expires_in is a boolean, not a number", status=status
        )
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise TokenEndpointError(
                "the token answer's expires_in is not a number", status=status
            ) from None
    if not isinstance(value, int | float):
        raise TokenEndpointError(
            f"the token answer's expires_in is a {type(value).__name__}, not a number",
            status=status,
        )
    try:
        seconds = float(value)
    except OverflowError:
        # A JSON integer beyond any float: absurd, so clamped like any absurd lifetime.
        seconds = math.inf
    if math.isnan(seconds):
        raise TokenEndpointError("the token answer's expires_in is not a number", status=status)
    if seconds <= 0:
        raise TokenEndpointError(
            "the token answer's expires_in is not positive: the token would be born expired",
            status=status,
        )
    return min(seconds, MAX_EXPIRES_IN)


def parse_token_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    request: TokenRequest,
    *,
    now: float,
    previous: Token | None = None,
    requested_scopes: Iterable[str] = (),
) -> Token:
    """Turn a token endpoint answer into a :class:`Token`, or raise.

    An ``error`` wins whatever the HTTP status (the provider may answer errors with 200).
    A refresh answer without ``refresh_token`` keeps ``previous``'s; without ``scope`` the
    scopes are the previous or requested ones. Every message is scrubbed of the request's
    secrets and of anything that looks like a token in the answer.

    Raises:
        TransientAnswer: 5xx or 429 (internal: the adapter retries these).
        InvalidGrant, InvalidClient, TokenEndpointError: see :func:`classify_error`.
    """
    ok, data = _decode_json(body)
    retry_after = parse_retry_after(_header(headers, "Retry-After"), now=now)
    transient = status >= 500 or status == 429

    def fail(exc: OAuthError) -> OAuthError:
        if transient:
            raise TransientAnswer(status, retry_after, exc)
        return exc

    if not ok:
        # Scrubbed: a server may echo anything, even the request's secrets, in a header.
        ctype = _header(headers, "Content-Type") or "no content type"
        ctype = safe_text(scrub(ctype, request.secrets), limit=60)
        raise fail(
            TokenEndpointError(
                f"the token endpoint answered HTTP {status} with a body that is not JSON "
                f"({ctype}, {len(body)} bytes)",
                status=status,
            )
        )
    if not isinstance(data, dict):
        kind = "null" if data is None else type(data).__name__
        raise fail(
            TokenEndpointError(
                f"the token endpoint answered HTTP {status} with JSON {kind}, not an object",
                status=status,
            )
        )
    known_secrets = [*request.secrets]
    for field in ("access_token", "refresh_token"):
        if isinstance(data.get(field), str):
            known_secrets.append(data[field])
    # ``"error": false`` (or null, or "") is how some backends say "no error".
    if data.get("error") not in (None, "") and data.get("error") is not False:
        error = safe_text(scrub(str(data["error"]), known_secrets), limit=200)
        description = data.get("error_description")
        desc = safe_text(scrub(str(description), known_secrets), limit=300) if description else None
        if transient:
            raise fail(
                TokenEndpointError(
                    f"the token endpoint failed (HTTP {status}): {error}",
                    error=error,
                    status=status,
                )
            )
        raise classify_error(error, desc, status=status)
    if not 200 <= status < 300:
        raise fail(
            TokenEndpointError(
                f"the token endpoint answered HTTP {status} without a token", status=status
            )
        )
    access = data.get("access_token")
    if not isinstance(access, str) or not access.strip():
        if access is None:
            what = "missing"
        elif isinstance(access, str):
            what = "empty"
        else:
            what = "not a string"
        raise TokenEndpointError(f"the token answer's access_token is {what}", status=status)
    if not _TOKEN_CHARS.fullmatch(access):
        # It goes into an Authorization header: a newline or a non-ASCII character there
        # would break (or inject into) every later request.
        raise TokenEndpointError(
            "the token answer's access_token has characters a bearer token cannot have",
            status=status,
        )
    token_type = data.get("token_type")
    if token_type is not None and (
        not isinstance(token_type, str) or token_type.strip().lower() != "bearer"
    ):
        shown = safe_text(scrub(str(token_type), known_secrets), limit=40)
        raise TokenEndpointError(
            f"the token answer's token_type is {shown!r}, not Bearer", status=status
        )
    expires_in = _expires_in(data.get("expires_in"), status)
    if expires_in is not None and now + expires_in <= now:
        # Positive, but too small to move the clock: the token would be born expired.
        raise TokenEndpointError(
            "the token answer's expires_in is not positive: the token would be born expired",
            status=status,
        )
    refresh = data.get("refresh_token")
    if refresh is None or refresh == "":
        refresh = previous.refresh_token if previous is not None else None
    elif not isinstance(refresh, str):
        raise TokenEndpointError("the token answer's refresh_token is not a string", status=status)
    elif not _TOKEN_CHARS.fullmatch(refresh):
        raise TokenEndpointError(
            "the token answer's refresh_token has characters a token cannot have",
            status=status,
        )
    scope_value = data.get("scope")
    scopes: tuple[str, ...] = ()
    if (isinstance(scope_value, str) and scope_value.strip()) or (
        isinstance(scope_value, list) and all(isinstance(s, str) for s in scope_value)
    ):
        # A malformed name (string or list alike) means the answer's scope is unusable:
        # fall back as if it were missing rather than fail a good token.
        with contextlib.suppress(ValueError):
            scopes = tuple(str(s) for s in Scope.parse(scope_value, allow_unknown=True))
    if not scopes:
        scopes = tuple(requested_scopes) or (previous.scopes if previous else ())
    return Token(
        access_token=access,
        refresh_token=refresh,
        issued_at=now,
        expires_at=None if expires_in is None else now + expires_in,
        scopes=scopes,
    )


def parse_revoke_response(
    status: int, headers: Mapping[str, str], body: bytes, request: TokenRequest
) -> None:
    """Accept a revocation answer, or raise.

    A 2xx answer is success unless it is JSON that says ``"success": false`` (the wiki
    prints the answer with curly quotes, so a 2xx that is not JSON is not a failure).

    Raises:
        TransientAnswer: 5xx or 429.
        TokenEndpointError: The provider refused.
    """
    ok, data = _decode_json(body)
    message = ""
    if ok and isinstance(data, dict):
        raw = data.get("message") or data.get("error") or ""
        message = safe_text(scrub(str(raw), request.secrets), limit=200)
    if 200 <= status < 300:
        if ok and isinstance(data, dict) and data.get("success") is False:
            raise TokenEndpointError(
                f"the provider refused to revoke the token: {message or 'no reason given'}",
                status=status,
            )
        return
    exc = TokenEndpointError(
        f"the revoke endpoint answered HTTP {status}" + (f": {message}" if message else ""),
        status=status,
    )
    if status >= 500 or status == 429:
        raise TransientAnswer(status, parse_retry_after(_header(headers, "Retry-After")), exc)
    raise exc
