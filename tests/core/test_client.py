"""NetrexClient against a real aiohttp server on loopback."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import ClassVar

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from netrex_async import (
    ApiError,
    GraphQLError,
    MemoryTokenStore,
    NetrexClient,
    Provider,
    ReauthorizationRequired,
    RetryPolicy,
    StaticToken,
    TokenManager,
    TransportError,
    set_testing,
)
from netrex_async._client import is_mutation

from ._fakes import ScriptedOAuth, make_token


class Api:
    """A small GraphQL-shaped API that accepts a set of bearer tokens."""

    def __init__(self) -> None:
        self.valid: set[str] = set()
        self.calls = 0
        self.unauthorized = 0
        self.headers: list[dict[str, str]] = []
        self.script: list[web.Response] = []
        self.answer: dict = {"data": {"cameraList": [{"name": "cam"}]}}

    async def graphql(self, request: web.Request) -> web.StreamResponse:
        self.calls += 1
        self.headers.append(dict(request.headers))
        body = await request.json()
        assert "query" in body
        if self.script:
            return self.script.pop(0)
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.valid:
            self.unauthorized += 1
            return web.json_response({"error": "invalid_token"}, status=401)
        return web.json_response(self.answer)

    async def redirect(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(request.query["to"])

    async def echo(self, request: web.Request) -> web.StreamResponse:
        self.headers.append(dict(request.headers))
        return web.json_response({"path": request.path})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/graphql.php", self.graphql)
        app.router.add_get("/redirect", self.redirect)
        app.router.add_get("/echo", self.echo)
        return app


@pytest.fixture(name="api")
async def fixture_api() -> AsyncIterator[tuple[Api, Provider]]:
    api = Api()
    server = TestServer(api.app(), host="127.0.0.1")
    await server.start_server()
    try:
        yield api, Provider(f"http://127.0.0.1:{server.port}")
    finally:
        await server.close()


@pytest.fixture(name="no_backoff", autouse=True)
def fixture_no_backoff():
    old = set_testing(True)
    yield
    set_testing(old)


async def test_graphql_sends_bearer_and_returns_data(api):
    server, provider = api
    server.valid.add("user-token")
    async with NetrexClient("user-token", provider=provider) as client:
        data = await client.graphql("{cameraList{name}}")
    assert data == {"cameraList": [{"name": "cam"}]}
    sent = server.headers[0]
    assert sent["Authorization"] == "Bearer user-token"
    assert sent["Content-Type"] == "application/json"
    assert sent["User-Agent"].startswith("netrex-async/")


async def test_variables_and_operation_name_are_sent(api):
    server, provider = api
    server.valid.add("t")
    seen = []

    async def capture(request):
        seen.append(await request.json())
        return web.json_response({"data": {}})

    server.graphql = capture  # type: ignore[method-assign]
    srv = TestServer(server.app(), host="127.0.0.1")
    await srv.start_server()
    try:
        async with NetrexClient("t", provider=Provider(f"http://127.0.0.1:{srv.port}")) as c:
            await c.graphql(
                "query Q($id: ID!){camera(id:$id){name}}", {"id": "1"}, operation_name="Q"
            )
    finally:
        await srv.close()
    assert seen == [
        {
            "query": "query Q($id: ID!){camera(id:$id){name}}",
            "variables": {"id": "1"},
            "operationName": "Q",
        }
    ]


async def test_graphql_errors_carry_errors_and_partial_data(api):
    server, provider = api
    server.valid.add("t")
    server.answer = {"errors": [{"message": "no such camera"}, {"message": "x"}], "data": {"a": 1}}
    async with NetrexClient("t", provider=provider) as client:
        with pytest.raises(GraphQLError, match="no such camera") as e:
            await client.graphql("{camera(id:9){name}}")
    assert e.value.errors[0]["message"] == "no such camera"
    assert e.value.data == {"a": 1}
    assert "1 more" in str(e.value)


@pytest.mark.parametrize(
    ("status", "body"), [(500, "boom"), (404, "<html>nope</html>"), (400, '{"error":"bad"}')]
)
async def test_non_2xx_is_api_error_with_status_and_excerpt(api, status, body):
    server, provider = api
    server.script = [web.Response(status=status, text=body)]
    async with NetrexClient("t", provider=provider, retry=RetryPolicy(attempts=1)) as client:
        with pytest.raises(ApiError) as e:
            await client.graphql("{a}")
    assert e.value.status == status
    assert body[:20] in e.value.body_excerpt


async def test_not_json_and_no_data_are_api_errors(api):
    server, provider = api
    server.script = [web.Response(text="<html>"), web.json_response([1]), web.json_response({})]
    async with NetrexClient("t", provider=provider) as client:
        for _ in range(3):
            with pytest.raises(ApiError):
                await client.graphql("{a}")


async def test_401_refreshes_once_and_retries(api):
    server, provider = api
    oauth = ScriptedOAuth()
    store = MemoryTokenStore(make_token(1, lifetime=3600))
    server.valid.add("access-1001-secret")  # the current token was revoked server-side
    async with (
        TokenManager(oauth, store, background=False) as manager,  # type: ignore[arg-type]
        NetrexClient(manager, provider=provider) as client,
    ):
        results = await asyncio.gather(*(client.graphql("{a}") for _ in range(50)))
    assert len(results) == 50
    assert oauth.calls == 1, "a 401 storm for one token causes one refresh"


async def test_second_401_is_an_api_error_not_a_loop(api):
    server, provider = api
    oauth = ScriptedOAuth()
    store = MemoryTokenStore(make_token(1, lifetime=3600))
    async with (
        TokenManager(oauth, store, background=False) as manager,  # type: ignore[arg-type]
        NetrexClient(manager, provider=provider) as client,
    ):
        with pytest.raises(ApiError) as e:
            await client.graphql("{a}")
    assert e.value.status == 401
    assert server.calls == 2
    assert oauth.calls == 1


async def test_static_token_401_requires_reauthorization(api):
    _, provider = api
    async with NetrexClient("dead-user-token", provider=provider) as client:
        with pytest.raises(ReauthorizationRequired, match="user token") as e:
            await client.graphql("{a}")
    assert "dead-user-token" not in str(e.value)


async def test_no_redirect_is_followed_to_another_origin(api):
    server, provider = api
    other = Api()
    other_srv = TestServer(other.app(), host="127.0.0.1")
    await other_srv.start_server()
    try:
        elsewhere = f"http://127.0.0.1:{other_srv.port}/echo"
        same_port_other_host = f"http://localhost:{provider.origin.port}/echo"
        async with NetrexClient("secret-user-token", provider=provider) as client:
            for target in (elsewhere, same_port_other_host):
                with pytest.raises(ApiError, match="another origin") as e:
                    await client.request("GET", "/redirect", params={"to": target})
                assert e.value.status == 302
                assert str(URL(target).origin()) in str(e.value)
            # a redirect within the origin is followed, with the token
            await client.request("GET", "/redirect", params={"to": "/echo"})
    finally:
        await other_srv.close()
    assert other.headers == [], "nothing was sent to the other origin"
    assert [h.get("Authorization") for h in server.headers] == ["Bearer secret-user-token"]


async def test_middleware_checks_scheme_host_and_port():
    provider = Provider("https://cloud.example.com")
    client = NetrexClient("tok", provider=provider)
    sent = []

    class Req:
        def __init__(self, url):
            from yarl import URL

            self.url = URL(url)
            self.method = "POST"
            self.headers: dict[str, str] = {}

    async def handler(req):
        sent.append((str(req.url), req.headers.get("Authorization")))

        class Resp:
            status = 200
            headers: ClassVar[dict[str, str]] = {}

        return Resp()

    for url in (
        "https://cloud.example.com/api/graphql.php",
        "http://cloud.example.com/api/graphql.php",  # https -> http: another origin
        "https://cloud.example.com:8443/x",
        "https://evil.example.com/x",
        "https://cloud.example.com.evil.net/x",
    ):
        await client.middleware(Req(url), handler)  # type: ignore[arg-type]
    assert [a for _, a in sent] == ["Bearer tok", None, None, None, None]
    await client.aclose()


async def test_middleware_in_a_callers_own_session(api):
    server, provider = api
    server.valid.add("tok")
    client = NetrexClient("tok", provider=provider)
    async with aiohttp.ClientSession(middlewares=(client.middleware,)) as session:
        async with session.post(provider.graphql_url, json={"query": "{a}"}) as resp:
            assert resp.status == 200
        async with NetrexClient("tok", provider=provider, session=session) as borrowed:
            assert await borrowed.graphql("{a}")
        assert not session.closed, "a borrowed session is not closed"
    await client.aclose()


async def test_borrowed_session_without_our_middleware_still_authenticates(api):
    server, provider = api
    server.valid.add("tok")
    async with aiohttp.ClientSession() as session:
        async with NetrexClient("tok", provider=provider, session=session) as client:
            assert await client.graphql("{a}")
        assert not session.closed


async def test_transient_statuses_are_retried_for_queries(api):
    server, provider = api
    server.valid.add("t")
    server.script = [
        web.Response(status=503),
        web.Response(status=429, headers={"Retry-After": "0"}),
        web.Response(status=502),
    ]
    async with NetrexClient("t", provider=provider) as client:
        assert await client.graphql("{a}")
    assert server.calls == 4


async def test_retries_are_bounded(api):
    server, provider = api
    server.script = [web.Response(status=503) for _ in range(10)]
    async with NetrexClient("t", provider=provider, retry=RetryPolicy(attempts=3)) as client:
        with pytest.raises(ApiError) as e:
            await client.graphql("{a}")
    assert e.value.status == 503
    assert server.calls == 3


async def test_mutations_are_not_retried_unless_asked(api):
    server, provider = api
    server.valid.add("t")
    server.script = [web.Response(status=503), web.Response(status=503)]
    async with NetrexClient("t", provider=provider) as client:
        with pytest.raises(ApiError):
            await client.graphql('mutation { renameCamera(id: "1", name: "x") { name } }')
        assert server.calls == 1
        assert await client.graphql("mutation { x }", retry=True)
    assert server.calls == 3


def test_is_mutation():
    assert is_mutation("mutation { a }")
    assert is_mutation("  mutation Rename($n: String) { a }")
    assert is_mutation("query A { a }\nmutation B { b }")
    assert not is_mutation("{ cameraList { name } }")
    assert not is_mutation('{ search(text: "mutation { }") { id } }')
    assert not is_mutation("# mutation in a comment\n{ a }")
    assert not is_mutation("{ mutationLog { id } }")


async def test_connection_refused_is_transport_error():
    sock = __import__("socket").socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    async with NetrexClient("t", provider=Provider(f"http://127.0.0.1:{port}")) as client:
        with pytest.raises(TransportError, match="POST http://127.0.0.1"):
            await client.graphql("{a}")


async def test_thousands_of_calls_across_an_expiry_cause_one_token_request(api):
    server, provider = api
    oauth = ScriptedOAuth(lifetime=3600, delay=0.05)
    server.valid.update({"access-1-secret", "access-1001-secret"})
    # 0.1 s of life left with a 0.1 s skew: expired for the manager
    token = make_token(1, lifetime=10, now=time.time() - 9.9)
    async with (
        TokenManager(oauth, MemoryTokenStore(token), background=False) as manager,  # type: ignore[arg-type]
        NetrexClient(manager, provider=provider) as client,
    ):
        results = await asyncio.gather(
            *(client.graphql("{cameraList{name}}") for _ in range(2_000)), return_exceptions=True
        )
    failures = [r for r in results if isinstance(r, BaseException)]
    assert failures == []
    assert oauth.calls == 1
    assert server.unauthorized == 0


async def test_trace_config_sees_api_calls(api):
    server, provider = api
    server.valid.add("t")
    seen = []

    async def on_start(session, ctx, params):
        seen.append(str(params.url))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    client = NetrexClient("t", provider=provider)
    async with aiohttp.ClientSession(
        middlewares=(client.middleware,), trace_configs=[trace]
    ) as session:
        async with NetrexClient("t", provider=provider, session=session) as c:
            await c.graphql("{a}")
    assert seen == [str(provider.graphql_url)]
    await client.aclose()


async def test_watch_raises_reauthorization(api, caplog):
    caplog.set_level(logging.WARNING, logger="netrex_async")
    server, provider = api
    server.valid.add("t")
    got = []
    async with NetrexClient("t", provider=provider, retry=RetryPolicy(attempts=1)) as client:
        server.script = [web.Response(status=503), web.Response(status=500, text="x")]
        with pytest.raises(ReauthorizationRequired):
            async for data in client.watch("{cameraList{name}}", every=0.01):
                got.append(data)
                if len(got) == 3:
                    server.valid.clear()
    assert len(got) == 3
    warnings = [r for r in caplog.records if getattr(r, "event", None) == "watch_failed"]
    assert len(warnings) == 2


async def test_watch_stops_when_the_caller_stops(api):
    server, provider = api
    server.valid.add("t")
    async with NetrexClient("t", provider=provider) as client:
        agen = client.watch("{a}", every=0.01)
        assert await agen.__anext__()
        await agen.aclose()


async def test_from_app_owns_manager_and_oauth(api):
    server, provider = api
    from netrex_async import OAuth2App

    app = OAuth2App(
        client_id="c", client_secret="s", redirect_uri="http://127.0.0.1/cb", provider=provider
    )
    store = MemoryTokenStore(make_token(1, lifetime=3600))
    server.valid.add("access-1-secret")
    async with NetrexClient.from_app(app, store) as client:
        assert await client.graphql("{a}")
        manager = client.auth
    assert isinstance(manager, TokenManager)
    assert manager._closed
    assert manager.oauth._closed
    assert await store.load() is not None, "the store is borrowed, not cleared"


def test_auth_must_be_a_token_source():
    with pytest.raises(TypeError, match="TokenSource"):
        NetrexClient(42)  # type: ignore[arg-type]


def test_static_token_repr_hides_token():
    client = NetrexClient(StaticToken("very-secret-token"))
    assert "very-secret-token" not in repr(client)
    assert json.dumps(repr(client))


async def test_token_is_read_after_waiting_for_a_connection_slot():
    """With more tasks than connections, a token is not read long before it is sent."""
    issued: dict[str, float] = {}
    lag: list[float] = []

    class Counting:
        n = 0

        async def token(self) -> str:
            Counting.n += 1
            tok = f"token-{Counting.n}"
            issued[tok] = time.monotonic()
            return tok

        async def invalidate(self, access_token: str) -> None:
            return None

    async def slow(request):
        lag.append(time.monotonic() - issued[request.headers["Authorization"][7:]])
        await asyncio.sleep(0.05)
        return web.json_response({"data": {}})

    app = web.Application()
    app.router.add_post("/api/graphql.php", slow)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        provider = Provider(f"http://127.0.0.1:{server.port}")
        async with NetrexClient(Counting(), provider=provider, limit=2) as client:
            await asyncio.gather(*(client.graphql("{a}") for _ in range(20)))
    finally:
        await server.close()
    assert len(lag) == 20
    # 20 calls over 2 connections take ~0.5 s; each token was fresh when sent
    assert max(lag) < 0.04, lag


async def test_nothing_is_logged_for_a_successful_call(api, caplog):
    server, provider = api
    server.valid.add("t")
    caplog.set_level(logging.DEBUG, logger="netrex_async")
    async with NetrexClient("t", provider=provider) as client:
        await client.graphql("{a}")
        caplog.clear()
        for _ in range(20):
            await client.graphql("{a}")
        assert caplog.records == []


async def test_aclose_closes_what_it_made_newest_first_each_even_if_one_fails(
    api, caplog, monkeypatch
):
    _, provider = api
    from netrex_async import OAuth2App, OAuth2Client

    app = OAuth2App(
        client_id="c", client_secret="s", redirect_uri="http://127.0.0.1/cb", provider=provider
    )
    client = NetrexClient.from_app(app, MemoryTokenStore(make_token(1, lifetime=3600)))
    session = client.session  # made now: the newest resource
    order: list[str] = []
    close_session, close_oauth = aiohttp.ClientSession.close, OAuth2Client.aclose

    async def session_close(self) -> None:
        order.append("session")
        await close_session(self)

    async def manager_close(self) -> None:
        order.append("manager")
        raise OSError("the store hung up")

    async def oauth_close(self) -> None:
        order.append("oauth")
        await close_oauth(self)

    monkeypatch.setattr(aiohttp.ClientSession, "close", session_close)
    monkeypatch.setattr(TokenManager, "aclose", manager_close)
    monkeypatch.setattr(OAuth2Client, "aclose", oauth_close)
    await client.aclose()
    assert order == ["session", "manager", "oauth"]
    assert session.closed
    assert client.auth.oauth._closed  # type: ignore[attr-defined]
    failed = [r for r in caplog.records if getattr(r, "event", None) == "close_failed"]
    assert len(failed) == 1 and "TokenManager" in failed[0].getMessage()
    await client.aclose()  # a second close does nothing
    assert order == ["session", "manager", "oauth"]
