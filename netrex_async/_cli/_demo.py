"""``demo``: the whole library at work against a fake provider, in under a minute.

1. FakeNetrex starts on loopback, in its own thread and event loop (as a separate server
   would be), with short-lived tokens and rotating refresh tokens.
2. The real login flow runs against it: the authorization URL is fetched by a scripted
   browser (the fake approves consent by itself), the callback is received by the real
   loopback receiver, the code is exchanged, the token saved to a temporary FileTokenStore.
3. Thousands of tasks query the GraphQL API concurrently across several token lifetimes.
4. The summary is checked: no failed request, and exactly one refresh per token lifetime
   the traffic crossed (counted by the fake provider, not by the client).
5. The grant is revoked, and the revoked token is shown to be refused.
"""

from __future__ import annotations

import asyncio
import collections
import math
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from .._client import NetrexClient
from .._errors import ApiError, NetrexError, OAuthError, ReauthorizationRequired
from .._events import Hook, TokenEvent, TokenRefreshed
from .._manager import StaticToken, TokenManager
from .._oauth import OAuth2Client
from .._oauth_protocol import OAuth2App
from .._provider import Provider
from .._redact import safe_text
from .._retry import RetryPolicy
from .._stores._file import FileTokenStore
from ._commands import Context
from ._exits import TESTING_EXTRA, CliError, ExitCode
from ._login import browser_login, http_browser
from ._output import Console, format_duration, json_text

if TYPE_CHECKING:
    from ..testing import FakeNetrex
    from ..testing._records import RecordedRequest

__all__ = ["DEMO_QUERY", "run_demo"]

T = TypeVar("T")

DEMO_QUERY = "{cameraList{name}}"
DEMO_SCOPES = "read,events"
#: A stop point is at least this far from a refresh and from an expiry (seconds).
_GUARD = 0.15


class _FakeThread:
    """A FakeNetrex serving from its own thread and event loop."""

    def __init__(self, **settings: Any) -> None:
        self._settings = settings
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="fake-netrex", daemon=True
        )
        self._fake: FakeNetrex | None = None

    @property
    def fake(self) -> FakeNetrex:
        assert self._fake is not None
        return self._fake

    async def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the fake's loop (where its state is changed) and return its result."""

        async def run() -> T:
            return fn()

        future: Future[T] = asyncio.run_coroutine_threadsafe(run(), self._loop)
        return await asyncio.wrap_future(future)

    async def __aenter__(self) -> _FakeThread:
        from ..testing import FakeNetrex

        self._thread.start()

        async def start() -> FakeNetrex:
            fake = FakeNetrex(**self._settings)
            await fake.start()
            return fake

        try:
            self._fake = await asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(start(), self._loop)
            )
        except BaseException:
            await self._stop_loop()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            if self._fake is not None:
                await asyncio.wrap_future(
                    asyncio.run_coroutine_threadsafe(self._fake.aclose(), self._loop)
                )
        finally:
            await self._stop_loop()

    async def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        await asyncio.to_thread(self._thread.join, 10)
        if not self._thread.is_alive():
            self._loop.close()


@attrs.define
class _Traffic:
    requests: int = 0
    failures: int = 0
    errors: collections.Counter[str] = attrs.field(factory=collections.Counter)
    latencies: list[float] = attrs.field(factory=list)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _check_args(args: Any) -> None:
    if not 1 <= args.tasks <= 100_000:
        raise CliError("--tasks must be between 1 and 100000")
    if not 1 <= args.duration <= 3600:
        raise CliError("--duration must be between 1 and 3600 seconds")
    if not 1 <= args.connections <= 1000:
        raise CliError("--connections must be between 1 and 1000")
    if not 0.5 <= args.lifetime <= 600:
        raise CliError("--lifetime must be between 0.5 and 600 seconds")


async def run_demo(ctx: Context) -> int:
    """Run the demo; 0 when every check passed, 1 otherwise."""
    args = ctx.args
    _check_args(args)
    try:
        import graphql  # noqa: F401 - FakeNetrex needs it
    except ImportError:
        raise CliError(
            f"the demo needs the fake provider (graphql-core): {TESTING_EXTRA}"
        ) from None
    # In --json mode stdout carries the JSON summary only; the story goes to stderr.
    story = Console(ctx.console.err if args.json else ctx.console.out, ctx.console.err)
    story.add_secret(*ctx.console.secrets)
    lifetime: float = args.lifetime
    margin = lifetime / 4
    with tempfile.TemporaryDirectory(prefix="netrex-demo-") as tmp:
        async with _FakeThread(
            expires_in=lifetime,
            rotate_refresh_tokens=True,
            reuse_detection=True,
            record_requests=False,
            redirect_uri="http://127.0.0.1:1/unused",
        ) as server:
            return await _demo(ctx, story, server, Path(tmp), lifetime, margin)


async def _demo(
    ctx: Context, story: Console, server: _FakeThread, tmp: Path, lifetime: float, margin: float
) -> int:
    args, console = ctx.args, ctx.console
    fake = server.fake
    for c in (console, story):
        c.add_secret(fake.client_secret)
    story.print("netrex-async demo: the library against a fake provider on this machine")
    story.print(
        f"1. Fake Netrex provider at {fake.base_url}: access tokens live "
        f"{format_duration(lifetime)}, refresh tokens rotate, a reused one revokes the grant."
    )

    # -- 2. the real login flow -----------------------------------------------------------
    app = OAuth2App(
        client_id=fake.client_id,
        client_secret=fake.client_secret,
        redirect_uri="http://127.0.0.1/callback",
        provider=Provider(fake.base_url),
    )
    token, app = await browser_login(
        app,
        DEMO_SCOPES,
        console=story,
        opener=http_browser,
        within=30,
        any_port=True,
        on_redirect_uri=fake.add_redirect_uri,
        narrate=False,
    )
    for c in (console, story):
        c.add_secret(token)
    store = FileTokenStore(tmp / "token.json")
    async with store.lock():
        await store.save(token)
    story.print(
        f"2. Logged in through the real flow: authorization URL -> consent (approved by the "
        f"fake) -> callback on {app.redirect_uri} -> code exchanged. Scopes "
        f"{', '.join(token.scopes)}; token saved to a temporary {store.path.name}."
    )

    # -- 3. traffic -----------------------------------------------------------------------
    used: set[str] = set()

    def record(request: RecordedRequest) -> None:
        bearer = request.bearer
        if request.endpoint == "graphql" and bearer:
            used.add(bearer)

    def watch() -> None:
        fake.on_request = record

    await server.call(watch)
    expiries: list[float | None] = [token.expires_at]

    def on_event(event: TokenEvent) -> None:
        if isinstance(event, TokenRefreshed):
            expiries.append(event.expires_at)

    story.print(
        f"3. {args.tasks} concurrent tasks query the API over "
        f"{min(args.tasks, args.connections)} connections for about {args.duration:g} s; "
        f"the token is renewed {format_duration(margin)} before it expires..."
    )
    traffic = _Traffic()
    oauth = OAuth2Client(app)
    hooks: list[Hook] = [on_event]
    # Short demo lifetimes: refreshes may come closer than the default spacing.
    spacing = min(0.5, (lifetime - margin) / 2)
    manager = TokenManager(
        oauth, store, margin=margin, jitter=0.0, hooks=hooks, min_refresh_interval=spacing
    )
    connections = min(args.tasks, args.connections)
    client = NetrexClient(manager, provider=app.provider, limit=connections)
    login_access = token.access_token

    def snapshot() -> dict[str, int]:
        # On the fake's thread, at the stop point: its own clock and counters.
        now = fake.clock()
        grant = fake.find_grant(login_access)
        issued = grant.access_tokens if grant is not None else {}
        crossed = sum(1 for t in used if (e := issued.get(t)) is not None and e <= now)
        fake.on_request = None
        return {
            "refreshes": fake.counters.refreshes,
            "unauthorized": fake.counters.unauthorized,
            "crossed": crossed,
            "tokens_used": len(used),
        }

    async with oauth, manager, client:
        elapsed, seen = await _run_traffic(
            client,
            traffic,
            story,
            args.tasks,
            args.duration,
            margin,
            lifetime,
            expiries,
            refreshes=lambda: fake.counters.refreshes,
            at_stop=lambda: server.call(snapshot),
        )
        # Refreshes after the stop point (while requests in flight finished) are not in
        # the count the check uses; the summary says how many there were.
        late = fake.counters.refreshes - seen["refreshes"]
        last = manager.current
        assert last is not None
        console.add_secret(last)
        story.add_secret(last)

    # -- 5. revocation --------------------------------------------------------------------
    async with OAuth2Client(app) as revoker:
        await revoker.revoke(last)
        await store.clear()
        api_refused = await _api_refuses(app.provider, last.access_token)
        try:
            await revoker.refresh(last)
        except OAuthError:
            refresh_refused = True
        else:
            refresh_refused = False

    # -- 4. summary -----------------------------------------------------------------------
    rps = traffic.requests / elapsed if elapsed > 0 else 0.0
    checks = {
        "no_failures": traffic.failures == 0,
        "one_refresh_per_lifetime": seen["refreshes"] == seen["crossed"],
        "revoked_token_refused": api_refused and refresh_refused,
    }
    ok = all(checks.values())
    summary = {
        "ok": ok,
        "checks": checks,
        "tasks": args.tasks,
        "connections": min(args.tasks, args.connections),
        "duration": round(elapsed, 3),
        "requests": traffic.requests,
        "failures": traffic.failures,
        "requests_per_second": round(rps, 1),
        "latency_ms": {
            "p50": round(_percentile(traffic.latencies, 0.5) * 1000, 1),
            "p99": round(_percentile(traffic.latencies, 0.99) * 1000, 1),
        },
        "token_lifetime": lifetime,
        "renewed_before_expiry": margin,
        "lifetimes_crossed": seen["crossed"],
        "refreshes": seen["refreshes"],
        "refreshes_after_stop": late,
        "client_refreshes": manager.stats.refreshes,
        "unauthorized": seen["unauthorized"],
        "revoked_token_refused": api_refused,
        "revoked_refresh_token_refused": refresh_refused,
        "errors": dict(traffic.errors.most_common(5)),
    }
    _print_summary(story, summary)
    if args.json:
        console.print(json_text(summary))
    return ExitCode.OK if ok else ExitCode.API_ERROR


async def _api_refuses(provider: Provider, access_token: str) -> bool:
    """Whether the API now refuses ``access_token``."""
    async with NetrexClient(
        StaticToken(access_token), provider=provider, retry=RetryPolicy(attempts=1)
    ) as client:
        try:
            await client.graphql(DEMO_QUERY)
        except ReauthorizationRequired:
            return True  # HTTP 401 for a user token
        except ApiError as e:
            return e.status in (401, 403) or "token" in str(e).lower()
    return False


async def _run_traffic(
    client: NetrexClient,
    traffic: _Traffic,
    story: Console,
    tasks: int,
    duration: float,
    margin: float,
    lifetime: float,
    expiries: list[float | None],
    *,
    refreshes: Callable[[], int],
    at_stop: Callable[[], Awaitable[dict[str, int]]],
) -> tuple[float, dict[str, int]]:
    """Run the workers until ``duration`` has passed and a clean stop point is reached.

    Returns the seconds of traffic, and what ``at_stop`` saw at the stop point (before
    the requests in flight finished).
    """
    stop = asyncio.Event()
    perf = time.perf_counter

    # NetrexClient queues its requests first come, first served before reading the
    # token, so no task waits for seconds while others go round again.

    async def worker() -> None:
        while not stop.is_set():
            started = perf()
            try:
                await client.graphql(DEMO_QUERY)
            except NetrexError as e:
                traffic.failures += 1
                traffic.errors[f"{type(e).__name__}: {safe_text(e, limit=160)}"] += 1
            traffic.requests += 1
            traffic.latencies.append(perf() - started)

    def clean_stop_point() -> bool:
        # Stop where counting is exact: the token replaced last has expired at the
        # provider, and the current one is not yet due for renewal.
        now = time.time()
        previous = expiries[-2] if len(expiries) > 1 else None
        current = expiries[-1]
        if previous is not None and now < previous + _GUARD:
            return False
        return current is None or now < current - 1.1 * margin - _GUARD

    loop = asyncio.get_running_loop()
    workers = [loop.create_task(worker(), name=f"demo worker {i}") for i in range(tasks)]
    started = perf()
    tty = story.is_tty()
    tick = 0.2 if tty else max(1.0, min(5.0, duration / 6))
    last_shown = started
    give_up = started + duration + 2 * lifetime + 2
    try:
        while True:
            await asyncio.sleep(0.02)
            now = perf()
            if now - started >= duration and (clean_stop_point() or now > give_up):
                break
            if now - last_shown >= tick:
                last_shown = now
                _progress(story, tty, now - started, traffic, refreshes())
            if any(w.done() for w in workers):
                break  # a worker died of something unexpected: stop and report it
        seen = await at_stop()
    finally:
        stop.set()
        results = await asyncio.gather(*workers, return_exceptions=True)
    elapsed = perf() - started
    if tty:
        story.print("\r\x1b[K", end="")
    # The final figures, once, after the workers stopped: the summary's own numbers (the
    # refreshes counted at the stop point, as the check counts them).
    _progress(story, False, elapsed, traffic, seen["refreshes"])
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return elapsed, seen


def _progress(story: Console, tty: bool, elapsed: float, traffic: _Traffic, refreshes: int) -> None:
    rps = traffic.requests / elapsed if elapsed > 0 else 0.0
    line = (
        f"   {elapsed:5.1f} s  {traffic.requests:>9,} requests  {rps:>8,.0f}/s  "
        f"failures {traffic.failures}  token refreshes {refreshes}"
    )
    if tty:
        story.print("\r" + line + "\x1b[K", end="")
    else:
        story.print(line)


def _print_summary(story: Console, s: dict[str, Any]) -> None:
    def mark(ok: bool) -> str:
        return "OK" if ok else "FAILED"

    checks = s["checks"]
    story.print("4. Summary")
    story.print(
        f"   tasks               {s['tasks']:,} concurrent, over {s['connections']} connections"
    )
    story.print(f"   traffic             {s['duration']:.1f} s")
    story.print(
        f"   requests            {s['requests']:,} (failures: {s['failures']}) "
        f"{mark(checks['no_failures'])}"
    )
    story.print(f"   requests per second {s['requests_per_second']:,.0f}")
    story.print(
        f"   latency             p50 {s['latency_ms']['p50']:.0f} ms, "
        f"p99 {s['latency_ms']['p99']:.0f} ms"
    )
    story.print(
        f"   token lifetime      {format_duration(s['token_lifetime'])}, renewed "
        f"{format_duration(s['renewed_before_expiry'])} before expiry"
    )
    story.print(f"   lifetimes crossed   {s['lifetimes_crossed']}")
    story.print(
        f"   token refreshes     {s['refreshes']} at the provider: one per lifetime "
        f"{mark(checks['one_refresh_per_lifetime'])}"
    )
    if s["refreshes_after_stop"]:
        story.print(
            f"                       (+{s['refreshes_after_stop']} while the workers stopped, "
            "after the count)"
        )
    if s["unauthorized"]:
        story.print(
            f"   401 answers         {s['unauthorized']:,} (requests that waited at the busy "
            "provider until their token expired; each was retried with the new token)"
        )
    else:
        story.print("   401 answers         0 (the provider never saw an expired token)")
    for error, count in s["errors"].items():
        story.print(f"   error x{count}: {error}")
    story.print(
        "5. Revoked the grant: the API refuses its access token"
        + (
            " and the token endpoint its refresh token"
            if s["revoked_refresh_token_refused"]
            else ""
        )
        + f" {mark(checks['revoked_token_refused'])}"
    )
    story.print("Result: " + ("every check passed." if s["ok"] else "FAILED (see above)."))
