"""NetrexClient: the aiohttp session wrapper that callers use."""

from __future__ import annotations

import asyncio
import collections
import json
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Literal, Self, TypeVar, overload

import aiohttp
import attrs
from aiohttp import ClientRequest, ClientResponse, hdrs
from multidict import CIMultiDictProxy
from yarl import URL

from . import _log, _schema_fetch
from ._errors import ApiError, GraphQLError, NetrexError, ReauthorizationRequired, TransportError
from ._lifecycle import AsyncClosing
from ._manager import MIN_REFRESH_INTERVAL, StaticToken, TokenManager, TokenSource
from ._oauth import OAuth2Client
from ._oauth_protocol import OAuth2App, parse_retry_after
from ._provider import Provider
from ._redact import safe_text, scrub
from ._retry import RetryPolicy, is_testing, retrying
from ._stores._base import TokenStore

__all__ = ["ApiResponse", "NetrexClient"]

T = TypeVar("T")

#: Every call ends within a minute, a new connection within 10 s. No per-read timer
#: (``sock_read``): it costs about 7 % of the client's CPU per call, and ``total``
#: already ends an answer that stalls half-way.
DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=10)
#: Statuses worth another try: the gateway or the service is briefly away, or busy.
RETRY_STATUSES = frozenset({429, 502, 503, 504})

# One encoder for every call: json.dumps() with any non-default argument builds a new
# JSONEncoder each time, which costs about a microsecond per call on the hot path.
_encode_json = json.JSONEncoder(separators=(",", ":")).encode

_MUTATION = re.compile(r"(?:^|[}\s])mutation\b", re.MULTILINE)
_COMMENT = re.compile(r"#[^\n\r]*")
_STRING = re.compile(r'"""(?:[^"\\]|\\.|"(?!""))*"""|"(?:[^"\\\n]|\\.)*"')


def is_mutation(query: str) -> bool:
    """Whether a GraphQL document may contain a mutation (conservative: then no retry)."""
    text = _STRING.sub('""', _COMMENT.sub("", query))
    return _MUTATION.search(text) is not None


def _unauthorized(response: ClientResponse) -> bool:
    return response.status == 401


@attrs.frozen
class ApiResponse:
    """An answer from :meth:`NetrexClient.request`, fully read.

    Attributes:
        status: The HTTP status.
        headers: The response headers.
        body: The raw body.
    """

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")

    def json(self) -> Any:
        """The body decoded as JSON.

        Raises:
            ApiError: The body is not JSON.
        """
        try:
            return json.loads(self.body)
        except ValueError:
            raise ApiError(
                f"the API answered HTTP {self.status} with a body that is not JSON",
                status=self.status,
                body_excerpt=safe_text(self.body[:200].decode("utf-8", "replace")),
            ) from None


class _Retryable(Exception):
    def __init__(self, final: NetrexError, retry_after: float | None = None):
        super().__init__(str(final))
        self.final = final
        self.retry_after = retry_after


class NetrexClient(AsyncClosing):
    """An aiohttp session for the provider's API with a token that is always valid.

    ``auth`` is a :class:`TokenSource` (a :class:`TokenManager`, a :class:`StaticToken`)
    or a plain user-token string. The bearer token is added by :attr:`middleware`, and only
    to requests whose origin (scheme, host and port) is the provider's: never to another
    host, not on a redirect hop either. A 401 reports the token to ``auth.invalidate()``
    and retries once with the new token; a second 401 is an :class:`ApiError`.

    Queries are retried on connection errors, timeouts, 429 (honouring ``Retry-After``)
    and 502/503/504; mutations only when the caller says ``retry=True``.

    Ownership: the client closes the session it made, and the token manager and OAuth2
    client that :meth:`from_app` made; never a session, token source or store it was given.

    Args:
        auth: Where bearer tokens come from.
        provider: The installation (default ``https://system2.netrex.cz``).
        session: A session to borrow. Its middlewares are kept; this client's own
            :attr:`middleware` is added to its requests unless the session already has it.
        timeout: aiohttp timeouts of each attempt.
        limit: Most connections open at once; thousands of tasks may share them, queueing
            first come, first served (with a borrowed session: its connector's limit).
        retry: How transient faults are retried.
        auth_failed: Decides whether a response means "token rejected"; default: 401.
        user_agent: The ``User-Agent`` header.
    """

    def __init__(
        self,
        auth: TokenSource | str,
        *,
        provider: Provider | None = None,
        session: aiohttp.ClientSession | None = None,
        timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
        limit: int = 100,
        retry: RetryPolicy | None = None,
        auth_failed: Callable[[ClientResponse], bool] = _unauthorized,
        user_agent: str | None = None,
    ) -> None:
        if isinstance(auth, str):
            auth = StaticToken(auth)
        elif not isinstance(auth, TokenSource):
            raise TypeError(
                f"auth must be a TokenSource or a token string, not {type(auth).__name__}"
            )
        self.auth: TokenSource = auth
        self.provider = provider if provider is not None else _provider_of(auth)
        self.timeout = timeout
        self.limit = limit
        self.retry = retry if retry is not None else RetryPolicy()
        self.auth_failed = auth_failed
        if user_agent is None:
            from ._version import __version__

            user_agent = f"netrex-async/{__version__} aiohttp/{aiohttp.__version__}"
        self.user_agent = user_agent
        origin = self.provider.origin
        self._scheme, self._host, self._port = origin.scheme, origin.host, origin.port
        self._graphql_url = self.provider.graphql_url
        self._json_headers = {
            hdrs.CONTENT_TYPE: "application/json",
            hdrs.ACCEPT: "application/json",
            hdrs.USER_AGENT: user_agent,
        }
        self._session = session
        self._owns_session = False
        self._request_middlewares: tuple[Any, ...] | None = None
        if session is not None:
            existing = tuple(getattr(session, "_middlewares", ()) or ())
            if self.middleware not in existing:  # bound methods compare equal
                self._request_middlewares = (*existing, self.middleware)
        # Requests queue here, first come first served, *before* the middleware reads
        # the token: aiohttp's pool serves its waiters out of order, and a token read
        # before a long wait for a connection could expire on the way.
        pool = limit if session is None else getattr(session.connector, "limit", 0)
        self._slots: asyncio.Semaphore | _NoLimit = asyncio.Semaphore(pool) if pool else _NoLimit()
        self._owned: list[Any] = []
        self._last_sent = ""
        # The tokens sent lately (a refresh may land while older requests are in flight):
        # stripped from foreign redirect hops and scrubbed from error texts, all of them.
        self._sent: collections.deque[str] = collections.deque(maxlen=16)
        self._closed = False

    @property
    def auth_failed(self) -> Callable[[ClientResponse], bool]:
        """Decides whether a response means "token rejected" (default: HTTP 401)."""
        return self._auth_failed

    @auth_failed.setter
    def auth_failed(self, predicate: Callable[[ClientResponse], bool]) -> None:
        self._auth_failed = predicate
        self._default_auth_failed = predicate is _unauthorized

    @classmethod
    def from_app(
        cls,
        app: OAuth2App,
        store: TokenStore,
        *,
        margin: float | None = None,
        skew: float | None = None,
        background: bool = True,
        hooks: Any = (),
        min_refresh_interval: float = MIN_REFRESH_INTERVAL,
        **kwargs: Any,
    ) -> NetrexClient:
        """A client for ``app``'s grant kept in ``store``: the common case in one line.

        Builds and owns an :class:`OAuth2Client` and a :class:`TokenManager` (closed with
        the client); borrows ``store``. Extra keyword arguments go to the constructor.

        Example::

            async with NetrexClient.from_app(app, FileTokenStore(path)) as client:
                cameras = await client.graphql("{cameraList{name}}")
        """
        oauth = OAuth2Client(app)
        manager = TokenManager(
            oauth,
            store,
            margin=margin,
            skew=skew,
            background=background,
            hooks=hooks,
            min_refresh_interval=min_refresh_interval,
        )
        kwargs.setdefault("provider", app.provider)
        client = cls(manager, **kwargs)
        client._owned = [manager, oauth]
        return client

    def __repr__(self) -> str:
        return f"NetrexClient(provider={self.provider.base_url!r}, auth={self.auth!r})"

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        for owned in self._owned:
            if isinstance(owned, TokenManager):
                await owned.__aenter__()
        return self

    async def aclose(self) -> None:
        """Close what this client made (its session, and what :meth:`from_app` built)."""
        if self._closed:
            return
        self._closed = True
        for owned in self._owned:
            await owned.aclose()
        if self._owns_session and self._session is not None:
            session, self._session = self._session, None
            await session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        """The aiohttp session requests go through (made on first use if not given)."""
        if self._session is None:
            if self._closed:
                raise RuntimeError("this NetrexClient is closed")
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.limit, ttl_dns_cache=300),
                timeout=self.timeout,
                middlewares=(self.middleware,),
                # Bearer tokens only: no cookie can follow a redirect anywhere.
                cookie_jar=aiohttp.DummyCookieJar(),
                headers={hdrs.USER_AGENT: self.user_agent},
            )
            self._owns_session = True
        return self._session

    # -- auth --------------------------------------------------------------------------

    async def middleware(
        self, request: ClientRequest, handler: Callable[[ClientRequest], Awaitable[ClientResponse]]
    ) -> ClientResponse:
        """aiohttp client middleware: the bearer token, for the provider's origin only.

        Usable in a caller's own session:
        ``aiohttp.ClientSession(middlewares=(client.middleware,))``. aiohttp runs it again
        on every redirect hop, and each hop is checked anew.
        """
        url = request.url
        if url.port != self._port or url.host != self._host or url.scheme != self._scheme:
            auth = request.headers.get(hdrs.AUTHORIZATION)
            if auth is not None and any(auth.endswith(t) for t in self._sent):
                del request.headers[hdrs.AUTHORIZATION]
            return await handler(request)
        token = await self.auth.token()
        if token is not self._last_sent:
            self._remember(token)
        request.headers[hdrs.AUTHORIZATION] = "Bearer " + token
        response = await handler(request)
        if self._default_auth_failed:
            if response.status != 401:
                return response
        elif not self._auth_failed(response):
            return response
        await response.read()  # keep the body: this answer may be returned after all
        _log.client.info(
            "the API rejected the token (HTTP %d); refreshing and retrying once",
            response.status,
            extra={"event": "unauthorized", "status": response.status},
        )
        await self.auth.invalidate(token)
        fresh = await self.auth.token()
        if fresh == token:
            return response
        response.release()
        self._remember(fresh)
        request.headers[hdrs.AUTHORIZATION] = "Bearer " + fresh
        return await handler(request)

    def _remember(self, token: str) -> None:
        self._last_sent = token
        if not self._sent or self._sent[-1] != token:
            self._sent.append(token)

    # -- requests ----------------------------------------------------------------------

    async def graphql(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        *,
        operation_name: str | None = None,
        retry: bool | None = None,
    ) -> Any:
        """Run a GraphQL operation and return its ``data``.

        Args:
            query: The GraphQL document.
            variables: Its variables.
            operation_name: Which operation of the document to run.
            retry: Retry transient faults; default: for queries yes, for mutations no.

        Raises:
            GraphQLError: The answer has an ``errors`` list (with any partial ``data``).
            ApiError: A non-2xx answer, or a body that is not a GraphQL answer.
            TransportError: Network failure or timeout, after retries.
            ReauthorizationRequired: The grant is dead.
        """
        payload: dict[str, Any] = {"query": query}
        if variables is not None:
            payload["variables"] = variables
        if operation_name is not None:
            payload["operationName"] = operation_name
        body = _encode_json(payload).encode()
        try:
            status, raw = await self._post_graphql(body)
        except _Retryable as first:
            if retry is False or (retry is None and is_mutation(query)):
                raise first.final from None
            status, raw = await self._retry_after_first(first, lambda: self._post_graphql(body))
        return self._graphql_data(status, raw)

    async def _post_graphql(self, body: bytes) -> tuple[int, bytes]:
        try:
            async with (
                self._slots,
                (self._session or self.session).post(
                    self._graphql_url,
                    data=body,
                    headers=self._json_headers,
                    middlewares=self._request_middlewares,
                ) as resp,
            ):
                raw = await resp.read()
                status = resp.status
                if status in RETRY_STATUSES:
                    raise _Retryable(
                        self._api_error(status, raw, "POST", self._graphql_url),
                        parse_retry_after(resp.headers.get(hdrs.RETRY_AFTER)),
                    )
                return status, raw
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as e:
            raise _Retryable(self._transport_error(e, "POST", self._graphql_url)) from e

    def _graphql_data(self, status: int, raw: bytes) -> Any:
        if not 200 <= status < 300:
            raise self._api_error(status, raw, "POST", self._graphql_url)
        try:
            answer = json.loads(raw)
        except ValueError:
            raise ApiError(
                f"the GraphQL API answered HTTP {status} with a body that is not JSON",
                status=status,
                body_excerpt=self._excerpt(raw),
            ) from None
        if not isinstance(answer, dict):
            raise ApiError(
                f"the GraphQL API answered HTTP {status} with JSON that is not an object",
                status=status,
                body_excerpt=self._excerpt(raw),
            )
        errors = answer.get("errors")
        if errors:
            if not isinstance(errors, list):
                errors = [{"message": str(errors)}]
            errors = [e if isinstance(e, dict) else {"message": str(e)} for e in errors]
            first = safe_text(scrub(str(errors[0].get("message", "")), self._sent))
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise GraphQLError(
                f"the GraphQL API answered errors: {first}{more}",
                errors=errors,
                data=answer.get("data"),
                status=status,
            )
        if "data" not in answer:
            raise ApiError(
                "the GraphQL API answered neither data nor errors",
                status=status,
                body_excerpt=self._excerpt(raw),
            )
        return answer["data"]

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        retry: bool | None = None,
        raise_for_status: bool = True,
    ) -> ApiResponse:
        """Call another path of the provider (relative to its base URL), authenticated.

        Args:
            method: The HTTP method.
            path: A path at the provider, like ``"/api/graphql.php"``.
            params: Query parameters.
            json_body: A body sent as JSON.
            data: A raw body or form.
            headers: Extra headers.
            retry: Retry transient faults; default: only for GET, HEAD and OPTIONS.
            raise_for_status: Raise :class:`ApiError` for a non-2xx answer.

        Raises:
            ApiError, TransportError, ReauthorizationRequired.
        """
        if "://" in path:
            raise ValueError("request() takes a path at the provider, not a full URL")
        url = self.provider.url(path)
        if params:
            url = url.with_query(params)
        method = method.upper()

        async def once() -> ApiResponse:
            try:
                async with (
                    self._slots,
                    self.session.request(
                        method,
                        url,
                        json=json_body,
                        data=data,
                        headers=headers,
                        middlewares=self._request_middlewares,
                    ) as resp,
                ):
                    raw = await resp.read()
                    answer = ApiResponse(resp.status, resp.headers, raw)
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as e:
                raise _Retryable(self._transport_error(e, method, url)) from e
            if answer.status in RETRY_STATUSES:
                raise _Retryable(
                    self._api_error(answer.status, raw, method, url),
                    parse_retry_after(answer.headers.get(hdrs.RETRY_AFTER)),
                )
            return answer

        try:
            answer = await once()
        except _Retryable as first:
            idempotent = method in ("GET", "HEAD", "OPTIONS")
            if not (retry if retry is not None else idempotent):
                raise first.final from None
            answer = await self._retry_after_first(first, once)
        if raise_for_status and not 200 <= answer.status < 300:
            raise self._api_error(answer.status, answer.body, method, url)
        return answer

    async def _retry_after_first(self, first: _Retryable, again: Callable[[], Awaitable[T]]) -> T:
        policy = self.retry
        if policy.attempts <= 1:
            raise first.final from None
        rest = attrs.evolve(policy, attempts=policy.attempts - 1)
        hint = first.retry_after
        if hint is not None and hint > policy.max_retry_after:
            raise first.final from None
        if not is_testing():
            wait = hint if hint is not None else random.uniform(0, policy.initial)
            await asyncio.sleep(wait)

        def before_sleep(attempt: int, exc: BaseException, sleep: float) -> None:
            _log.client.debug(
                "retrying after a transient fault (attempt %d): %s",
                attempt + 1,
                exc,
                extra={"event": "api_retry", "attempt": attempt + 1, "sleep": sleep},
            )

        try:
            async for attempt in retrying(
                rest, lambda e: isinstance(e, _Retryable), before_sleep=before_sleep
            ):
                with attempt:
                    return await again()
        except _Retryable as r:
            raise r.final from None
        raise AssertionError("unreachable")  # pragma: no cover

    # -- collectors --------------------------------------------------------------------

    async def watch(
        self,
        query: str,
        *,
        every: float,
        variables: Mapping[str, Any] | None = None,
        operation_name: str | None = None,
        max_backoff: float = 60.0,
    ) -> AsyncIterator[Any]:
        """Run ``query`` every ``every`` seconds and yield each ``data``, for as long as
        the caller iterates.

        Token expiry is handled by the token source; outages, provider restarts, API and
        GraphQL errors are logged (WARNING) and retried with capped exponential back-off.
        Iteration ends only when the caller stops (or cancels), or with
        :class:`ReauthorizationRequired` when the grant is dead.

        Example::

            async for data in client.watch("{cameraList{name online}}", every=30):
                handle(data)
        """
        if every <= 0:
            raise ValueError("every must be a positive number of seconds")
        loop = asyncio.get_running_loop()
        failures = 0
        while True:
            started = loop.time()
            try:
                data = await self.graphql(query, variables, operation_name=operation_name)
            except ReauthorizationRequired:
                raise
            except NetrexError as e:
                failures += 1
                backoff = min(max_backoff, every * 2 ** min(failures - 1, 16))
                backoff = random.uniform(backoff / 2, backoff)
                _log.client.warning(
                    "watch: query failed (%s: %s); trying again in %.1f s",
                    type(e).__name__,
                    safe_text(e, limit=200),
                    backoff,
                    extra={"event": "watch_failed", "attempt": failures, "sleep": backoff},
                )
                await asyncio.sleep(0 if is_testing() else backoff)
                continue
            if failures:
                _log.client.info(
                    "watch: query works again after %d failures",
                    failures,
                    extra={"event": "watch_recovered", "attempt": failures},
                )
            failures = 0
            yield data
            await asyncio.sleep(max(0.0, every - (loop.time() - started)))

    # -- errors ------------------------------------------------------------------------

    def _excerpt(self, raw: bytes) -> str:
        text = raw[:300].decode("utf-8", "replace")
        return safe_text(scrub(text, self._sent), limit=300)

    def _api_error(self, status: int, raw: bytes, method: str, url: URL) -> ApiError:
        return ApiError(
            f"the API answered HTTP {status} to {method} {url.path}",
            status=status,
            body_excerpt=self._excerpt(raw),
        )

    def _transport_error(self, exc: BaseException, method: str, url: URL) -> TransportError:
        detail = safe_text(scrub(str(exc), self._sent), limit=200)
        return TransportError(
            f"{method} {url.with_query(None)} failed: {type(exc).__name__}"
            + (f": {detail}" if detail else "")
        )

    # -- schema ------------------------------------------------------------------------

    @overload
    async def schema(self, *, as_json: Literal[False] = False) -> str: ...
    @overload
    async def schema(self, *, as_json: Literal[True]) -> dict[str, Any]: ...
    async def schema(self, *, as_json: bool = False) -> str | dict[str, Any]:
        """The provider's schema as SDL text, from the standard introspection query.

        The query is an ordinary authenticated call (tokens, retries, errors as for
        :meth:`graphql`). SDL needs graphql-core: ``pip install 'netrex-async[graphql]'``.

        Args:
            as_json: Return the introspection ``data`` (``{"__schema": ...}``) instead,
                which needs no extra.

        Raises:
            ExtraRequired: SDL was asked for and graphql-core is not installed (nothing
                is sent then).
            ApiError: The answer is not a schema (introspection may be turned off).
            GraphQLError, TransportError, ReauthorizationRequired: As for :meth:`graphql`.
        """
        if as_json:
            return await _schema_fetch.fetch_introspection(self)
        return await _schema_fetch.fetch_sdl(self)


class _NoLimit:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


def _provider_of(auth: TokenSource) -> Provider:
    if isinstance(auth, TokenManager):
        return auth.oauth.app.provider
    return Provider()
