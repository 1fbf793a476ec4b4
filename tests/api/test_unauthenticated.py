"""GraphQL-level rejection: HTTP 200 with ``extensions.code == "UNAUTHENTICATED"``.

Many GraphQL servers answer an expired token so. It is treated like a 401: invalidate,
refresh, retry once; and what counts as rejection is configurable and sees the answer.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from types import SimpleNamespace

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from core._fakes import ScriptedOAuth, make_token
from multidict import CIMultiDict, CIMultiDictProxy

from netrex_async import (
    GraphQLError,
    MemoryTokenStore,
    NetrexClient,
    Provider,
    ReauthorizationRequired,
    TokenManager,
)

QUERY = "{cameraList{name}}"
UNAUTHENTICATED = {
    "errors": [{"message": "token expired", "extensions": {"code": "UNAUTHENTICATED"}}],
    "data": None,
}


class Api:
    """A GraphQL API that answers an unknown token with HTTP 200 and UNAUTHENTICATED."""

    def __init__(self) -> None:
        self.valid: set[str] = set()
        self.bearers: list[str] = []
        self.rejection: tuple[int, dict] = (200, UNAUTHENTICATED)

    async def graphql(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        self.bearers.append(bearer)
        if bearer not in self.valid:
            status, body = self.rejection
            return web.json_response(body, status=status)
        return web.json_response({"data": {"cameraList": [{"name": "cam"}]}})


@pytest.fixture(name="api")
async def _api() -> AsyncIterator[tuple[Api, Provider]]:
    api = Api()
    app = web.Application()
    app.router.add_post("/api/graphql.php", api.graphql)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield api, Provider(f"http://127.0.0.1:{server.port}")
    finally:
        await server.close()


@pytest.fixture(name="manager")
async def _manager() -> AsyncIterator[tuple[TokenManager, ScriptedOAuth]]:
    oauth = ScriptedOAuth(lifetime=3600)
    store = MemoryTokenStore(make_token(1, lifetime=3600))
    async with TokenManager(oauth, store, background=False) as manager:  # type: ignore[arg-type]
        yield manager, oauth


async def test_unauthenticated_refreshes_and_retries_once(api, manager):
    server, provider = api
    source, oauth = manager
    server.valid.add("access-1001-secret")  # only the refreshed token works
    async with NetrexClient(source, provider=provider) as client:
        assert await client.graphql(QUERY) == {"cameraList": [{"name": "cam"}]}
    assert oauth.calls == 1
    assert server.bearers == ["access-1-secret", "access-1001-secret"]


async def test_unauthenticated_twice_is_the_graphql_error_not_a_loop(api, manager):
    server, provider = api
    source, oauth = manager
    async with NetrexClient(source, provider=provider) as client:
        with pytest.raises(GraphQLError, match="token expired") as e:
            await client.graphql(QUERY)
    assert e.value.errors[0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert oauth.calls == 1
    assert len(server.bearers) == 2


async def test_unauthenticated_for_a_user_token_asks_for_a_new_one(api):
    server, provider = api
    async with NetrexClient("dead-user-token-value", provider=provider) as client:
        with pytest.raises(ReauthorizationRequired):
            await client.graphql(QUERY)
    assert len(server.bearers) == 1


async def test_a_code_elsewhere_in_the_answer_is_no_rejection(api):
    server, provider = api
    server.rejection = (200, {"errors": [{"message": "UNAUTHENTICATED"}], "data": None})
    async with NetrexClient("user-token-value", provider=provider) as client:
        with pytest.raises(GraphQLError):
            await client.graphql(QUERY)
    assert len(server.bearers) == 1


async def test_a_custom_predicate_sees_the_parsed_answer(api, manager):
    server, provider = api
    source, oauth = manager
    server.rejection = (403, {"error": {"kind": "token_revoked"}})
    server.valid.add("access-1001-secret")
    seen: list[object] = []
    from netrex_async._auth_flow import Answer, default_token_rejected

    def revoked(answer: Answer) -> bool:
        if answer.status == 403:
            seen.append(answer.json())
            return answer.json()["error"]["kind"] == "token_revoked"
        return default_token_rejected(answer)

    async with NetrexClient(source, provider=provider, token_rejected=revoked) as client:
        assert await client.graphql(QUERY)
        assert client.token_rejected is revoked
    assert seen == [{"error": {"kind": "token_revoked"}}]
    assert oauth.calls == 1


async def test_auth_failed_still_works_and_the_graphql_rule_with_it(api, manager):
    server, provider = api
    source, oauth = manager
    from netrex_async._auth_flow import Answer

    server.rejection = (403, {"error": "forbidden"})
    server.valid.add("access-1001-secret")
    async with NetrexClient(
        source, provider=provider, auth_failed=lambda r: r.status in (401, 403)
    ) as client:
        assert await client.graphql(QUERY)
        assert oauth.calls == 1
        # The GraphQL rule holds beside the caller's status rule.
        body = json.dumps(UNAUTHENTICATED).encode()
        headers = CIMultiDictProxy(CIMultiDict())
        assert client.token_rejected(Answer(200, headers, body, SimpleNamespace(status=200)))


async def test_the_middleware_applies_the_rule_in_a_callers_session(api, manager):
    server, provider = api
    source, oauth = manager
    server.valid.add("access-1001-secret")
    client = NetrexClient(source, provider=provider)
    async with aiohttp.ClientSession(middlewares=(client.middleware,)) as session:
        async with session.post(provider.graphql_url, json={"query": QUERY}) as resp:
            assert await resp.json() == {"data": {"cameraList": [{"name": "cam"}]}}
    await client.aclose()
    assert oauth.calls == 1
    assert server.bearers == ["access-1-secret", "access-1001-secret"]
