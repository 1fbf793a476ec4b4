"""OAuth2Client: the one adapter that talks to ``/oauth2/*``."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

import aiohttp
import attrs

from . import _log
from ._errors import StateMismatch, TokenEndpointError, TransportError
from ._lifecycle import AsyncClosing
from ._oauth_protocol import (
    AuthorizationRequest,
    OAuth2App,
    TokenRequest,
    TransientAnswer,
    build_refresh_request,
    build_revoke_request,
    build_token_request,
    new_authorization_request,
    parse_callback,
    parse_revoke_response,
    parse_token_response,
)
from ._redact import safe_text, scrub
from ._retry import RetryPolicy, retrying
from ._token import Token

__all__ = ["OAuth2Client"]

T = TypeVar("T")

DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=20, connect=10, sock_read=15)
#: Largest token-endpoint answer read; anything bigger is not a token.
MAX_BODY = 64 * 1024


class _Transient(Exception):
    """A retryable failure, carrying the error to raise if retries run out."""

    def __init__(self, final: Exception, retry_after: float | None = None):
        super().__init__(str(final))
        self.final = final
        self.retry_after = retry_after


async def _read_capped(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """The body up to ``limit`` bytes; more means it is too large.

    ``StreamReader.read(n)`` returns whatever has arrived, so an answer that comes in
    several pieces is read in a loop, not in one call.
    """
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await stream.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _transport_error(exc: BaseException, request: TokenRequest, what: str) -> TransportError:
    detail = type(exc).__name__
    text = str(exc)
    if text:
        # aiohttp's messages may quote the request URL, query string and all (in
        # whatever encoding): drop every query string of the endpoint, then scrub.
        text = re.sub(re.escape(request.safe_url) + r"\?[^\s'\"<>]*", request.safe_url, text)
        text = scrub(text, request.secrets)
        detail += f": {safe_text(text, limit=200)}"
    return TransportError(f"{what} {request.safe_url} failed: {detail}")


@attrs.define(repr=False)
class OAuth2Client(AsyncClosing):
    """Talks to the provider's ``/oauth2/auth``, ``/oauth2/token`` and ``/oauth2/revoke``.

    An async context manager: it opens its own :class:`aiohttp.ClientSession` on first
    use and closes it in :meth:`aclose`, unless it was handed a session, which it borrows
    and leaves open. Its requests never follow redirects and never run the session's
    middlewares (so a :class:`NetrexClient` middleware cannot recurse into it).

    Transient faults (connection errors, timeouts, 5xx, 429 with ``Retry-After``) are
    retried according to ``retry``; OAuth errors and other 4xx answers are not.

    Args:
        app: The registered application.
        session: A session to borrow instead of owning one. Note that its
            ``TraceConfig``\\ s would see token-endpoint URLs, which carry secrets when
            parameters go in the query string; by default the client uses a private session.
        retry: How hard to retry transient faults.
        timeout: aiohttp timeouts for each attempt.
    """

    app: OAuth2App
    _session: aiohttp.ClientSession | None = attrs.field(default=None, alias="session")
    retry: RetryPolicy = attrs.field(factory=RetryPolicy, kw_only=True)
    timeout: aiohttp.ClientTimeout = attrs.field(default=DEFAULT_TIMEOUT, kw_only=True)
    _owns_session: bool = attrs.field(init=False, default=False)
    # state -> when its request expires; pruned, since a stale state is refused anyway
    _used_states: dict[str, float] = attrs.field(init=False, factory=dict)
    _closed: bool = attrs.field(init=False, default=False)

    def __repr__(self) -> str:
        return (
            f"OAuth2Client(client_id={self.app.client_id!r}, "
            f"provider={self.app.provider.base_url!r})"
        )

    async def aclose(self) -> None:
        """Close the session this client opened (not one it borrowed). Idempotent."""
        self._closed = True
        if self._owns_session and self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("this OAuth2Client is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
            self._owns_session = True
        return self._session

    # -- the browser step --------------------------------------------------------------

    def authorization_request(
        self, scopes: str | Iterable[str] = ("read",), *, allow_unknown_scopes: bool = False
    ) -> AuthorizationRequest:
        """A new authorization request: the URL for the user's browser, and its state.

        Args:
            scopes: Rights to ask for, as ``"read,events"`` or an iterable of names.
            allow_unknown_scopes: Send scope names this library does not know.

        Raises:
            ValueError: An unknown or malformed scope name.
        """
        return new_authorization_request(
            self.app, scopes, allow_unknown_scopes=allow_unknown_scopes
        )

    async def exchange(self, callback_url: str, request: AuthorizationRequest) -> Token:
        """Check the callback against ``request`` and trade its code for a token.

        The state is checked before anything is sent: a missing, wrong, reused or stale
        state raises :class:`StateMismatch` and no token request leaves this process.

        Raises:
            StateMismatch: See above.
            AuthorizationDenied: The user refused (``error=access_denied``).
            OAuthError: Another callback error, or the token endpoint refused the code
                (:class:`InvalidGrant`, :class:`InvalidClient`, :class:`TokenEndpointError`).
            TransportError: The token endpoint could not be reached, after retries.
        """
        if request.state in self._used_states:
            raise StateMismatch("this authorization request was already used: start again")
        result = parse_callback(callback_url, request)
        now = time.time()
        self._used_states = {s: t for s, t in self._used_states.items() if t > now}
        self._used_states[request.state] = request.created_at + request.max_age
        token_request = build_token_request(
            self.app, result.code, code_verifier=request.code_verifier
        )
        return await self._token_call(token_request, previous=None, scopes=request.scopes)

    async def refresh(self, token: Token) -> Token:
        """A new token for ``token``'s grant.

        The answer's refresh token replaces the old one (the provider may rotate them);
        an answer without one keeps the old one.

        Raises:
            ReauthorizationRequired: ``token`` has no refresh token (a temporary grant).
            InvalidGrant: The refresh token was refused.
            OAuthError, TransportError: As for :meth:`exchange`.
        """
        token_request = build_refresh_request(self.app, token)
        return await self._token_call(token_request, previous=token, scopes=token.scopes)

    async def revoke(self, token: Token) -> None:
        """Cancel ``token`` (and its refresh token) at the provider.

        Raises:
            TokenEndpointError: The provider refused.
            TransportError: It could not be reached, after retries.
        """
        request = build_revoke_request(self.app, token)
        _log.oauth.debug(
            "revoking token",
            extra={"event": "revoke", "grant": token.fingerprint, "endpoint": request.safe_url},
        )

        async def once() -> None:
            status, headers, body = await self._post(request)
            try:
                parse_revoke_response(status, headers, body, request)
            except TransientAnswer as t:
                raise _Transient(t.final, t.retry_after) from None

        await self._with_retries(once, request)

    # -- I/O ---------------------------------------------------------------------------

    async def _token_call(
        self, request: TokenRequest, *, previous: Token | None, scopes: Iterable[str]
    ) -> Token:
        scopes = tuple(scopes)
        _log.oauth.debug(
            "token request",
            extra={
                "event": "token_request",
                "grant_type": request.grant_type,
                "endpoint": request.safe_url,
                "grant": previous.fingerprint if previous else None,
            },
        )

        async def once() -> Token:
            status, headers, body = await self._post(request)
            try:
                return parse_token_response(
                    status,
                    headers,
                    body,
                    request,
                    now=time.time(),
                    previous=previous,
                    requested_scopes=scopes,
                )
            except TransientAnswer as t:
                raise _Transient(t.final, t.retry_after) from None

        return await self._with_retries(once, request)

    async def _with_retries(self, once: Callable[[], Awaitable[T]], request: TokenRequest) -> T:
        def before_sleep(attempt: int, exc: BaseException, sleep: float) -> None:
            _log.oauth.debug(
                "retrying %s after a transient fault (attempt %d): %s",
                request.safe_url,
                attempt,
                str(exc),  # the text only: the exception object drags its chain along
                extra={"event": "oauth_retry", "attempt": attempt, "sleep": sleep},
            )

        try:
            async for attempt in retrying(
                self.retry, lambda e: isinstance(e, _Transient), before_sleep=before_sleep
            ):
                with attempt:
                    return await once()
        except _Transient as t:
            raise t.final from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _post(self, request: TokenRequest) -> tuple[int, dict[str, str], bytes]:
        session = self._get_session()
        failure: TransportError | None = None
        try:
            async with session.post(
                request.url,
                data=request.form,
                allow_redirects=False,
                middlewares=(),
                timeout=self.timeout,
                headers={"Accept": "application/json"},
            ) as resp:
                body = await _read_capped(resp.content, MAX_BODY + 1)
                headers = dict(resp.headers.items())
                status = resp.status
        except (TimeoutError, aiohttp.ClientError) as e:
            failure = _transport_error(e, request, "request to")
        if failure is not None:
            # Raised outside the ``except`` block, so that aiohttp's exception (whose text
            # may quote the URL, secrets and all) is not kept as ``__context__``.
            raise _Transient(failure)
        if len(body) > MAX_BODY:
            raise TokenEndpointError(
                f"the answer of {request.safe_url} is larger than {MAX_BODY} bytes", status=status
            )
        if 300 <= status < 400:
            raise TokenEndpointError(
                f"{request.safe_url} answered a redirect (HTTP {status}); "
                "token requests never follow redirects",
                status=status,
            )
        return status, headers, body
