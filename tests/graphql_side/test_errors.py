"""GraphQLError keeps what the server said: path, locations, extensions and partial data."""

from __future__ import annotations

import pytest

from netrex_async import GraphQLError, MemoryTokenStore, NetrexClient
from netrex_async.testing import FakeNetrex, Fault

from .conftest import app_for


async def test_a_field_error_has_its_path_locations_and_the_partial_data(
    fake: FakeNetrex,
) -> None:
    store = MemoryTokenStore(fake.issue_token("read"))  # no write right
    query = 'mutation {\n  renameCamera(id: "1", name: "x") { name }\n}'
    async with NetrexClient.from_app(app_for(fake), store) as client:
        with pytest.raises(GraphQLError) as caught:
            await client.graphql(query)
    e = caught.value
    assert e.path == ["renameCamera"]
    assert e.locations == [{"line": 2, "column": 3}]
    assert e.data == {"renameCamera": None}
    assert e.errors[0]["path"] == ["renameCamera"]
    assert "lacks the 'write' right" in str(e)


async def test_a_list_index_in_the_path(fake: FakeNetrex, client: NetrexClient) -> None:
    error = {"message": "camera offline", "path": ["cameraList", 1, "firmware"]}
    answer = {"errors": [error], "data": {"cameraList": [{"firmware": "1"}, None]}}
    fake.inject("graphql", Fault.status(200, body=answer))
    with pytest.raises(GraphQLError) as caught:
        await client.graphql("{cameraList{firmware}}")
    assert caught.value.path == ["cameraList", 1, "firmware"]
    assert caught.value.data == answer["data"]
    assert caught.value.locations is None
    assert caught.value.extensions is None


async def test_extensions_and_codes(fake: FakeNetrex, client: NetrexClient) -> None:
    errors = [
        {"message": "slow down", "extensions": {"code": "RATE_LIMITED", "retryAfter": 3}},
        {"message": "and this", "extensions": {"code": "INTERNAL"}},
        {"message": "no code", "extensions": {"detail": 1}},
    ]
    fake.inject("graphql", Fault.status(200, body={"errors": errors, "data": None}))
    with pytest.raises(GraphQLError) as caught:
        await client.graphql("{me{name}}")
    e = caught.value
    assert e.extensions == {"code": "RATE_LIMITED", "retryAfter": 3}
    assert e.codes == ["RATE_LIMITED", "INTERNAL"]
    assert e.errors == errors
    assert e.data is None
    assert "(and 2 more)" in str(e)


@pytest.mark.parametrize(
    "error",
    [
        {"message": "m", "path": "cameraList", "locations": {"line": 1}, "extensions": [1]},
        {"message": "m", "path": [1.5], "locations": ["1:2"], "extensions": "code"},
        {"message": "m", "path": None, "locations": None, "extensions": None},
    ],
)
def test_odd_shapes_give_none_not_an_exception(error: dict[str, object]) -> None:
    e = GraphQLError("x", errors=[error])
    assert e.path is None
    assert e.locations is None
    assert e.extensions is None
    assert e.codes == []


def test_no_errors_at_all() -> None:
    e = GraphQLError("x", errors=[])
    assert (e.path, e.locations, e.extensions, e.codes) == (None, None, None, [])


def test_accessors_are_copies() -> None:
    error = {"message": "m", "path": ["a"], "locations": [{"line": 1, "column": 1}]}
    e = GraphQLError("x", errors=[error], data={"a": None})
    path = e.path
    assert path is not None
    path.append("b")
    assert e.path == ["a"]
