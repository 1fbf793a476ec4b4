"""gql's aiohttp transport on NetrexClient.middleware: the recipe of docs/typed-clients.md."""

from __future__ import annotations

import asyncio

import graphql
import pytest
from gql import Client, gql
from gql.transport.aiohttp import AIOHTTPTransport
from gql.transport.exceptions import TransportQueryError, TransportServerError

from netrex_async import MemoryTokenStore, NetrexClient
from netrex_async.testing import FakeNetrex
from netrex_async.testing._schema import schema as fake_schema

from .conftest import app_for


def transport_for(netrex: NetrexClient) -> AIOHTTPTransport:
    return AIOHTTPTransport(
        url=str(netrex.provider.graphql_url),
        client_session_args={"middlewares": (netrex.middleware,)},
    )


async def test_the_schema_fetch_across_an_expiry(fake: FakeNetrex) -> None:
    store = MemoryTokenStore(fake.issue_token("read"))
    async with NetrexClient.from_app(app_for(fake), store, background=False) as netrex:
        await netrex.graphql("{me{name}}")  # the token in use, as in a running service
        fake.expire_all()  # it expires before gql's schema fetch
        transport = transport_for(netrex)
        async with Client(transport=transport, fetch_schema_from_transport=True) as session:
            assert fake.counters.refreshes == 1  # the introspection query was refreshed
            assert session.client.schema is not None
            assert graphql.print_schema(session.client.schema) == graphql.print_schema(
                fake_schema()
            )
            result = await session.execute(gql("query { cameraList { name } }"))
    assert result == {"cameraList": [{"name": c.name} for c in fake.cameras]}
    assert fake.counters.refreshes == 1
    assert fake.counters.unauthorized == 1


async def test_concurrent_queries_across_an_expiry_one_refresh(
    fake: FakeNetrex, client: NetrexClient
) -> None:
    async with Client(transport=transport_for(client)) as session:
        query = gql("query { cameraList { name } }")
        first = await session.execute(query)
        fake.expire_all()
        results = await asyncio.gather(*(session.execute(query) for _ in range(20)))
    assert all(r == first for r in results)
    assert fake.counters.refreshes == 1
    assert all(
        r.headers["Authorization"].startswith("Bearer ") for r in fake.requests_to("graphql")
    )


async def test_local_validation_sends_nothing(fake: FakeNetrex, client: NetrexClient) -> None:
    async with Client(transport=transport_for(client), fetch_schema_from_transport=True) as s:
        sent = fake.counters.api_calls
        with pytest.raises(graphql.GraphQLError, match="Cannot query field 'nmae'"):
            await s.execute(gql("query { cameraList { nmae } }"))
        assert fake.counters.api_calls == sent


async def test_graphql_errors_are_gqls(fake: FakeNetrex) -> None:
    store = MemoryTokenStore(fake.issue_token("read"))  # no write right
    async with (
        NetrexClient.from_app(app_for(fake), store) as netrex,
        Client(transport=transport_for(netrex)) as session,
    ):
        with pytest.raises(TransportQueryError) as caught:
            await session.execute(gql('mutation { renameCamera(id: "1", name: "x") { name } }'))
    assert caught.value.errors is not None
    assert caught.value.errors[0]["path"] == ["renameCamera"]


async def test_no_token_for_another_origin(fake: FakeNetrex, client: NetrexClient) -> None:
    async with FakeNetrex() as other:
        transport = AIOHTTPTransport(
            url=str(other.provider.graphql_url),
            client_session_args={"middlewares": (client.middleware,)},
        )
        with pytest.raises(TransportServerError, match="401"):  # the other host's answer
            async with Client(transport=transport) as session:
                await session.execute(gql("{me{name}}"))
        (request,) = other.requests_to("graphql")
        assert "Authorization" not in request.headers
