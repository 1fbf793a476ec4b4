"""NetrexClient: the aiohttp session wrapper that callers use.

One send path serves :meth:`NetrexClient.graphql` and :meth:`NetrexClient.request`:
``_call`` (the deadline, and retries through :func:`netrex_async._retry.call`) runs
``_attempt``, which drives the sans-I/O :func:`~netrex_async._auth_flow.auth_flow` over
the client's session, sets the ``Authorization`` header itself, reads the answer up to
``max_response_bytes`` and turns every aiohttp failure into a :class:`NetrexError` at this
boundary, with nothing of aiohttp's exception (whose ``request_info`` quotes the bearer
header) left in the chain.
"""

from __future__ import annotations

import asyncio
import collections
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Final, Literal, Self, overload

import aiohttp
import attrs
from aiohttp import ClientRequest, ClientResponse, hdrs
from multidict import CIMultiDictProxy
from yarl import URL

from . import _json, _log, _schema_fetch
from ._auth_flow import (
    TOKEN,
    Answer,
    FlowConfig,
    Invalidate,
    auth_flow,
    default_token_rejected,
    graphql_unauthenticated,
    json_type,
)
from ._checkpoints import Checkpoint
from ._collect import Collection
from ._deadline import Watchdog
from ._errors import (
    ApiError,
    ClosedError,
    GraphQLError,
    NetrexError,
    ReauthorizationRequired,
    TransportError,
)
from ._lifecycle import AsyncClosing
from ._manager import MIN_REFRESH_INTERVAL, StaticToken, TokenManager, TokenSource
from ._oauth import OAuth2Client
from ._oauth_protocol import OAuth2App, parse_retry_after
from ._provider import Provider
from ._redact import safe_text, scrub
from ._retry import RetryPolicy, Transient, call, is_testing
from ._stores._base import TokenStore

__all__ = ["DEFAULT_MAX_RESPONSE_BYTES", "DEFAULT_RETRY", "ApiResponse", "NetrexClient"]

#: aiohttp timeouts of each attempt: a new connection within 10 s. No ``total``: the
#: whole call has a deadline of its own (:data:`DEFAULT_RETRY`), which also covers the
#: wait for a token and for a connection slot; and no per-read timer (``sock_read``): it
#: costs about 7 % of the client's CPU per call, and the deadline already ends an answer
#: that stalls half-way.
DEFAULT_TIMEOUT: Final = aiohttp.ClientTimeout(total=None, sock_connect=10)
#: Every call ends within a minute: 59 s for all attempts and back-offs, counted from the
#: start of the first attempt (the wait for a token and for a connection included), plus
#: at most 1 s for the attempt cut off at the deadline to unwind.
DEFAULT_RETRY: Final = RetryPolicy(max_time=59.0)
#: 16 MiB: far above any answer this API is known to give (a page of thousands of camera
#: events is a few MB), so no real answer is refused, yet small enough that a hostile or
#: broken server cannot make a process run out of memory: even 100 connections at the
#: limit at once hold 1.6 GiB, where one endless body used to grow without bound.
DEFAULT_MAX_RESPONSE_BYTES: Final = 16 * 1024 * 1024
#: Statuses worth another try: the gateway or the service is briefly away, or busy.
RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})
_IDEMPOTENT: Final = frozenset({"GET", "HEAD", "OPTIONS"})

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
            ApiError: The body is not JSON (or nested too deeply to decode).
        """
        try:
            return _json.loads(self.body)
        except ValueError as e:
            problem = str(e)
        raise ApiError(
            f"the API answered HTTP {self.status} with a body that is {problem}",
            status=self.status,
            body_excerpt=safe_text(self.body[:200].decode("utf-8", "replace")),
        )


class NetrexClient(AsyncClosing):
    """An aiohttp session for the provider's API with a token that is always valid.

    ``auth`` is a :class:`TokenSource` (a :class:`TokenManager`, a :class:`StaticToken`)
    or a plain user-token string. The bearer token goes only to the provider's origin
    (scheme, host and port). API requests follow redirects only within that origin: a
    redirect elsewhere, or from https to http, is an :class:`ApiError` naming the status
    and the target origin, and nothing is sent there. When the API rejects the token
    (``token_rejected``: by default HTTP 401, or a GraphQL error with
    ``extensions.code == "UNAUTHENTICATED"``), the client reports it to
    ``auth.invalidate()`` and retries once with the new token; a second rejection is the
    answer (an :class:`ApiError` or :class:`GraphQLError`).

    Every call ends within a minute with the default ``retry`` policy: 59 s from the
    start of the first attempt for every attempt and back-off, the wait for a token and
    for a connection included, plus at most 1 s for the attempt cut off at that deadline
    to unwind (``worst_case(client.retry)``). Queries are retried on connection errors,
    timeouts, 429 (honouring ``Retry-After``) and 502/503/504; mutations only when the
    caller says ``retry=True``.

    Answers are read up to ``max_response_bytes``; a longer one is an :class:`ApiError`
    naming the limit, and its connection is closed, not drained.

    Ownership: the client closes the session it made, and the token manager and OAuth2
    client that :meth:`from_app` made (in the reverse order of their making, each close
    tried even if another fails); never a session, token source or store it was given.

    Args:
        auth: Where bearer tokens come from.
        provider: The installation (default ``https://system2.netrex.cz``).
        session: A session to borrow. The client sets the header on its own requests
            itself; the session's middlewares run, except this client's
            :attr:`middleware` (which would do the same work twice).
        timeout: aiohttp timeouts of each attempt (default: connect within 10 s; the
            deadline of ``retry`` bounds the whole call).
        limit: Most connections open at once; thousands of tasks may share them, queueing
            first come, first served (with a borrowed session: its connector's limit).
        retry: How transient faults are retried, and the deadline of a whole call
            (``max_time``).
        auth_failed: Decides from the :class:`aiohttp.ClientResponse` whether the token
            was rejected (default: HTTP 401). Kept for earlier callers: prefer
            ``token_rejected``. The GraphQL ``UNAUTHENTICATED`` rule applies either way.
        token_rejected: Decides whether the token was rejected, from an
            :class:`~netrex_async._auth_flow.Answer` (``status``, ``headers``, ``body``,
            ``json()``); replaces the whole default rule, ``auth_failed`` included.
        max_response_bytes: The longest answer read, in bytes.
        user_agent: The ``User-Agent`` header.

    Raises:
        TypeError: ``auth`` is neither a token source nor a string.
        ValueError: ``max_response_bytes`` is not positive.
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
        token_rejected: Callable[[Answer], bool] | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        user_agent: str | None = None,
    ) -> None:
        if isinstance(auth, str):
            auth = StaticToken(auth)
        elif not isinstance(auth, TokenSource):
            raise TypeError(
                f"auth must be a TokenSource or a token string, not {type(auth).__name__}"
            )
        if not isinstance(max_response_bytes, int) or max_response_bytes <= 0:
            raise ValueError("max_response_bytes must be a positive number of bytes")
        self.auth: TokenSource = auth
        self.provider = provider if provider is not None else _provider_of(auth)
        self.timeout = timeout
        self.limit = limit
        self.retry = retry if retry is not None else DEFAULT_RETRY
        self.max_response_bytes = max_response_bytes
        self._token_rejected = token_rejected
        self.auth_failed = auth_failed  # builds the flow's configuration
        if user_agent is None:
            from ._version import __version__

            user_agent = f"netrex-async/{__version__} aiohttp/{aiohttp.__version__}"
        self.user_agent = user_agent
        self._graphql_url = self.provider.graphql_url
        self._json_headers: dict[str, str] = {
            hdrs.CONTENT_TYPE: "application/json",
            hdrs.ACCEPT: "application/json",
        }
        self._session = session
        # What this client made, in the order it made them; closed in reverse.
        self._owned: list[Any] = []
        self._request_middlewares: tuple[Any, ...] | None = ()
        if session is not None:
            existing = tuple(getattr(session, "_middlewares", ()) or ())
            # The session's own middlewares run; this client's would authenticate twice.
            mine = tuple(m for m in existing if m != self.middleware)  # bound methods: ==
            self._request_middlewares = None if mine == existing else mine
        # Requests queue here, first come first served, *before* the token is read:
        # aiohttp's pool serves its waiters out of order, and a token read before a long
        # wait for a connection could expire on the way.
        pool = limit if session is None else getattr(session.connector, "limit", 0)
        self._slots = _Slots(pool) if pool else None
        # The tokens sent lately (a refresh may land while older requests are in flight):
        # stripped from foreign requests in a caller's session and scrubbed from error
        # texts, all of them.
        self._sent: collections.deque[str] = collections.deque(maxlen=16)
        self._watchdog: Watchdog | None = None
        self._closed = False

    @property
    def auth_failed(self) -> Callable[[ClientResponse], bool]:
        """Decides from the response whether the token was rejected (default: HTTP 401)."""
        return self._auth_failed

    @auth_failed.setter
    def auth_failed(self, predicate: Callable[[ClientResponse], bool]) -> None:
        self._auth_failed = predicate
        rejected = self._token_rejected
        if rejected is None:
            if predicate is _unauthorized:
                rejected = default_token_rejected
            else:

                def rejected(answer: Answer) -> bool:
                    return predicate(answer.response) or graphql_unauthenticated(answer)

        self._flow = FlowConfig(self.provider.origin, rejected, self._excerpt)

    @property
    def token_rejected(self) -> Callable[[Answer], bool]:
        """The rule of "the API rejected the token" that the 401 flow applies."""
        return self._flow.rejected

    @token_rejected.setter
    def token_rejected(self, predicate: Callable[[Answer], bool] | None) -> None:
        self._token_rejected = predicate
        self.auth_failed = self._auth_failed

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
        client._owned = [oauth, manager]
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
        """Close what this client made, newest first, each even if another fails.

        The session it made, then what :meth:`from_app` built. A close that fails is
        logged (WARNING, ``close_failed``) and the next one is still tried. Calls made
        during or after this raise :class:`ClosedError`.
        """
        if self._closed:
            return
        self._closed = True
        owned, self._owned = self._owned, []
        for resource in reversed(owned):
            try:
                if isinstance(resource, aiohttp.ClientSession):
                    await resource.close()
                else:
                    await resource.aclose()
            except Exception as e:
                problem = f"{type(e).__name__}: {safe_text(scrub(str(e), self._sent))}"
                _log.client.warning(
                    "closing %s failed (%s); closing the rest",
                    type(resource).__name__,
                    problem,
                    extra={"event": "close_failed"},
                )

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._closed

    @property
    def session(self) -> aiohttp.ClientSession:
        """The aiohttp session requests go through (made on first use if not given).

        Raises:
            ClosedError: The client is closed.
        """
        session = self._session
        if session is None or self._closed:
            if self._closed:
                raise ClosedError("this NetrexClient is closed")
            session = self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.limit, ttl_dns_cache=300),
                timeout=self.timeout,
                # Bearer tokens only: no cookie can follow a redirect anywhere.
                cookie_jar=aiohttp.DummyCookieJar(),
                headers={hdrs.USER_AGENT: self.user_agent},
            )
            self._owned.append(session)
        return session

    # -- the middleware driver (a caller's own session) ---------------------------------

    async def middleware(
        self, request: ClientRequest, handler: Callable[[ClientRequest], Awaitable[ClientResponse]]
    ) -> ClientResponse:
        """aiohttp client middleware: the bearer token, for the provider's origin only.

        Usable in a caller's own session:
        ``aiohttp.ClientSession(middlewares=(client.middleware,))``. aiohttp runs it again
        on every redirect hop, and each hop is checked anew: a redirect from the provider
        to another origin (or from https to http) raises :class:`ApiError` before
        anything is sent there. The ``UNAUTHENTICATED`` rule sees JSON answers with a
        ``Content-Length`` up to ``max_response_bytes`` (it reads them; the body stays
        readable); the client's own calls apply it to every answer.

        Raises:
            ApiError: The provider redirected the request away from its origin.
        """
        url = request.url
        if not self._flow.is_home(url):
            auth = request.headers.get(hdrs.AUTHORIZATION)
            if auth is not None and any(auth.endswith(t) for t in self._sent):
                del request.headers[hdrs.AUTHORIZATION]
            return await handler(request)
        source = self.auth
        flow = auth_flow(self._flow, request.method, url, follow=False)
        step = next(flow)
        response: ClientResponse | None = None
        while True:
            value: Any = None
            if step is TOKEN:
                value = await source.token()
            elif step.__class__ is Invalidate:
                await source.invalidate(step.token)
            else:
                if response is not None:
                    response.release()
                token: str = step.token  # type: ignore[attr-defined]
                self._remember(token)
                request.headers[hdrs.AUTHORIZATION] = "Bearer " + token
                response = await handler(request)
                value = Answer(
                    response.status, response.headers, await self._peek(response), response
                )
            try:
                step = flow.send(value)
            except StopIteration as stop:
                answer: Answer = stop.value
                return answer.response  # type: ignore[no-any-return]

    async def _peek(self, response: ClientResponse) -> bytes | None:
        # The body of a small JSON answer, for the rejection rule; aiohttp keeps it, so
        # the caller can still read it.
        if not 200 <= response.status < 300 or not json_type(
            response.headers.get(hdrs.CONTENT_TYPE)
        ):
            return None
        length = response.content_length
        if length is None or length > self.max_response_bytes:
            return None
        return await response.read()

    def _remember(self, token: str) -> None:
        sent = self._sent
        if not sent or sent[-1] != token:
            sent.append(token)

    # -- the send path -----------------------------------------------------------------

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
            ApiError: A non-2xx answer, a body that is not a GraphQL answer (or too
                long, or nested too deeply), or a redirect away from the provider.
            TransportError: Network failure, timeout or a malformed HTTP answer (after
                retries), or the deadline passed.
            ReauthorizationRequired: The grant is dead.
            ClosedError: The client is closed.
        """
        if variables is None:
            payload = {"query": query}
            if operation_name is not None:
                payload["operationName"] = operation_name
            body = _json.dumps_strings(payload)
        else:
            full: dict[str, Any] = {"query": query, "variables": variables}
            if operation_name is not None:
                full["operationName"] = operation_name
            body = _json.dumps(full)
        answer = await self._call(
            "POST", self._graphql_url, body, self._json_headers, retry, query=query
        )
        return self._graphql_data(answer)

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
            data: A raw body (bytes or str) or a form (a mapping).
            headers: Extra headers.
            retry: Retry transient faults; default: only for GET, HEAD and OPTIONS.
            raise_for_status: Raise :class:`ApiError` for a non-2xx answer.

        Raises:
            ValueError: ``path`` is a full URL, or both ``json_body`` and ``data`` given.
            TypeError: ``json_body`` cannot be encoded as JSON.
            ApiError, TransportError, ReauthorizationRequired, ClosedError: As for
                :meth:`graphql`.
        """
        if "://" in path:
            raise ValueError("request() takes a path at the provider, not a full URL")
        if json_body is not None and data is not None:
            raise ValueError("request() takes json_body or data, not both")
        url = self.provider.url(path)
        if params:
            url = url.with_query(params)
        method = method.upper()
        extra: dict[str, str] = {str(k): v for k, v in headers.items()} if headers else {}
        if json_body is not None:
            data = _json.dumps(json_body)  # a TypeError here is the caller's argument
            extra.setdefault("Content-Type", "application/json")
        answer = await self._call(method, url, data, extra, retry)
        assert answer.body is not None
        result = ApiResponse(answer.status, answer.headers, answer.body)
        if raise_for_status and not 200 <= answer.status < 300:
            raise self._api_error(answer.status, answer.body, method, url)
        return result

    async def _call(
        self,
        method: str,
        url: URL,
        data: Any,
        headers: Mapping[str, str],
        retry: bool | None,
        *,
        query: str | None = None,
    ) -> Answer:
        """One API call under the deadline: the first attempt here, retries by call().

        ``query``: the GraphQL document of a :meth:`graphql` call (its answer is decoded
        in the attempt; ``retry=None`` then means "unless it is a mutation", decided only
        when a retry is in question).
        """
        parse = query is not None
        policy = self.retry
        loop = asyncio.get_running_loop()
        deadline = loop.time() + policy.max_time
        first: Transient | None = None
        watchdog = self._watchdog
        if watchdog is None or watchdog.loop is not loop:
            watchdog = self._watchdog = Watchdog(loop)
        watch = watchdog.watch(deadline)
        try:
            answer = await self._attempt(method, url, data, headers, parse)
        except Transient as t:
            watchdog.done(watch, cancelled=False)
            first = t
        except asyncio.CancelledError:
            if not watchdog.done(watch, cancelled=True):
                raise  # the caller's cancellation, not the deadline's
            # The deadline ended the attempt: this call's TransportError, raised below.
        except BaseException:
            watchdog.done(watch, cancelled=False)
            raise
        else:
            watchdog.done(watch, cancelled=False)
            return answer
        what = f"{method} {url.with_query(None)}"
        if first is None:
            raise TransportError(
                f"{what} gave up after {policy.max_time:g} s (the retry deadline), in attempt 1"
            )
        left = deadline - loop.time()
        if retry is None:
            retry = not is_mutation(query) if query is not None else method in _IDEMPOTENT
        if not retry or policy.attempts <= 1 or left <= 0:
            raise first.final
        # The retry loop is call()'s, and it decides from this first failure as from any
        # other (its back-off, Retry-After, log line), under what is left of the deadline.
        replay = [first]

        async def again() -> Answer:
            if replay:
                raise replay.pop()
            return await self._attempt(method, url, data, headers, parse)

        return await call(
            again,
            attrs.evolve(policy, max_time=left),
            logger=_log.client,
            event="api_retry",
            what=what,
        )

    async def _attempt(
        self, method: str, url: URL, data: Any, headers: Mapping[str, str], parse: bool
    ) -> Answer:
        """One attempt: the 401 flow over this client's session; errors at the boundary.

        The client's own driver of the flow: sets the header itself, follows same-origin
        redirects through the flow, reads each answer whole (bounded). Its token and
        invalidate steps are the middleware's, written out again rather than shared, and
        the driver is not a coroutine of its own: each layer of coroutines costs a frame
        on every resume of the call, on the hot path.
        """
        if self._closed:
            raise ClosedError("this NetrexClient is closed")
        slots = self._slots
        if slots is not None:
            if slots.free > 0:
                slots.free -= 1
            else:
                await slots.wait()
        failure: NetrexError
        retryable = True
        try:
            session = self._session or self.session
            source = self.auth
            flow = auth_flow(self._flow, method, url, follow=True)
            step = next(flow)
            while True:
                value: Any = None
                if step is TOKEN:
                    value = await source.token()
                elif step.__class__ is Invalidate:
                    await source.invalidate(step.token)
                else:
                    token: str = step.token  # type: ignore[attr-defined]
                    sent = self._sent
                    if not sent or sent[-1] != token:
                        sent.append(token)
                    send_headers = dict(headers)
                    send_headers[hdrs.AUTHORIZATION] = "Bearer " + token
                    async with session.request(
                        step.method,  # type: ignore[attr-defined]
                        step.url,  # type: ignore[attr-defined]
                        data=data if step.body else None,  # type: ignore[attr-defined]
                        headers=send_headers,
                        allow_redirects=False,
                        middlewares=self._request_middlewares,
                    ) as resp:
                        length = resp.content_length
                        if (
                            length is not None
                            and length <= self.max_response_bytes
                            and hdrs.CONTENT_ENCODING not in resp.headers
                        ):
                            raw = await resp.read()  # _read()'s fast path, one coroutine less
                        else:
                            raw = await self._read(resp)
                        value = Answer(resp.status, resp.headers, raw, resp)
                    if parse:
                        # A GraphQL answer is decoded anyway: decoded here, once, the
                        # rejection rule reads its errors instead of searching the body.
                        value.decode()
                try:
                    step = flow.send(value)
                except StopIteration as stop:
                    answer: Answer = stop.value
                    break
        except NetrexError:
            raise  # the flow's own verdicts (a refused redirect, a dead grant...)
        except aiohttp.ClientResponseError as e:
            # A malformed answer (bad status line, bad Content-Length, a header over the
            # size limit), or a redirect failure from a caller's middleware.
            failure, retryable = self._transport_error(e, method, url, e.message), False
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            failure = self._transport_error(e, method, url, str(e))
        except RuntimeError:
            # aiohttp's "Session is closed": this client's aclose(), or the caller closed
            # the session it lent. Anything else is a bug, not a fault of the API.
            lent = self._session
            if not self.closed and (lent is None or not lent.closed):
                raise
            failure, retryable = ClosedError(f"{method} {url.path}: the session is closed"), False
        else:
            if answer.status in RETRY_STATUSES:
                raise Transient(
                    self._api_error(answer.status, answer.body, method, url),
                    retry_after=parse_retry_after(answer.headers.get(hdrs.RETRY_AFTER)),
                )
            return answer
        finally:
            if slots is not None:
                slots.release()
        # Raised out here, not in an except block: aiohttp's exception (whose request_info
        # quotes the Authorization header) must not stay attached as context.
        if self.closed and not isinstance(failure, ClosedError):
            raise ClosedError(f"{method} {url.path}: the client was closed during the call")
        if retryable:
            raise Transient(failure)
        raise failure

    async def _read(self, resp: ClientResponse) -> bytes:
        """The whole body, up to ``max_response_bytes``; beyond it the connection is closed."""
        limit = self.max_response_bytes
        length = resp.content_length
        if length is not None:
            if length > limit:
                raise self._too_long(resp, f"announces {length} bytes")
            if hdrs.CONTENT_ENCODING not in resp.headers:
                # The parser stops at Content-Length: nothing more can arrive.
                return await resp.read()
        # No length, or a compressed body (which may inflate far beyond its length).
        content = resp.content
        chunks: list[bytes] = []
        size = 0
        while chunk := await content.readany():
            size += len(chunk)
            if size > limit:
                raise self._too_long(resp, "goes on")
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_long(self, resp: ClientResponse, how: str) -> ApiError:
        resp.close()  # not drained: an endless body costs nothing more
        return ApiError(
            f"the API answered HTTP {resp.status} with a body that {how} beyond "
            f"max_response_bytes ({self.max_response_bytes} bytes); connection closed",
            status=resp.status,
        )

    def _graphql_data(self, answer: Answer) -> Any:
        status, raw = answer.status, answer.body
        if not 200 <= status < 300:
            raise self._api_error(status, raw, "POST", self._graphql_url)
        document = answer._data  # decoded in the attempt (json() would be a call more)
        if document.__class__ is dict and "errors" not in document and "data" in document:
            return document["data"]  # the usual answer
        try:
            document = answer.json()
        except ValueError as e:
            problem = str(e)
        else:
            problem = ""
        if problem:
            raise ApiError(
                f"the GraphQL API answered HTTP {status} with a body that is {problem}",
                status=status,
                body_excerpt=self._excerpt(raw),
            )
        if not isinstance(document, dict):
            raise ApiError(
                f"the GraphQL API answered HTTP {status} with JSON that is not an object",
                status=status,
                body_excerpt=self._excerpt(raw),
            )
        errors = document.get("errors")
        if errors:
            if not isinstance(errors, list):
                errors = [{"message": "(errors is not a list)"}]
            errors = [e if isinstance(e, dict) else {"message": "(not an object)"} for e in errors]
            message = errors[0].get("message", "")
            if not isinstance(message, str):
                message = "(message is not a string)"
            first = safe_text(scrub(message, self._sent))
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise GraphQLError(
                f"the GraphQL API answered errors: {first}{more}",
                errors=errors,
                data=document.get("data"),
                status=status,
            )
        if "data" not in document:
            raise ApiError(
                "the GraphQL API answered neither data nor errors",
                status=status,
                body_excerpt=self._excerpt(raw),
            )
        return document["data"]

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
        Iteration ends only when the caller stops (or cancels), with
        :class:`ReauthorizationRequired` when the grant is dead, or with
        :class:`ClosedError` when the client is closed.

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
            except (ReauthorizationRequired, ClosedError):
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

    def _excerpt(self, raw: bytes | None) -> str:
        if not raw:
            return ""
        text = raw[:300].decode("utf-8", "replace")
        return safe_text(scrub(text, self._sent), limit=300)

    def _api_error(self, status: int, raw: bytes | None, method: str, url: URL) -> ApiError:
        return ApiError(
            f"the API answered HTTP {status} to {method} {url.path}",
            status=status,
            body_excerpt=self._excerpt(raw),
        )

    def _transport_error(
        self, exc: BaseException, method: str, url: URL, detail: str
    ) -> TransportError:
        # Only the type and the text, scrubbed: never the exception object, whose
        # request_info holds the request's headers, the bearer token among them.
        text = safe_text(scrub(detail, self._sent), limit=200)
        kind = "a malformed answer" if isinstance(exc, aiohttp.ClientResponseError) else ""
        return TransportError(
            f"{method} {url.with_query(None)} failed: {type(exc).__name__}"
            + (f" ({kind})" if kind else "")
            + (f": {text}" if text else "")
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

    # -- cursor-paged collectors (#16) -------------------------------------------------

    def collect(
        self,
        query: str,
        *,
        items: str,
        cursor: str,
        key: str,
        checkpoint: Checkpoint,
        every: float,
        variables: Mapping[str, Any] | None = None,
        operation_name: str | None = None,
        page_size: int | None = None,
        page_size_variable: str | None = None,
        max_backoff: float = 60.0,
    ) -> Collection:
        """Follow a cursor-paged list and yield batches of new items, oldest first, for
        as long as the caller iterates; delivered at least once, never skipped.

        Holds ``checkpoint.lock()`` while it runs (another collector on the same
        checkpoint waits as a standby), starts after the committed cursor (at the
        beginning for a new checkpoint: the ``cursor`` variable unset), and runs
        ``query`` with ``cursor`` set to the ``key`` of the last item seen. Each answer's
        list at ``items`` is one batch. While pages come back full, the next is asked
        for at once; then every ``every`` seconds. A page is full when it holds
        ``page_size`` items; without ``page_size``, when it holds any (so catching up
        ends with an empty page). A batch's cursor is committed when the caller asks for
        the next batch: leaving the loop (``break``, an exception, cancellation, a
        crash) commits nothing more, and the batch in hand comes again next time. Memory
        holds one page. Failures are retried like :meth:`watch`'s (logged, capped
        back-off); a failed commit is retried until it lands.

        Example::

            async with client.collect(
                "query($after: ID) { events(afterId: $after, limit: 100) { id type } }",
                items="events", cursor="after", key="id", page_size=100,
                checkpoint=FileCheckpoint("events.checkpoint"), every=10,
            ) as batches:
                async for batch in batches:
                    store(batch)  # then ask for the next: this batch is committed

        Args:
            query: A GraphQL query taking the cursor variable.
            items: Where the list sits in ``data``, dotted (``"events"``,
                ``"camera.events"``).
            cursor: The query variable that takes the last seen key.
            key: The item field that is the cursor (a string or a number).
            checkpoint: Where the cursor is committed (:class:`MemoryCheckpoint`,
                :class:`FileCheckpoint`, ``RedisCheckpoint``).
            every: Seconds between the starts of two polls once caught up.
            variables: Other variables of the query.
            operation_name: As for :meth:`graphql`.
            page_size: The most items a page holds (the query's limit).
            page_size_variable: A query variable to send ``page_size`` in.
            max_backoff: The longest wait after failures (the wait doubles from
                ``every``).

        Raises:
            ValueError: An argument is out of range.
            TypeError: ``checkpoint`` is not a checkpoint.
            ReauthorizationRequired: The grant is dead (ends the iteration).
            ClosedError: The client or the checkpoint was closed.
            CheckpointLost: Another collector took the checkpoint over.
            ApiError: The answers hold no list at ``items``, or items without ``key``.
            TokenStoreError: The checkpoint cannot be read (corrupt: never reset).
        """
        if not isinstance(checkpoint, Checkpoint):
            raise TypeError(f"checkpoint must be a Checkpoint, not {type(checkpoint).__name__}")
        for name, text in (("items", items), ("cursor", cursor), ("key", key)):
            if not isinstance(text, str) or not text:
                raise ValueError(f"{name} must be a non-empty string")
        if isinstance(every, bool) or not isinstance(every, int | float) or not every > 0:
            raise ValueError("every must be a positive number of seconds")
        if page_size is not None and (isinstance(page_size, bool) or not page_size > 0):
            raise ValueError("page_size must be a positive number of items")
        if page_size_variable is not None and page_size is None:
            raise ValueError("page_size_variable needs page_size")
        if not max_backoff > 0:
            raise ValueError("max_backoff must be a positive number of seconds")
        return Collection(
            self,
            query,
            items=items,
            cursor=cursor,
            key=key,
            checkpoint=checkpoint,
            every=float(every),
            variables=variables,
            operation_name=operation_name,
            page_size=page_size,
            page_size_variable=page_size_variable,
            max_backoff=max_backoff,
        )


class _Slots:
    """Slots served first come, first served; taking a free one costs no await.

    :class:`asyncio.Semaphore` costs three coroutines per acquire and release, on the
    hot path of every call. Here a free slot is taken by decrementing :attr:`free`
    (callers check it first), and a released slot is handed straight to the oldest
    waiter, so there are waiters only while no slot is free.
    """

    __slots__ = ("_waiters", "free")

    def __init__(self, count: int) -> None:
        self.free = count
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def wait(self) -> None:
        """Wait for a slot (call only when :attr:`free` is 0)."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot, then cancelled: pass it on
            raise

    def release(self) -> None:
        """Give a slot back: to the oldest waiter still waiting, else to :attr:`free`."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.free += 1


def _provider_of(auth: TokenSource) -> Provider:
    if isinstance(auth, TokenManager):
        return auth.oauth.app.provider
    return Provider()
