"""Hostile JSON: an ApiError, never a RecursionError, and no document in the chain."""

from __future__ import annotations

import pytest

from netrex_async import ApiError, NetrexClient, Provider
from netrex_async._client import ApiResponse

from ._raw import RawServer, json_answer

QUERY = "{cameraList{name}}"
DEPTH = 100_000


def deep(depth: int = DEPTH) -> bytes:
    return b'{"data":' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(deep(), id="deep arrays"),
        pytest.param(
            b'{"data":' + b'{"a":' * DEPTH + b"1" + b"}" * DEPTH + b"}", id="deep objects"
        ),
        pytest.param(
            b'{"errors":[{"message":' + b"[" * DEPTH + b"]" * DEPTH + b"}]}", id="deep errors"
        ),
    ],
)
async def test_deep_json_is_an_api_error_not_a_recursion_error(token, body):
    async with RawServer(json_answer(body)) as server:
        async with NetrexClient(token, provider=Provider(server.url)) as client:
            with pytest.raises(ApiError, match="nested too deeply") as e:
                await client.graphql(QUERY)
            assert e.value.__context__ is None and e.value.__cause__ is None
            answer = await client.request("GET", "/api/graphql.php")
            with pytest.raises(ApiError, match="nested too deeply") as e:
                answer.json()
            assert e.value.__context__ is None


async def test_graphql_error_message_that_is_not_a_string(token):
    # A message of nested lists a few hundred deep would make str() recurse.
    body = b'{"errors":[{"message":' + b"[" * 900 + b"]" * 900 + b'}],"data":null}'
    async with RawServer(json_answer(body)) as server:
        async with NetrexClient(token, provider=Provider(server.url)) as client:
            with pytest.raises(ApiError, match="not a string"):
                await client.graphql(QUERY)


async def test_not_json_keeps_no_document_in_the_chain(token, secret_registry):
    # json.JSONDecodeError keeps the whole document in .doc; it must not stay chained.
    body = f"<html>Bearer {token} is not valid here</html>".encode()
    async with RawServer(json_answer(body)) as server:
        async with NetrexClient(token, provider=Provider(server.url)) as client:
            with pytest.raises(ApiError, match="not JSON") as e:
                await client.graphql(QUERY)
            secret_registry.check(e)
            answer = await client.request("GET", "/x")
            with pytest.raises(ApiError) as e:
                answer.json()
            assert e.value.__context__ is None


def test_api_response_json_of_a_fine_body():
    answer = ApiResponse(200, None, b'{"a": [1, 2.5, "\\u00e9"]}')  # type: ignore[arg-type]
    assert answer.json() == {"a": [1, 2.5, "é"]}
