"""NetrexClient.schema(): the standard introspection query, as SDL or JSON, authenticated."""

from __future__ import annotations

import json
import sys

import graphql
import pytest

from netrex_async import (
    ApiError,
    ExtraRequired,
    GraphQLError,
    NetrexClient,
    NetrexError,
    ReauthorizationRequired,
)
from netrex_async._schema_fetch import INTROSPECTION_QUERY, introspection_to_sdl
from netrex_async.testing import FakeNetrex, Fault
from netrex_async.testing._schema import schema as fake_schema


def served_types() -> set[str]:
    """Every type the fake's schema has, built-in scalars included, introspection's not."""
    return {name for name in fake_schema().type_map if not name.startswith("__")}


def test_the_query_is_graphql_cores_standard_one() -> None:
    ours = graphql.print_ast(graphql.parse(INTROSPECTION_QUERY))
    standard = graphql.print_ast(graphql.parse(graphql.get_introspection_query()))
    assert ours == standard


async def test_sdl_has_every_type_the_fake_serves(fake: FakeNetrex, client: NetrexClient) -> None:
    sdl = await client.schema()
    assert isinstance(sdl, str)
    assert sdl.endswith("}\n")
    rebuilt = graphql.build_schema(sdl)
    assert {n for n in rebuilt.type_map if not n.startswith("__")} == served_types()
    # Not only the names: the whole schema, descriptions and defaults included.
    assert graphql.print_schema(rebuilt) == graphql.print_schema(fake_schema())
    (sent,) = fake.requests_to("graphql")
    body = json.loads(sent.body)
    assert body["operationName"] == "IntrospectionQuery"
    assert sent.headers["Authorization"].startswith("Bearer ")


async def test_json_is_the_introspection_data(client: NetrexClient) -> None:
    data = await client.schema(as_json=True)
    assert set(data) == {"__schema"}
    assert data["__schema"]["queryType"] == {"name": "Query", "kind": "OBJECT"}
    rebuilt = graphql.build_client_schema(data)  # type: ignore[arg-type]
    assert graphql.print_schema(rebuilt) == graphql.print_schema(fake_schema())


async def test_schema_across_an_expiry_refreshes_once(
    fake: FakeNetrex, client: NetrexClient
) -> None:
    await client.schema()
    fake.expire_all()  # the provider drops the access token; the client does not know yet
    sdl = await client.schema()
    assert "type Camera" in sdl
    assert fake.counters.unauthorized == 1
    assert fake.counters.refreshes == 1


async def test_a_dead_grant_is_reauthorization(fake: FakeNetrex, client: NetrexClient) -> None:
    await client.schema(as_json=True)
    fake.revoke_all()
    with pytest.raises(ReauthorizationRequired):
        await client.schema()


async def test_without_graphql_core_sdl_names_the_extra_and_sends_nothing(
    fake: FakeNetrex, client: NetrexClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "graphql", None)  # `import graphql` fails now
    with pytest.raises(ExtraRequired) as caught:
        await client.schema()
    e = caught.value
    assert isinstance(e, NetrexError)
    assert isinstance(e, ImportError)
    assert e.extra == "graphql"
    assert e.name == "graphql"
    assert "pip install 'netrex-async[graphql]'" in str(e)
    assert "pip install -e '.[graphql]'" in str(e)
    assert fake.counters.api_calls == 0
    # The JSON form needs no graphql-core (the fake already holds its own import).
    data = await client.schema(as_json=True)
    assert data["__schema"]["queryType"]["name"] == "Query"


@pytest.mark.parametrize(
    "body",
    [
        {"data": {}},
        {"data": {"__schema": None}},
        {"data": {"__schema": "types"}},
    ],
)
async def test_an_answer_without_a_schema_is_an_api_error(
    fake: FakeNetrex, client: NetrexClient, body: object
) -> None:
    fake.inject("graphql", Fault.status(200, body=body))
    with pytest.raises(ApiError, match="introspection"):
        await client.schema()


async def test_introspection_turned_off_is_a_graphql_error(
    fake: FakeNetrex, client: NetrexClient
) -> None:
    refusal = {"message": "GraphQL introspection is not allowed", "extensions": {"code": "X"}}
    fake.inject("graphql", Fault.status(200, body={"errors": [refusal], "data": None}))
    with pytest.raises(GraphQLError) as caught:
        await client.schema(as_json=True)
    assert caught.value.errors == [refusal]
    assert caught.value.codes == ["X"]


@pytest.mark.parametrize(
    "introspection",
    [
        {"__schema": {"types": "not a list"}},
        {"__schema": {"queryType": {"name": "Nope"}, "types": [], "directives": []}},
        {"__schema": {"queryType": None, "types": [{"kind": "SCALAR"}]}},
    ],
)
def test_a_broken_introspection_answer_is_an_api_error(introspection: dict[str, object]) -> None:
    with pytest.raises(ApiError, match="does not describe a valid schema"):
        introspection_to_sdl(introspection)


async def test_a_transient_fault_is_retried_like_any_query(
    fake: FakeNetrex, client: NetrexClient
) -> None:
    fake.inject("graphql", Fault.status(503))
    assert "type Query" in await client.schema()
    assert len(fake.requests_to("graphql")) == 2
