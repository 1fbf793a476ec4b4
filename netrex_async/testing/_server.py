"""FakeNetrex: the fake provider as an aiohttp.web application on loopback."""

from __future__ import annotations

import asyncio
import collections
import json
import secrets
import time
import warnings
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Final, Literal, Self, TypeAlias

import aiohttp
import attrs
from aiohttp import web
from yarl import URL

from .._provider import Provider, is_loopback_host
from .._redact import safe_text
from .._scope import Scope
from .._token import Token
from ._data import Camera, Event, FakeData
from ._faults import (
    DelayFault,
    DropFault,
    Endpoint,
    Fault,
    FaultQueue,
    MalformedFault,
    RedirectFault,
    StatusFault,
    check_endpoint,
)
from ._live import EventSource
from ._oauth import Authority, Consent, Grant, ParamsIn
from ._records import (
    EMPTY,
    SECRET_HEADERS,
    Counters,
    RecordedRequest,
    SecretMapping,
    first_values,
)

__all__ = ["FakeNetrex"]

InvalidTokenAnswer: TypeAlias = Literal["401", "403", "graphql"]

DEFAULT_CLIENT_ID: Final = "netrex-fake-client"
DEFAULT_REDIRECT_URI: Final = "http://127.0.0.1:8765/callback"

_JSON: Final = "application/json"
_RESULT_CACHE_SIZE: Final = 256
_NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_FORM_TYPES: Final = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})

Handler: TypeAlias = Callable[
    [web.Request, Mapping[str, str], bytes], Awaitable[web.StreamResponse]
]


def _check_host(instance: Any, attribute: attrs.Attribute[str], value: str) -> None:
    if not is_loopback_host(value):
        raise ValueError(f"the fake provider listens on loopback hosts only, not {value!r}")


def _check_one_of(*allowed: str) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value not in allowed:
            raise ValueError(f"{attribute.name} must be one of {', '.join(allowed)}: {value!r}")

    return check


def _str_list(values: Iterable[str]) -> list[str]:
    if isinstance(values, str):
        raise TypeError("extra_redirect_uris must be a list of URIs, not one string")
    return [str(v) for v in values]


#: Request parameters whose values :meth:`FakeNetrex.secrets` reports (not ``state``: a
#: client shows it in the authorization URL it prints).
_LEAKABLE_PARAMS = frozenset(
    {"client_secret", "code", "code_verifier", "refresh_token", "access_token", "token"}
)


def _dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


@attrs.define(repr=False, eq=False)
class FakeNetrex:
    """A fake Netrex provider (OAuth2 and GraphQL) on loopback, with fault injection.

    Use it as an async context manager (or call :meth:`start` and :meth:`aclose`)::

        async with FakeNetrex(expires_in=2) as fake:
            token = fake.issue_token(scopes=("read",))
            ...  # point a client at fake.base_url

    Every setting is a keyword argument and may be changed while the fake runs; the next
    request sees the new value.

    Args:
        host: A loopback address to listen on.
        port: The port; 0 (the default) picks a free one.
        client_id: The one registered client's id.
        client_secret: Its secret (random unless given).
        redirect_uri: Its first registered redirect URI.
        extra_redirect_uris: More registered redirect URIs (see
            :meth:`add_redirect_uri`).
        expires_in: Access token lifetime in seconds (fractions allowed); ``None`` omits
            ``expires_in`` from answers and tokens never expire.
        rotate_refresh_tokens: Issue a new refresh token on every refresh.
        reuse_detection: A rotated-out refresh token coming back revokes its whole grant.
        echo_refresh_token: Without rotation, repeat the refresh token in refresh answers
            (``False`` omits it, as some servers do).
        accept_params_in: Where the token endpoint reads parameters: ``"query"`` (as
            documented), ``"body"`` (form) or ``"either"``. The other endpoints read both.
        consent: The simulated user's decision at ``/oauth2/auth``: ``"approve"`` or
            ``"deny"``.
        code_ttl: Authorization code lifetime in seconds.
        issue_refresh_token_without_secret: Give a refresh token even to a code exchange
            without the client secret (the provider does not: such grants are temporary).
        require_pkce: Refuse authorization requests without ``code_challenge``.
        error_status: HTTP status of token endpoint errors (the provider's is undocumented;
            200 tests clients that read error bodies regardless of status).
        invalid_token_answer: How the API refuses a bad token: ``"401"`` (default, with
            ``WWW-Authenticate``), ``"403"``, or ``"graphql"`` (a GraphQL error, HTTP 200).
        token_response_extra: Fields added to every successful token answer (e.g.
            ``{"token_type": "Bearer"}``).
        clock: Seconds on a monotonic scale, for expiry of codes and tokens.
        record_requests: Keep a log of received requests in :attr:`requests`.
        log_size: How many requests the log keeps (the newest).
        on_request: Called with each :class:`RecordedRequest` (after the answer is made).
        data: The cameras, events and user the API serves (three sample cameras by
            default).
        cache_results: Keep the answers of query-only GraphQL requests, keyed by the exact
            body and the token's rights, until the data changes (for benchmarks; the
            standalone server turns it on). Changes through :class:`FakeData` methods,
            mutations, and assignments to camera or user fields are noticed; after editing
            ``data.cameras`` or ``data.events`` in place, call ``data.touch()``.
    """

    host: str = attrs.field(default="127.0.0.1", kw_only=True, validator=_check_host)
    port: int = attrs.field(default=0, kw_only=True)
    client_id: str = attrs.field(default=DEFAULT_CLIENT_ID, kw_only=True)
    client_secret: str = attrs.field(
        factory=lambda: secrets.token_urlsafe(24), kw_only=True, repr=False
    )
    redirect_uri: str = attrs.field(default=DEFAULT_REDIRECT_URI, kw_only=True)
    extra_redirect_uris: list[str] = attrs.field(factory=list, kw_only=True, converter=_str_list)
    expires_in: float | None = attrs.field(default=3600, kw_only=True)
    rotate_refresh_tokens: bool = attrs.field(default=True, kw_only=True)
    reuse_detection: bool = attrs.field(default=True, kw_only=True)
    echo_refresh_token: bool = attrs.field(default=True, kw_only=True)
    accept_params_in: ParamsIn = attrs.field(
        default="either", kw_only=True, validator=_check_one_of("query", "body", "either")
    )
    consent: Consent = attrs.field(
        default="approve", kw_only=True, validator=_check_one_of("approve", "deny")
    )
    code_ttl: float = attrs.field(default=60, kw_only=True)
    issue_refresh_token_without_secret: bool = attrs.field(default=False, kw_only=True)
    require_pkce: bool = attrs.field(default=False, kw_only=True)
    error_status: int = attrs.field(default=400, kw_only=True)
    invalid_token_answer: InvalidTokenAnswer = attrs.field(
        default="401", kw_only=True, validator=_check_one_of("401", "403", "graphql")
    )
    token_response_extra: Mapping[str, Any] = attrs.field(factory=dict, kw_only=True)
    clock: Callable[[], float] = attrs.field(default=time.monotonic, kw_only=True)
    record_requests: bool = attrs.field(default=True, kw_only=True)
    log_size: int | None = attrs.field(default=10_000, kw_only=True)
    on_request: Callable[[RecordedRequest], None] | None = attrs.field(default=None, kw_only=True)
    data: FakeData = attrs.field(factory=FakeData.sample, kw_only=True)
    cache_results: bool = attrs.field(default=False, kw_only=True)

    counters: Counters = attrs.field(init=False, factory=Counters)
    _requests: collections.deque[RecordedRequest] = attrs.field(init=False)
    _faults: FaultQueue = attrs.field(init=False, factory=FaultQueue)
    _authority: Authority = attrs.field(init=False)
    _runner: web.AppRunner | None = attrs.field(init=False, default=None)
    _bound_port: int | None = attrs.field(init=False, default=None)
    _closing: asyncio.Event | None = attrs.field(init=False, default=None)
    _execute: Callable[..., tuple[dict[str, Any], bool]] | None = attrs.field(
        init=False, default=None
    )
    #: Answers of query-only requests by (body, rights), valid while ``_stamp`` holds.
    _results: dict[tuple[bytes, frozenset[str]], bytes] = attrs.field(init=False, factory=dict)
    _stamp: tuple[int, ...] = attrs.field(init=False, default=())
    _event_source: EventSource | None = attrs.field(init=False, default=None)

    @_requests.default
    def _new_log(self) -> collections.deque[RecordedRequest]:
        return collections.deque(maxlen=self.log_size)

    @_authority.default
    def _new_authority(self) -> Authority:
        return Authority(self)

    def __attrs_post_init__(self) -> None:
        self._authority.on_token_issued = self._count_token
        self._authority.on_reuse = self._count_reuse

    def _count_token(self) -> None:
        self.counters.tokens_issued += 1

    def _count_reuse(self) -> None:
        self.counters.reuse_detected += 1

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start listening. Restarting after :meth:`aclose` keeps the port and the state.

        Raises:
            RuntimeError: It is running already.
            ImportError: graphql-core is missing (install the ``testing`` extra).
            OSError: The port cannot be bound.
        """
        if self._runner is not None:
            raise RuntimeError("the fake provider is running already")
        try:
            from ._schema import execute
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError(
                "FakeNetrex needs graphql-core: install the testing extra, pip install -e "
                "'.[testing]' in a clone of netrex_async, or pip install 'netrex-async[testing]'"
            ) from e
        self._execute = execute
        app = web.Application()
        for path, methods, handler in self._routes():
            for method in methods:
                app.router.add_route(method, path, handler)
                app.router.add_route(method, path + "/", handler)
        # No access log: the token endpoint's query string carries secrets.
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.25)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port or self._bound_port or 0)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._bound_port = runner.addresses[0][1]
        self._closing = asyncio.Event()
        self._runner = runner

    async def aclose(self) -> None:
        """Stop listening (pending delayed answers are dropped). Safe to call twice."""
        await self.stop_events()
        runner, self._runner = self._runner, None
        if runner is None:
            return
        if self._closing is not None:
            self._closing.set()
        await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __del__(self) -> None:
        if getattr(self, "_runner", None) is not None:
            warnings.warn(
                f"{self!r} was never closed: use 'async with' or await aclose()",
                ResourceWarning,
                stacklevel=1,
            )

    @property
    def running(self) -> bool:
        """Whether the fake is listening."""
        return self._runner is not None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``, the provider base URL to give a client.

        Raises:
            RuntimeError: The fake was never started.
        """
        if self._bound_port is None:
            raise RuntimeError("the fake provider has not been started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._bound_port}"

    @property
    def provider(self) -> Provider:
        """A :class:`~netrex_async.Provider` pointing at this fake."""
        return Provider(self.base_url)

    @property
    def redirect_uris(self) -> tuple[str, ...]:
        """Every registered redirect URI, :attr:`redirect_uri` first."""
        return (self.redirect_uri, *self.extra_redirect_uris)

    def add_redirect_uri(self, uri: str) -> None:
        """Register one more redirect URI for the client."""
        if uri not in self.redirect_uris:
            self.extra_redirect_uris.append(uri)

    def __repr__(self) -> str:
        where = self.base_url if self._bound_port is not None else "not started"
        return (
            f"FakeNetrex({where}, client_id={self.client_id!r}, running={self.running}, "
            f"grants={len(self._authority.grants)})"
        )

    # -- faults ---------------------------------------------------------------------------

    def inject(self, endpoint: Endpoint, fault: Fault, *, times: int | None = 1) -> None:
        """Make the next ``times`` requests to ``endpoint`` commit ``fault``.

        Faults queued for one endpoint are used in order: ``inject("token", a, times=2)``
        then ``inject("token", b)`` shapes three answers, a, a, b. ``times=None`` repeats
        the fault until :meth:`clear_faults`.

        Args:
            endpoint: ``"auth"``, ``"token"``, ``"revoke"`` or ``"graphql"``.
            fault: What to do, made by a :class:`Fault` factory, e.g. ``Fault.status(503)``.
            times: How many requests it shapes; ``None`` for all until cleared.
        """
        self._faults.push(endpoint, fault, times)

    def clear_faults(self, endpoint: Endpoint | None = None) -> None:
        """Forget the queued faults of ``endpoint``, or of every endpoint."""
        self._faults.clear(endpoint)

    def pending_faults(self, endpoint: Endpoint | None = None) -> int:
        """How many faulty answers are still queued (for ``endpoint`` or in all)."""
        if endpoint is not None:
            check_endpoint(endpoint)
        return self._faults.pending(endpoint)

    # -- the log --------------------------------------------------------------------------

    @property
    def requests(self) -> collections.deque[RecordedRequest]:
        """Received requests, oldest first (at most ``log_size``; live, clearable)."""
        return self._requests

    def requests_to(self, endpoint: Endpoint) -> list[RecordedRequest]:
        """The logged requests to one endpoint, oldest first."""
        check_endpoint(endpoint)
        return [r for r in self._requests if r.endpoint == endpoint]

    def reset_stats(self) -> None:
        """Zero the counters and empty the request log."""
        self.counters = Counters()
        self._requests.clear()

    # -- grants and tokens, without the browser ------------------------------------------

    @property
    def grants(self) -> tuple[Grant, ...]:
        """Every grant made so far, oldest first, revoked ones included (live objects)."""
        return self._authority.grants

    def issue_token(
        self,
        scopes: str | Iterable[str] = ("read",),
        *,
        expires_in: float | None = None,
        with_refresh: bool = True,
    ) -> Token:
        """Create a grant directly, as if a user had authorized, and return its token.

        Args:
            scopes: The rights (``"read,write"`` or names); unknown ones raise
                :class:`ValueError`.
            expires_in: The access token's lifetime; ``None`` uses :attr:`expires_in`.
            with_refresh: Include a refresh token (``False``: a temporary grant).
        """
        rights = tuple(str(s) for s in Scope.parse(scopes))
        grant, access, lifetime = self._authority.new_grant(
            rights, with_refresh=with_refresh, expires_in=expires_in
        )
        now = time.time()
        return Token(
            access_token=access,
            refresh_token=grant.refresh_token,
            issued_at=now,
            expires_at=None if lifetime is None else now + lifetime,
            scopes=rights,
        )

    def issue_code(
        self,
        scopes: str | Iterable[str] = ("read",),
        *,
        redirect_uri: str | None = None,
        code_challenge: str | None = None,
        code_challenge_method: Literal["S256", "plain"] = "S256",
    ) -> str:
        """An authorization code as if the user had approved (skips ``/oauth2/auth``)."""
        uri = redirect_uri or self.redirect_uri
        if uri not in self.redirect_uris:
            raise ValueError("redirect_uri is not registered")
        rights = tuple(str(s) for s in Scope.parse(scopes))
        return self._authority.issue_code(
            rights, uri, code_challenge, code_challenge_method if code_challenge else None
        )

    async def authorize(self, url: str | URL) -> str:
        """Open an authorization URL as the user's browser would; return the callback URL.

        The simulated user decides per :attr:`consent`. The request goes over HTTP, so it
        is counted, logged and subject to injected ``"auth"`` faults.

        Raises:
            ValueError: The URL is not this fake's authorization endpoint, or the fake
                answered with an error page instead of a redirect.
        """
        target = URL(str(url))
        if target.origin() != URL(self.base_url).origin():
            raise ValueError("the URL does not point at this fake provider")
        async with (
            aiohttp.ClientSession() as session,
            session.get(target, allow_redirects=False) as response,
        ):
            location = response.headers.get("Location")
            if 300 <= response.status < 400 and location:
                return location
            text = await response.text(errors="replace")
        raise ValueError(
            f"the authorization endpoint answered {response.status}: {safe_text(text)}"
        )

    def find_grant(self, which: Token | str) -> Grant | None:
        """The grant of a token, an access or refresh token string, or a grant id."""
        if isinstance(which, Token):
            which = which.refresh_token or which.access_token
        return self._authority.get(which) or self._authority.find(which)

    def _grant(self, which: Grant | Token | str) -> Grant:
        grant = which if isinstance(which, Grant) else self.find_grant(which)
        if grant is None:
            raise KeyError("no grant for this token")
        return grant

    def revoke_grant(self, which: Grant | Token | str) -> Grant:
        """Revoke a grant, as a user removing the app would: all its tokens stop working.

        Raises:
            KeyError: No such grant.
        """
        grant = self._grant(which)
        self._authority.revoke_grant(grant)
        return grant

    def revoke_all(self) -> None:
        """Revoke every grant."""
        for grant in self._authority.grants:
            self._authority.revoke_grant(grant)

    def expire_all(self) -> None:
        """Make every access token expire now (refresh tokens keep working)."""
        self._authority.expire()

    def expire_token(self, which: Token | str) -> None:
        """Make one access token expire now.

        Raises:
            KeyError: The token is unknown.
        """
        access = which.access_token if isinstance(which, Token) else which
        grant = self._authority.find(access)
        if grant is None or access not in grant.access_tokens:
            raise KeyError("unknown access token")
        self._authority.expire(grant, access)

    def secrets(self) -> list[tuple[str, str]]:
        """Every secret this fake issued or received, as ``(label, value)`` pairs.

        For leak checks in your own tests: the client secret, authorization codes,
        access and refresh tokens (retired ones too), and every secret parameter or
        bearer token in the request log (PKCE verifiers included). Labels name where a
        value came from, never the value, so a failed check can print them.
        """
        found: list[tuple[str, str]] = [("client_secret", self.client_secret)]
        found.extend(self._authority.secrets())
        for record in list(self._requests):
            for name, value in record.params.items():
                if name in _LEAKABLE_PARAMS and value:
                    found.append((f"{name} sent to the {record.endpoint} endpoint", value))
            if record.bearer:
                found.append(
                    (f"bearer token sent to the {record.endpoint} endpoint", record.bearer)
                )
        return found

    def is_valid(self, access_token: Token | str) -> bool:
        """Whether the API would accept this access token now."""
        if isinstance(access_token, Token):
            access_token = access_token.access_token
        return self._authority.check_access(access_token)[0] is not None

    # -- data -----------------------------------------------------------------------------

    @property
    def cameras(self) -> list[Camera]:
        """The cameras the API serves (live objects: rename or take offline freely)."""
        return list(self.data.cameras.values())

    def add_camera(
        self,
        name: str,
        *,
        serial_number: str | None = None,
        model: str = "AXIS M3086-V",
        online: bool = True,
        id: str | None = None,
    ) -> Camera:
        """Add a camera to the API's data."""
        return self.data.add_camera(
            name, serial_number=serial_number, model=model, online=online, id=id
        )

    def add_event(self, camera_id: str, type: str = "motion") -> Event:
        """Record a camera event (now)."""
        return self.data.add_event(camera_id, type)

    def start_events(
        self,
        rate: float,
        *,
        cameras: Sequence[str] | None = None,
        types: Sequence[str] | None = None,
    ) -> EventSource:
        """Make ``rate`` camera events a second until :meth:`stop_events` or :meth:`aclose`.

        A live stream to follow with ``events(afterId:, limit:)``; the source's
        ``produced`` counts the events made.

        Args:
            rate: Events per second.
            cameras: The cameras that have events (default: all of them).
            types: The event types, in turn (default: motion, line crossing, tampering).

        Raises:
            RuntimeError: Events are being made already.
            ValueError: ``rate`` is not positive, or a camera is unknown.
        """
        if self._event_source is not None and self._event_source.running:
            raise RuntimeError("the fake is making events already: stop_events() first")
        extra = {} if types is None else {"types": types}
        source = EventSource(self.data, rate, cameras=cameras, **extra)
        source.start()
        self._event_source = source
        return source

    async def stop_events(self) -> None:
        """Stop the events :meth:`start_events` makes (those made stay)."""
        source, self._event_source = self._event_source, None
        if source is not None:
            await source.stop()

    # -- HTTP -----------------------------------------------------------------------------

    def _routes(self) -> list[tuple[str, tuple[str, ...], Callable[..., Any]]]:
        provider = Provider("http://127.0.0.1")  # paths only
        return [
            (provider.auth_path, ("GET", "POST"), self._on_auth),
            (provider.token_path, ("POST",), self._on_token),
            (provider.revoke_path, ("POST",), self._on_revoke),
            (provider.graphql_path, ("POST",), self._on_graphql),
        ]

    async def _on_auth(self, request: web.Request) -> web.StreamResponse:
        return await self._serve("auth", request, self._auth)

    async def _on_token(self, request: web.Request) -> web.StreamResponse:
        return await self._serve("token", request, self._token)

    async def _on_revoke(self, request: web.Request) -> web.StreamResponse:
        return await self._serve("revoke", request, self._revoke)

    async def _on_graphql(self, request: web.Request) -> web.StreamResponse:
        return await self._serve("graphql", request, self._graphql)

    async def _serve(
        self, endpoint: str, request: web.Request, handle: Handler
    ) -> web.StreamResponse:
        counters = self.counters
        counters.requests[endpoint] += 1
        body = await request.read() if request.body_exists else b""
        query: SecretMapping = EMPTY
        form: SecretMapping = EMPTY
        params: Mapping[str, str] = EMPTY
        if endpoint != "graphql":
            query = SecretMapping(first_values(request.query.items()))
            if request.content_type in _FORM_TYPES and body:
                form = SecretMapping(first_values((await request.post()).items()))
            params = self._accepted(endpoint, query, form)
            if endpoint == "token":
                counters.token_requests[params.get("grant_type", "")] += 1
            elif endpoint == "auth":
                counters.auth_requests += 1
            else:
                counters.revocations += 1
        else:
            counters.api_calls += 1

        fault = self._faults.take(endpoint) if self._faults.armed else None
        response: web.StreamResponse | None = None
        if fault is not None:
            counters.faults[endpoint] += 1
            response = await self._commit(fault, request)
        if response is None:
            response = await handle(request, params, body)
        status = None if isinstance(response, _Dropped) else response.status

        if self.record_requests or self.on_request is not None:
            record = RecordedRequest(
                endpoint=endpoint,
                method=request.method,
                path=request.path,
                query=query if endpoint != "graphql" else SecretMapping(request.query),
                form=form,
                headers=SecretMapping(request.headers, SECRET_HEADERS),
                body=body,
                status=status,
                fault=fault,
                at=self.clock(),
            )
            if self.record_requests:
                self._requests.append(record)
            if self.on_request is not None:
                self.on_request(record)
        return response

    def _accepted(
        self, endpoint: str, query: SecretMapping, form: SecretMapping
    ) -> Mapping[str, str]:
        # Only the token endpoint is picky: the revocation is documented with the query
        # string, and a browser may GET or POST the authorization page.
        where = self.accept_params_in if endpoint == "token" else "either"
        if where == "query":
            return query
        if where == "body":
            return form
        if not form:
            return query
        return {**query, **form}

    async def _commit(self, fault: Fault, request: web.Request) -> web.StreamResponse | None:
        """The answer ``fault`` makes, or ``None`` to answer normally (after a delay)."""
        while isinstance(fault, DelayFault):
            closing = self._closing
            assert closing is not None
            try:
                await asyncio.wait_for(closing.wait(), fault.seconds)
            except TimeoutError:
                pass
            else:  # shutting down: do not hold the server up
                return self._drop(request)
            if fault.then is None:
                return None
            fault = fault.then
        if isinstance(fault, StatusFault):
            body, content_type = fault.render()
            response = web.Response(status=fault.code, body=body, headers=fault.headers)
            response.content_type = content_type
            return response
        if isinstance(fault, MalformedFault):
            body, content_type = fault.render()
            return web.Response(status=fault.code, body=body, content_type=content_type)
        if isinstance(fault, RedirectFault):
            return web.Response(
                status=fault.code, headers={"Location": fault.location}, text="Moved\n"
            )
        if isinstance(fault, DropFault):
            return self._drop(request)
        raise TypeError(f"unknown fault {fault!r}")  # pragma: no cover

    @staticmethod
    def _drop(request: web.Request) -> web.StreamResponse:
        if request.transport is not None:
            request.transport.close()
        return _Dropped(status=499)

    async def _auth(
        self, request: web.Request, params: Mapping[str, str], body: bytes
    ) -> web.StreamResponse:
        decision = self._authority.authorize(params)
        if decision.location is not None:
            return web.Response(status=decision.status, headers={"Location": decision.location})
        return web.Response(status=decision.status, text=decision.page, content_type="text/html")

    async def _token(
        self, request: web.Request, params: Mapping[str, str], body: bytes
    ) -> web.StreamResponse:
        answer = self._authority.token(params)
        return web.Response(
            status=self.error_status if answer.error else 200,
            body=_dumps(answer.body),
            content_type=_JSON,
            headers=_NO_STORE,
        )

    async def _revoke(
        self, request: web.Request, params: Mapping[str, str], body: bytes
    ) -> web.StreamResponse:
        token = params.get("access_token") or params.get("token")
        if not token:
            return _json({"success": False, "message": "access_token is missing"}, 400)
        if self._authority.revoke(token) is None:
            return _json({"success": False, "message": "unknown token"}, 400)
        return _json({"success": True, "message": "The token was revoked"}, 200)

    async def _graphql(
        self, request: web.Request, params: Mapping[str, str], body: bytes
    ) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        grant, why = self._authority.check_access(
            token.strip() if scheme.lower() == "bearer" else None
        )
        if grant is None:
            self.counters.unauthorized += 1
            return self._refuse(why)
        if self.cache_results:
            stamp = self.data.stamp
            if stamp != self._stamp:
                self._results.clear()
                self._stamp = stamp
            cached = self._results.get((body, grant.scope_set))
            if cached is not None:
                return web.Response(body=cached, content_type=_JSON)
        try:
            doc = json.loads(body)
        except ValueError:
            return _json({"errors": [{"message": "the body is not JSON"}]}, 400)
        if not isinstance(doc, dict) or not isinstance(doc.get("query"), str):
            return _json({"errors": [{"message": "the body needs a 'query' string"}]}, 400)
        variables = doc.get("variables")
        operation = doc.get("operationName")
        if variables is not None and not isinstance(variables, dict):
            return _json({"errors": [{"message": "'variables' must be an object"}]}, 400)
        if operation is not None and not isinstance(operation, str):
            return _json({"errors": [{"message": "'operationName' must be a string"}]}, 400)
        assert self._execute is not None
        result, pure = self._execute(self.data, grant.scope_set, doc["query"], variables, operation)
        answer = _dumps(result)
        if self.cache_results and pure:
            if len(self._results) >= _RESULT_CACHE_SIZE:
                self._results.clear()
            # The stamp again: resolvers do not change data, but be exact about it.
            if self.data.stamp == self._stamp:
                self._results[(body, grant.scope_set)] = answer
        return web.Response(body=answer, content_type=_JSON)

    def _refuse(self, why: str) -> web.Response:
        mode = self.invalid_token_answer
        if mode == "graphql":
            return _json(
                {
                    "errors": [{"message": why, "extensions": {"code": "UNAUTHENTICATED"}}],
                    "data": None,
                },
                200,
            )
        body = {"error": "invalid_token", "error_description": why}
        if mode == "403":
            return _json(body, 403)
        response = _json(body, 401)
        response.headers["WWW-Authenticate"] = (
            f'Bearer realm="netrex", error="invalid_token", error_description="{why}"'
        )
        return response


def _json(body: Any, status: int) -> web.Response:
    return web.Response(status=status, body=_dumps(body), content_type=_JSON)


class _Dropped(web.Response):
    """Returned (never sent) after the connection was closed on purpose."""
