"""OAuth2Client: the one adapter that talks to ``/oauth2/*``."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

import aiohttp
import attrs

from . import _log, _retry
from ._errors import ClosedError, StateMismatch, TokenEndpointError, TransportError
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
from ._retry import RetryPolicy, Transient
from ._token import Token

__all__ = ["OAuth2Client"]

T = TypeVar("T")

DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=20, connect=10, sock_read=15)
#: Largest token-endpoint answer read; anything bigger is not a token.
MAX_BODY = 64 * 1024


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


def _wall_clock() -> float:
    """``time.time()``, looked up at each call (so a test may stand in a clock of its own)."""
    return time.time()


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
    retried according to ``retry``; OAuth errors and other 4xx answers are not. Each call
    to the token or revoke endpoint ends within ``retry.max_time`` seconds of its start,
    whatever the server does (see :attr:`worst_case`).

    Args:
        app: The registered application.
        session: A session to borrow instead of owning one. Note that its
            ``TraceConfig``\\ s would see token-endpoint URLs, which carry secrets when
            parameters go in the query string; by default the client uses a private session.
        retry: How hard to retry transient faults; its ``max_time`` bounds each whole
            call, every attempt included.
        timeout: aiohttp timeouts for each attempt (its ``total`` is cut to what is left
            of the call's deadline).
        clock: Epoch seconds now (default: ``time.time``): the one clock that stamps
            tokens (``issued_at``, ``expires_at``) and judges the age of authorization
            requests. A :class:`TokenManager` judges tokens with the same clock by default.
    """

    app: OAuth2App
    _session: aiohttp.ClientSession | None = attrs.field(default=None, alias="session")
    retry: RetryPolicy = attrs.field(factory=RetryPolicy, kw_only=True)
    timeout: aiohttp.ClientTimeout = attrs.field(default=DEFAULT_TIMEOUT, kw_only=True)
    clock: Callable[[], float] = attrs.field(factory=lambda: _wall_clock, kw_only=True)
    _owns_session: bool = attrs.field(init=False, default=False)
    # state -> when its request expires; pruned, since a stale state is refused anyway
    _used_states: dict[str, float] = attrs.field(init=False, factory=dict)
    _closed: bool = attrs.field(init=False, default=False)

    def __repr__(self) -> str:
        return (
            f"OAuth2Client(client_id={self.app.client_id!r}, "
            f"provider={self.app.provider.base_url!r})"
        )

    @property
    def worst_case(self) -> float:
        """Seconds one :meth:`refresh` (or :meth:`exchange`, :meth:`revoke`) can take.

        The retry deadline ``retry.max_time`` plus a bounded slack for the attempt cut
        off at the deadline to unwind; what a store's lock lease must outlast.
        """
        return _retry.worst_case(self.retry)

    async def aclose(self) -> None:
        """Close the session this client opened (not one it borrowed). Idempotent."""
        self._closed = True
        if self._owns_session and self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise ClosedError("this OAuth2Client is closed")
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
            self.app, scopes, allow_unknown_scopes=allow_unknown_scopes, now=self.clock()
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
            TransportError: The token endpoint could not be reached, after retries, or
                the call's deadline (``retry.max_time``) passed.
            ClosedError: The client is closed.
        """
        if request.state in self._used_states:
            raise StateMismatch("this authorization request was already used: start again")
        now = self.clock()
        result = parse_callback(callback_url, request, now=now)
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
                raise Transient(t.final, retry_after=t.retry_after) from None

        await self._call(once, request)

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
            # Stamped when the request leaves: the provider starts the token's life at
            # some moment after that, so a slow answer cannot make it look younger.
            sent = self.clock()
            status, headers, body = await self._post(request)
            try:
                return parse_token_response(
                    status,
                    headers,
                    body,
                    request,
                    now=sent,
                    previous=previous,
                    requested_scopes=scopes,
                )
            except TransientAnswer as t:
                raise Transient(t.final, retry_after=t.retry_after) from None

        return await self._call(once, request)

    async def _call(self, once: Callable[[], Awaitable[T]], request: TokenRequest) -> T:
        return await _retry.call(
            once,
            self.retry,
            logger=_log.oauth,
            event="oauth_retry",
            what=f"POST {request.safe_url}",
        )

    def _attempt_timeout(self) -> aiohttp.ClientTimeout:
        """This attempt's aiohttp timeouts: ``timeout``, its total cut to the time left."""
        left = _retry.time_left()
        total = self.timeout.total
        if left is None or (total is not None and total <= left):
            return self.timeout
        # aiohttp treats 0 as "no timeout": keep a positive total (the deadline's own
        # cancellation ends the attempt anyway).
        return attrs.evolve(self.timeout, total=max(left, 1e-3))

    async def _post(self, request: TokenRequest) -> tuple[int, dict[str, str], bytes]:
        session = self._get_session()
        failure: TransportError | None = None
        try:
            async with session.post(
                request.url,
                data=request.form,
                allow_redirects=False,
                middlewares=(),
                timeout=self._attempt_timeout(),
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
            raise Transient(failure)
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
