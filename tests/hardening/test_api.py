"""The API misbehaves: 401 storms, refused refreshes, rate limits, outages, partial
answers, and redirects that try to carry the bearer token or a cookie elsewhere."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from netrex_async import (
    ApiError,
    GraphQLError,
    MemoryTokenStore,
    NetrexClient,
    OAuth2App,
    Provider,
    ReauthorizationRequired,
    Token,
)
from netrex_async.testing import FakeNetrex, Fault

from ._helpers import Recorder, long_secret, self_signed_tls

QUERY = "{cameraList{name}}"
MUTATION = 'mutation { renameCamera(id: "1", name: "x") { name } }'


@pytest.fixture(name="api")
async def _api(fake: FakeNetrex, app: OAuth2App) -> AsyncIterator[tuple[NetrexClient, Token]]:
    token = fake.issue_token(scopes=("read", "write"))
    async with NetrexClient.from_app(app, MemoryTokenStore(token), background=False) as client:
        yield client, token


async def test_401_storm_causes_one_refresh(fake, api):
    client, token = api
    await client.graphql(QUERY)
    fake.expire_token(token)  # the provider says no; the manager still thinks it fresh
    results = await asyncio.gather(*(client.graphql(QUERY) for _ in range(200)))
    assert all(r["cameraList"] for r in results)
    assert fake.counters.refreshes == 1
    assert 1 <= fake.counters.unauthorized <= 200


async def test_401_after_refresh_is_an_error_not_a_loop(fake, api, secret_registry):
    client, _ = api
    fake.inject("graphql", Fault.status(401, body={"error": "invalid_token"}), times=None)
    for call in range(1, 4):
        with pytest.raises(ApiError) as e:
            await client.graphql(QUERY)
        assert e.value.status == 401
        # The first call: one refresh and one retry, never more. Later calls: the token
        # that refresh bought was refused too, so no refresh per call (the API refuses
        # the grant, not the token) and no retry.
        assert fake.counters.refreshes == 1
        assert fake.counters.api_calls == call + 1
        secret_registry.check(e)


async def test_401_for_a_user_token_asks_for_a_new_one(fake):
    user_token = long_secret("user-token")
    fake.inject("graphql", Fault.status(401), times=None)
    async with NetrexClient(user_token, provider=fake.provider) as client:
        with pytest.raises(ReauthorizationRequired, match="user token"):
            await client.graphql(QUERY)
    assert fake.counters.api_calls == 1


async def test_429_once_is_retried(fake, api):
    client, _ = api
    fake.inject("graphql", Fault.rate_limited(retry_after=0))
    assert (await client.graphql(QUERY))["cameraList"]
    assert fake.counters.api_calls == 2


async def test_429_storm_is_bounded(fake, api):
    client, _ = api
    fake.inject("graphql", Fault.rate_limited(retry_after=0), times=None)
    with pytest.raises(ApiError) as e:
        await client.graphql(QUERY)
    assert e.value.status == 429
    assert fake.counters.api_calls == client.retry.attempts


async def test_429_retry_after_beyond_the_limit_is_not_waited_for(fake, api):
    client, _ = api
    fake.inject("graphql", Fault.rate_limited(retry_after=86400), times=None)
    with pytest.raises(ApiError):
        await client.graphql(QUERY)
    assert fake.counters.api_calls == 1


async def test_mutation_is_not_retried(fake, api):
    client, _ = api
    fake.inject("graphql", Fault.status(503), times=None)
    with pytest.raises(ApiError):
        await client.graphql(MUTATION)
    assert fake.counters.api_calls == 1


@pytest.mark.parametrize(
    ("status", "retried"), [(500, False), (502, True), (503, True), (504, True)]
)
async def test_5xx_storm_is_bounded(fake, api, secret_registry, status, retried):
    client, token = api
    # A server error page that quotes the request's Authorization header.
    body = f"<h1>{status}</h1><pre>Authorization: Bearer {token.access_token}</pre>"
    fake.inject("graphql", Fault.status(status, body=body), times=None)
    with pytest.raises(ApiError) as e:
        await client.graphql(QUERY)
    assert e.value.status == status
    assert fake.counters.api_calls == (client.retry.attempts if retried else 1)
    assert "<pre>" in e.value.body_excerpt  # the excerpt is there, the token is not
    secret_registry.check(e)
    fake.clear_faults()
    assert (await client.graphql(QUERY))["cameraList"]


async def test_graphql_errors_with_partial_data(fake, api, secret_registry):
    client, token = api
    answer = {
        "errors": [
            {"message": f"token {token.access_token} may not see camera 7\x1b[31m\r\nFORGED"},
            {"message": "second problem"},
        ],
        "data": {"cameraList": [{"name": "Entrance"}], "camera": None},
    }
    fake.inject("graphql", Fault.status(200, body=answer))
    with pytest.raises(GraphQLError) as e:
        await client.graphql("{cameraList{name} camera(id: 7){name}}")
    assert e.value.data == {"cameraList": [{"name": "Entrance"}], "camera": None}
    assert len(e.value.errors) == 2
    message = str(e.value)
    assert "and 1 more" in message
    assert "\x1b" not in message
    assert "\n" not in message
    # The message is scrubbed; ``errors`` is the API's answer, given to the caller as is.
    secret_registry.check(message, repr(e.value))


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
async def test_redirect_to_another_origin_is_refused_and_nothing_is_sent(
    fake, api, secret_registry, code
):
    client, token = api
    async with Recorder() as elsewhere:
        fake.inject("graphql", Fault.redirect(elsewhere.url + "/api/graphql.php", code=code))
        with pytest.raises(ApiError) as e:
            await client.graphql(QUERY)
        assert elsewhere.requests == [], "no header, no body went to the other origin"
        assert e.value.status == code
        assert str(URL(elsewhere.url).origin()) in str(e.value)
        secret_registry.check(e)
    assert fake.requests_to("graphql")[-1].bearer == token.access_token  # sent to the provider
    assert (await client.graphql(QUERY))["cameraList"]  # and the client goes on


async def test_redirect_in_a_callers_session_is_refused_before_anything_is_sent(
    fake, api, secret_registry
):
    # The middleware in a caller's own session (aiohttp follows redirects there, and runs
    # the middleware on each hop): a hop away from the provider is refused too.
    client, _ = api
    cookie = long_secret("session-cookie")
    secret_registry.add(cookie)
    async with Recorder() as elsewhere:
        # "localhost" is another host than 127.0.0.1: another origin.
        target = URL(elsewhere.url).with_host("localhost")
        fake.inject(
            "graphql",
            Fault.status(
                307,
                headers={
                    "Location": str(target / "api/graphql.php"),
                    "Set-Cookie": f"sid={cookie}",
                },
            ),
        )
        async with aiohttp.ClientSession(
            middlewares=(client.middleware,), cookie_jar=aiohttp.CookieJar(unsafe=True)
        ) as session:
            with pytest.raises(ApiError, match="another origin") as e:
                await session.post(fake.provider.graphql_url, json={"query": QUERY})
        assert elsewhere.requests == []
    secret_registry.check(e)


async def _tls_provider(
    tmp_path: Path, target: str, seen: list[str | None]
) -> tuple[web.AppRunner, Provider, object]:
    server_tls, client_tls = self_signed_tls(tmp_path)

    async def graphql(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers.get("Authorization"))
        raise web.HTTPTemporaryRedirect(target)

    web_app = web.Application()
    web_app.router.add_post("/api/graphql.php", graphql)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_tls)
    await site.start()
    return runner, Provider(f"https://127.0.0.1:{runner.addresses[0][1]}"), client_tls


async def test_https_to_http_redirect_is_refused(tmp_path: Path, secret_registry):
    token = long_secret("user-token")
    secret_registry.add(token)
    seen: list[str | None] = []
    async with Recorder() as plain:
        downgrade = str(URL(plain.url) / "api/graphql.php")
        plain_origin = str(URL(plain.url).origin())
        runner, provider, client_tls = await _tls_provider(tmp_path, downgrade, seen)
        try:
            connector = aiohttp.TCPConnector(ssl=client_tls)
            async with (
                aiohttp.ClientSession(connector=connector) as session,
                NetrexClient(token, provider=provider, session=session) as client,
            ):
                with pytest.raises(ApiError, match="another origin") as e:
                    await client.graphql(QUERY)
                # The middleware in the same session refuses it as well.
                async with aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(ssl=client_tls),
                    middlewares=(client.middleware,),
                ) as own:
                    with pytest.raises(ApiError, match="another origin"):
                        await own.post(provider.graphql_url, json={"query": QUERY})
        finally:
            await runner.cleanup()
        assert plain.requests == [], "the query never went out in plain text"
    assert e.value.status == 307
    assert plain_origin in str(e.value)
    assert seen == [f"Bearer {token}"] * 2  # the https provider got it, both times
    secret_registry.check(e)


async def test_middleware_refuses_a_scheme_downgrade_on_the_same_host_and_port():
    # The origin check itself: same host and port, but http instead of https.
    token = long_secret("user-token")
    client = NetrexClient(token, provider=Provider("https://127.0.0.1:8443"))
    sent: list[str | None] = []

    async def handler(request: SimpleNamespace) -> SimpleNamespace:
        sent.append(request.headers.get("Authorization"))
        return SimpleNamespace(status=200, headers={})

    home = SimpleNamespace(
        url=URL("https://127.0.0.1:8443/api/graphql.php"), method="POST", headers=CIMultiDict()
    )
    await client.middleware(home, handler)  # type: ignore[arg-type]
    # A redirect hop to http: aiohttp copies the headers of the previous hop.
    hop = SimpleNamespace(
        url=URL("http://127.0.0.1:8443/api/graphql.php"),
        headers=CIMultiDict({"Authorization": f"Bearer {token}"}),
    )
    await client.middleware(hop, handler)  # type: ignore[arg-type]
    other_port = SimpleNamespace(
        url=URL("https://127.0.0.1:9443/api/graphql.php"), headers=CIMultiDict()
    )
    await client.middleware(other_port, handler)  # type: ignore[arg-type]
    assert sent == [f"Bearer {token}", None, None]
    await client.aclose()


class _Rotating:
    """A TokenSource whose current token the test changes (a refresh happened)."""

    def __init__(self, *tokens: str) -> None:
        self.tokens = list(tokens)
        self.current = tokens[0]

    async def token(self) -> str:
        return self.current

    async def invalidate(self, access_token: str) -> None:
        return None


async def test_foreign_hop_carrying_an_older_token_is_stripped(secret_registry):
    # A request sent with the old token is redirected after a refresh: its hop to
    # another origin still carries the old token, which must not go along.
    old, new = long_secret("old-access"), long_secret("new-access")
    secret_registry.add(old, new)
    source = _Rotating(old, new)
    client = NetrexClient(source, provider=Provider("https://127.0.0.1:8443"))
    sent: list[str | None] = []

    async def handler(request: SimpleNamespace) -> SimpleNamespace:
        sent.append(request.headers.get("Authorization"))
        return SimpleNamespace(status=200, headers={})

    def home() -> SimpleNamespace:
        return SimpleNamespace(
            url=URL("https://127.0.0.1:8443/api/graphql.php"), method="POST", headers=CIMultiDict()
        )

    await client.middleware(home(), handler)  # type: ignore[arg-type]
    source.current = new
    await client.middleware(home(), handler)  # type: ignore[arg-type]
    hop = SimpleNamespace(
        url=URL("https://elsewhere.example/steal"),
        headers=CIMultiDict({"Authorization": f"Bearer {old}"}),
    )
    await client.middleware(hop, handler)  # type: ignore[arg-type]
    assert sent == [f"Bearer {old}", f"Bearer {new}", None]
    await client.aclose()


async def test_error_answer_echoing_an_older_token_is_scrubbed(secret_registry):
    # The answer to a request sent with the old token arrives after a refresh and a
    # request with the new one: it quotes the old token, which must be scrubbed too.
    old, new = long_secret("old-access"), long_secret("new-access")
    secret_registry.add(old, new)
    source = _Rotating(old, new)
    release = asyncio.Event()
    arrived = asyncio.Event()

    async def graphql(request: web.Request) -> web.StreamResponse:
        bearer = request.headers.get("Authorization", "")
        if bearer.endswith(old):
            arrived.set()
            await release.wait()
            return web.Response(status=500, text=f"upstream refused {bearer}")
        return web.json_response({"data": {"ok": True}})

    web_app = web.Application()
    web_app.router.add_post("/api/graphql.php", graphql)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        provider = Provider(f"http://127.0.0.1:{runner.addresses[0][1]}")
        async with NetrexClient(source, provider=provider) as client:
            first = asyncio.create_task(client.graphql(QUERY))
            await asyncio.wait_for(arrived.wait(), 5)
            source.current = new
            assert await client.graphql(QUERY) == {"ok": True}
            release.set()
            with pytest.raises(ApiError) as e:
                await first
    finally:
        await runner.cleanup()
    assert "upstream refused" in e.value.body_excerpt
    secret_registry.check(e)
