"""The fake's OAuth2 authority: clients, codes, grants and tokens, without any HTTP.

The HTTP adapter (``_server``) turns requests into the calls below and their results into
answers. Times come from the fake's ``clock`` (monotonic by default), so a test can move
time instead of sleeping.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Literal, Protocol, TypeAlias

import attrs

from .._redact import fingerprint
from .._scope import Scope

__all__ = ["AuthDecision", "Authority", "Grant", "TokenAnswer"]

ParamsIn: TypeAlias = Literal["query", "body", "either"]
Consent: TypeAlias = Literal["approve", "deny"]

CODE_GRANT_TYPES = frozenset({"authorization_code", "auth_code"})


class Settings(Protocol):
    """The knobs of a fake the authority reads on every request (they may change)."""

    client_id: str
    client_secret: str
    expires_in: float | None
    rotate_refresh_tokens: bool
    reuse_detection: bool
    consent: Consent
    code_ttl: float
    issue_refresh_token_without_secret: bool
    require_pkce: bool
    echo_refresh_token: bool
    token_response_extra: Mapping[str, Any]
    clock: Callable[[], float]

    @property
    def redirect_uris(self) -> tuple[str, ...]: ...


@attrs.define(eq=False, repr=False)
class Grant:
    """One authorization: what a user allowed one client, and the tokens issued for it.

    Attributes:
        id: A short public name (``"g1"``, ``"g2"``...), safe in logs.
        client_id: The client it was issued to.
        scopes: The rights granted.
        refresh_token: The current refresh token (a secret), or ``None`` for a temporary
            grant.
        revoked: Whether the grant is gone (revoked, or killed by reuse detection).
        revoked_reason: Why: ``"revoked"``, ``"refresh token reuse"``, ``"code reuse"``.
        refreshes: How many times it was refreshed.
    """

    id: str
    client_id: str
    scopes: tuple[str, ...]
    refresh_token: str | None = None
    revoked: bool = False
    revoked_reason: str | None = None
    refreshes: int = 0
    #: Every access token issued for the grant, with its expiry on the fake's clock.
    access_tokens: dict[str, float | None] = attrs.field(factory=dict)
    #: Refresh tokens replaced by rotation; presenting one again is reuse.
    retired_refresh_tokens: set[str] = attrs.field(factory=set)
    #: ``scopes`` as a set, for the API's per-request checks.
    scope_set: frozenset[str] = attrs.field(init=False)

    @scope_set.default
    def _scope_set(self) -> frozenset[str]:
        return frozenset(self.scopes)

    @property
    def temporary(self) -> bool:
        """A grant without a refresh token (made without the client secret)."""
        return self.refresh_token is None and not self.retired_refresh_tokens

    @property
    def access_token(self) -> str | None:
        """The access token issued last."""
        return next(reversed(self.access_tokens), None)

    def __repr__(self) -> str:
        refresh = None if self.refresh_token is None else fingerprint(self.refresh_token)
        return (
            f"Grant(id={self.id!r}, client_id={self.client_id!r}, scopes={self.scopes!r}, "
            f"refresh_token_fingerprint={refresh!r}, access_tokens={len(self.access_tokens)}, "
            f"refreshes={self.refreshes}, revoked={self.revoked})"
        )


@attrs.define(eq=False, repr=False)
class _Code:
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    expires_at: float
    challenge: str | None
    challenge_method: str | None
    used: bool = False
    grant: Grant | None = None


@attrs.frozen
class AuthDecision:
    """The outcome at ``/oauth2/auth``: a redirect (``location``) or an error page."""

    status: int
    location: str | None = None
    page: str | None = None


@attrs.frozen(repr=False)
class TokenAnswer:
    """The outcome at ``/oauth2/token``: a JSON body, and whether it is an error."""

    body: dict[str, Any]
    error: bool = False
    grant: Grant | None = None


def _error(code: str, description: str | None = None) -> TokenAnswer:
    body: dict[str, Any] = {"error": code}
    if description:
        body["error_description"] = description
    return TokenAnswer(body, error=True)


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _number(seconds: float) -> int | float:
    return int(seconds) if float(seconds).is_integer() else seconds


def _append_query(uri: str, params: Iterable[tuple[str, str]]) -> str:
    from yarl import URL

    url = URL(uri)
    return str(url.with_query([*url.query.items(), *params]))


@attrs.define
class Authority:
    """Codes, grants and tokens of one fake; reads its settings live from ``settings``."""

    settings: Settings
    on_token_issued: Callable[[], None] = lambda: None
    on_reuse: Callable[[], None] = lambda: None
    _codes: dict[str, _Code] = attrs.field(factory=dict)
    _grants: dict[str, Grant] = attrs.field(factory=dict)
    #: access token -> grant, refresh token (current or retired) -> grant.
    _by_access: dict[str, Grant] = attrs.field(factory=dict)
    _by_refresh: dict[str, Grant] = attrs.field(factory=dict)
    _ids: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1))

    @property
    def grants(self) -> tuple[Grant, ...]:
        """Every grant ever made, oldest first (revoked ones too)."""
        return tuple(self._grants.values())

    # -- the authorization endpoint -------------------------------------------------------

    def authorize(self, params: Mapping[str, str]) -> AuthDecision:
        """Decide an authorization request as the provider's consent page would."""
        s = self.settings
        client_id = params.get("client_id")
        if client_id != s.client_id:
            return _page("unknown client_id" if client_id else "client_id is missing")
        redirect_uri = params.get("redirect_uri") or params.get("redirect_url")
        if not redirect_uri:
            return _page("redirect_uri is missing")
        if redirect_uri not in s.redirect_uris:
            return _page("redirect_uri is not registered for this client")
        state = params.get("state")

        def redirect(*pairs: tuple[str, str]) -> AuthDecision:
            out = list(pairs)
            if state is not None:
                out.append(("state", state))
            return AuthDecision(302, location=_append_query(redirect_uri, out))

        if params.get("response_type") != "code":
            return redirect(("error", "unsupported_response_type"))
        try:
            scopes = tuple(str(x) for x in Scope.parse(params.get("scope", "")))
        except ValueError:
            return redirect(("error", "invalid_scope"))
        if not scopes:
            return redirect(("error", "invalid_scope"))
        challenge = params.get("code_challenge")
        method = params.get("code_challenge_method", "plain" if challenge else None)
        if challenge is None and s.require_pkce:
            return redirect(("error", "invalid_request"), ("error_description", "PKCE required"))
        if challenge is not None and method not in ("S256", "plain"):
            return redirect(("error", "invalid_request"))
        if s.consent == "deny":
            return redirect(("error", "access_denied"))
        code = self.issue_code(scopes, redirect_uri, challenge, method)
        return redirect(("code", code))

    def issue_code(
        self,
        scopes: Iterable[str],
        redirect_uri: str,
        challenge: str | None = None,
        method: str | None = None,
    ) -> str:
        """A fresh authorization code, as if a user had just approved."""
        code = secrets.token_urlsafe(24)
        self._codes[code] = _Code(
            client_id=self.settings.client_id,
            redirect_uri=redirect_uri,
            scopes=tuple(scopes),
            expires_at=self.settings.clock() + self.settings.code_ttl,
            challenge=challenge,
            challenge_method=method or ("plain" if challenge else None),
        )
        return code

    # -- the token endpoint ---------------------------------------------------------------

    def token(self, params: Mapping[str, str]) -> TokenAnswer:
        """Answer a token request (code exchange or refresh)."""
        s = self.settings
        grant_type = params.get("grant_type")
        if not grant_type:
            return _error("invalid_request", "grant_type is missing")
        if grant_type not in CODE_GRANT_TYPES and grant_type != "refresh_token":
            return _error("unsupported_grant_type")
        client_id = params.get("client_id")
        if not client_id:
            return _error("invalid_request", "client_id is missing")
        if client_id != s.client_id:
            return _error("invalid_client")
        secret = params.get("client_secret")
        if secret is not None and not hmac.compare_digest(
            secret.encode("utf-8", "replace"), s.client_secret.encode()
        ):
            return _error("invalid_client")
        if grant_type == "refresh_token":
            if secret is None:
                return _error("invalid_client", "client_secret is missing")
            return self._refresh(params)
        return self._exchange(params, with_secret=secret is not None)

    def _exchange(self, params: Mapping[str, str], *, with_secret: bool) -> TokenAnswer:
        s = self.settings
        code_value = params.get("code")
        if not code_value:
            return _error("invalid_request", "code is missing")
        code = self._codes.get(code_value)
        if code is None:
            return _error("invalid_grant", "unknown code")
        if code.used:
            # RFC 6749 section 4.1.2: a code used twice revokes what it was used for.
            if code.grant is not None:
                self._revoke(code.grant, "code reuse")
            return _error("invalid_grant", "code already used")
        code.used = True
        if s.clock() >= code.expires_at:
            return _error("invalid_grant", "code expired")
        redirect_uri = params.get("redirect_uri") or params.get("redirect_url")
        if redirect_uri != code.redirect_uri:
            return _error("invalid_grant", "redirect_uri does not match")
        if code.challenge is not None:
            verifier = params.get("code_verifier")
            if not verifier:
                return _error("invalid_grant", "code_verifier is missing")
            expected = _s256(verifier) if code.challenge_method == "S256" else verifier
            if not hmac.compare_digest(expected.encode(), code.challenge.encode()):
                return _error("invalid_grant", "code_verifier does not match")
        with_refresh = with_secret or s.issue_refresh_token_without_secret
        grant, access, lifetime = self.new_grant(code.scopes, with_refresh=with_refresh)
        code.grant = grant
        return TokenAnswer(_answer(access, lifetime, grant.refresh_token, s), grant=grant)

    def _refresh(self, params: Mapping[str, str]) -> TokenAnswer:
        s = self.settings
        presented = params.get("refresh_token")
        if not presented:
            return _error("invalid_request", "refresh_token is missing")
        grant = self._by_refresh.get(presented)
        if grant is None or grant.client_id != params.get("client_id"):
            return _error("invalid_grant", "unknown refresh token")
        if grant.revoked:
            return _error("invalid_grant", "the grant was revoked")
        if presented != grant.refresh_token:
            if s.reuse_detection:
                self._revoke(grant, "refresh token reuse")
                self.on_reuse()
            return _error("invalid_grant", "refresh token already used")
        grant.refreshes += 1
        refresh: str | None = presented
        if s.rotate_refresh_tokens:
            grant.retired_refresh_tokens.add(presented)
            grant.refresh_token = refresh = self._new_refresh(grant)
        elif not s.echo_refresh_token:
            refresh = None
        access, lifetime = self._new_access(grant, None)
        return TokenAnswer(_answer(access, lifetime, refresh, s), grant=grant)

    # -- grants and tokens ----------------------------------------------------------------

    def new_grant(
        self, scopes: Iterable[str], *, with_refresh: bool, expires_in: float | None = None
    ) -> tuple[Grant, str, float | None]:
        """Make a grant with a first access token (and a refresh token if asked).

        Returns the grant, its access token and that token's lifetime in seconds.
        """
        grant = Grant(
            id=f"g{next(self._ids)}", client_id=self.settings.client_id, scopes=tuple(scopes)
        )
        self._grants[grant.id] = grant
        if with_refresh:
            grant.refresh_token = self._new_refresh(grant)
        access, lifetime = self._new_access(grant, expires_in)
        return grant, access, lifetime

    def _new_refresh(self, grant: Grant) -> str:
        token = secrets.token_urlsafe(32)
        self._by_refresh[token] = grant
        return token

    def _new_access(self, grant: Grant, expires_in: float | None) -> tuple[str, float | None]:
        lifetime = self.settings.expires_in if expires_in is None else expires_in
        token = secrets.token_urlsafe(32)
        grant.access_tokens[token] = None if lifetime is None else self.settings.clock() + lifetime
        self._by_access[token] = grant
        self.on_token_issued()
        return token, lifetime

    def check_access(self, token: str | None) -> tuple[Grant | None, str]:
        """The grant an access token acts for, or ``None`` and why it is refused."""
        if not token:
            return None, "no bearer token"
        grant = self._by_access.get(token)
        if grant is None:
            return None, "unknown token"
        if grant.revoked:
            return None, "the token was revoked"
        expires_at = grant.access_tokens[token]
        if expires_at is not None and self.settings.clock() >= expires_at:
            return None, "the token expired"
        return grant, ""

    def secrets(self) -> Iterator[tuple[str, str]]:
        """``(label, value)`` for every code and token issued (labels name no secret)."""
        for grant in list(self._grants.values()):
            for access in list(grant.access_tokens):
                yield f"access token of grant {grant.id}", access
            if grant.refresh_token:
                yield f"refresh token of grant {grant.id}", grant.refresh_token
            for retired in list(grant.retired_refresh_tokens):
                yield f"retired refresh token of grant {grant.id}", retired
        for code in list(self._codes):
            yield "authorization code", code
        for token in list(self._by_access):
            yield "access token", token
        for token in list(self._by_refresh):
            yield "refresh token", token

    def find(self, token: str) -> Grant | None:
        """The grant of an access or refresh token (current or retired)."""
        return self._by_access.get(token) or self._by_refresh.get(token)

    def get(self, grant_id: str) -> Grant | None:
        """A grant by its public id."""
        return self._grants.get(grant_id)

    def revoke(self, token: str) -> Grant | None:
        """Revoke the grant of an access (or refresh) token; ``None`` if unknown."""
        grant = self.find(token)
        if grant is not None:
            self._revoke(grant, "revoked")
        return grant

    def _revoke(self, grant: Grant, reason: str) -> None:
        if not grant.revoked:
            grant.revoked = True
            grant.revoked_reason = reason

    def revoke_grant(self, grant: Grant) -> None:
        """Revoke ``grant``: every access and refresh token of it stops working."""
        self._revoke(grant, "revoked")

    def expire(self, grant: Grant | None = None, token: str | None = None) -> None:
        """Make access tokens expire now: one token, a grant's, or every grant's."""
        now = self.settings.clock()
        grants = [grant] if grant is not None else list(self._grants.values())
        for g in grants:
            for t, exp in g.access_tokens.items():
                if (token is None or t == token) and (exp is None or exp > now):
                    g.access_tokens[t] = now


def _answer(
    access: str, lifetime: float | None, refresh: str | None, s: Settings
) -> dict[str, Any]:
    body: dict[str, Any] = {"access_token": access}
    if lifetime is not None:
        body["expires_in"] = _number(lifetime)
    if refresh is not None:
        body["refresh_token"] = refresh
    body.update(s.token_response_extra)
    return body


def _page(message: str) -> AuthDecision:
    import html

    return AuthDecision(
        400,
        page=(
            "<!DOCTYPE html>\n<html><head><title>Authorization error</title></head>"
            f"<body><h1>Authorization error</h1><p>{html.escape(message)}</p></body></html>\n"
        ),
    )
