"""The GraphQL API: bearer checks, the schema, rights, errors, the document cache."""

from __future__ import annotations

import aiohttp
import pytest

from netrex_async.testing import FakeNetrex

from ._helpers import ManualClock, graphql

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize("case", ["missing", "not bearer", "unknown", "expired", "revoked"])
async def test_bad_tokens_get_401_with_www_authenticate(
    fake: FakeNetrex, session: aiohttp.ClientSession, clock: ManualClock, case: str
) -> None:
    token = fake.issue_token(expires_in=10)
    headers = {"Authorization": f"Bearer {token.access_token}"}
    if case == "missing":
        headers = {}
    elif case == "not bearer":
        headers = {"Authorization": f"Basic {token.access_token}"}
    elif case == "unknown":
        headers = {"Authorization": "Bearer abc"}
    elif case == "expired":
        clock.advance(10)
    else:
        fake.revoke_grant(token)
    async with session.post(
        fake.provider.graphql_url, json={"query": "{me{name}}"}, headers=headers
    ) as r:
        assert r.status == 401
        assert r.headers["WWW-Authenticate"].startswith(
            'Bearer realm="netrex", error="invalid_token"'
        )
        body = await r.json()
    assert body["error"] == "invalid_token"
    assert fake.counters.unauthorized == 1
    assert fake.counters.api_calls == 1


async def test_bearer_scheme_is_case_insensitive(
    fake: FakeNetrex, session: aiohttp.ClientSession
) -> None:
    token = fake.issue_token()
    async with session.post(
        fake.provider.graphql_url,
        json={"query": "{me{name}}"},
        headers={"Authorization": f"bearer {token.access_token}"},
    ) as r:
        assert r.status == 200


async def test_other_ways_to_refuse_a_token(
    fake: FakeNetrex, session: aiohttp.ClientSession
) -> None:
    fake.invalid_token_answer = "403"
    status, body = await graphql(session, fake, "nope", "{me{name}}")
    assert (status, body["error"]) == (403, "invalid_token")
    fake.invalid_token_answer = "graphql"
    status, body = await graphql(session, fake, "nope", "{me{name}}")
    assert status == 200
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert fake.counters.unauthorized == 2


async def test_camera_list_as_documented(fake: FakeNetrex, session: aiohttp.ClientSession) -> None:
    token = fake.issue_token()
    status, body = await graphql(session, fake, token.access_token, "{cameraList{name}}")
    assert status == 200
    assert body == {
        "data": {
            "cameraList": [{"name": "Entrance"}, {"name": "Parking lot"}, {"name": "Warehouse"}]
        }
    }


async def test_the_schema(fake: FakeNetrex, session: aiohttp.ClientSession) -> None:
    token = fake.issue_token(scopes="read,events")
    query = """
      query Q($id: ID!) {
        camera(id: $id) { id name serialNumber model online firmware timezone
                          events(limit: 1) { id type time cameraId camera { name } } }
        missing: camera(id: "999") { id }
        me { id email name fullAccess scopes }
      }
    """
    status, body = await graphql(session, fake, token.access_token, query, {"id": "2"})
    assert status == 200, body
    data = body["data"]
    assert data["camera"] == {
        "id": "2",
        "name": "Parking lot",
        "serialNumber": "B8A44F3C0002",
        "model": "AXIS Q1656-LE",
        "online": True,
        "firmware": "11.11.73",
        "timezone": "Europe/Prague",
        "events": [
            {
                "id": "2",
                "type": "motion",
                "time": "2024-05-01T08:07:00Z",
                "cameraId": "2",
                "camera": {"name": "Parking lot"},
            }
        ],
    }
    assert data["missing"] is None
    assert data["me"]["scopes"] == ["events", "read"]
    assert data["me"]["fullAccess"] is True


async def test_events_filters(fake: FakeNetrex, session: aiohttp.ClientSession) -> None:
    token = fake.issue_token(scopes="events")
    new = fake.add_event("3", "audio")
    query = "query($c: ID, $a: ID, $l: Int) { events(cameraId: $c, afterId: $a, limit: $l) { id } }"

    async def ids(**variables: object) -> list[str]:
        _, body = await graphql(session, fake, token.access_token, query, variables)
        return [e["id"] for e in body["data"]["events"]]

    assert await ids() == ["1", "2", "3", "4", new.id]
    assert await ids(c="1") == ["1", "3"]
    assert await ids(a="2") == ["3", "4", new.id]
    assert await ids(a="2", l=1) == ["3"]
    assert await ids(c="3") == [new.id]


async def test_operation_name_picks_the_operation(
    fake: FakeNetrex, session: aiohttp.ClientSession
) -> None:
    token = fake.issue_token()
    query = "query A { me { name } } query B { cameraList { id } }"
    _, body = await graphql(session, fake, token.access_token, query, operationName="B")
    assert list(body["data"]) == ["cameraList"]
    _, body = await graphql(session, fake, token.access_token, query)
    assert "data" not in body or body["data"] is None
    assert body["errors"]


async def test_added_cameras_are_served(fake: FakeNetrex, session: aiohttp.ClientSession) -> None:
    camera = fake.add_camera("Garden", model="AXIS M1075-L", online=False)
    fake.cameras[0].online = False
    token = fake.issue_token()
    _, body = await graphql(session, fake, token.access_token, "{cameraList{id name online}}")
    rows = body["data"]["cameraList"]
    assert rows[-1] == {"id": camera.id, "name": "Garden", "online": False}
    assert rows[0]["online"] is False
    with pytest.raises(ValueError, match="exists already"):
        fake.add_camera("Again", id=camera.id)
    with pytest.raises(ValueError, match="no camera"):
        fake.add_event("nope")


async def test_mutation_needs_write(fake: FakeNetrex, session: aiohttp.ClientSession) -> None:
    mutation = 'mutation { renameCamera(id: "1", name: "Front door") { id name } }'
    reader = fake.issue_token(scopes="read")
    status, body = await graphql(session, fake, reader.access_token, mutation)
    assert status == 200
    assert body["data"] == {"renameCamera": None}
    assert "'write'" in body["errors"][0]["message"]
    assert fake.cameras[0].name == "Entrance"

    writer = fake.issue_token(scopes="read,write")
    _, body = await graphql(session, fake, writer.access_token, mutation)
    assert body == {"data": {"renameCamera": {"id": "1", "name": "Front door"}}}
    assert fake.cameras[0].name == "Front door"

    _, body = await graphql(
        session, fake, writer.access_token, 'mutation { renameCamera(id: "77", name: "x") { id } }'
    )
    assert body["data"] == {"renameCamera": None}
    assert body["errors"][0]["message"] == "no camera with id '77'"
    assert body["errors"][0]["path"] == ["renameCamera"]


async def test_reading_needs_read(fake: FakeNetrex, session: aiohttp.ClientSession) -> None:
    token = fake.issue_token(scopes="liveview")
    _, body = await graphql(session, fake, token.access_token, "{cameraList{name}}")
    assert body["data"] is None
    assert "'read'" in body["errors"][0]["message"]
    _, body = await graphql(session, fake, token.access_token, "{me{scopes}}")
    assert body == {"data": {"me": {"scopes": ["liveview"]}}}


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("{cameraList{name}", "Syntax Error"),
        ("{cameraList{nope}}", "Cannot query field 'nope'"),
        # graphql-core 3.2 and 3.3 word it differently; both say this.
        ("{camera{name}}", "of type 'ID!' is required"),
    ],
)
async def test_request_errors_have_the_conventional_shape(
    fake: FakeNetrex, session: aiohttp.ClientSession, query: str, fragment: str
) -> None:
    token = fake.issue_token()
    for _ in range(2):  # the second time from the document cache
        status, body = await graphql(session, fake, token.access_token, query)
        assert status == 200
        assert "data" not in body
        assert fragment in body["errors"][0]["message"]
        assert "locations" in body["errors"][0]


async def test_variable_errors(fake: FakeNetrex, session: aiohttp.ClientSession) -> None:
    token = fake.issue_token()
    _, body = await graphql(
        session, fake, token.access_token, "query($id: ID!){camera(id: $id){name}}", {}
    )
    assert "$id" in body["errors"][0]["message"]


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"not json", "not JSON"),
        (b"[]", "'query' string"),
        (b'{"query": 5}', "'query' string"),
        (b'{"query": "{me{name}}", "variables": []}', "'variables'"),
        (b'{"query": "{me{name}}", "operationName": 1}', "'operationName'"),
    ],
)
async def test_malformed_requests_get_400(
    fake: FakeNetrex, session: aiohttp.ClientSession, raw: bytes, fragment: str
) -> None:
    token = fake.issue_token()
    async with session.post(
        fake.provider.graphql_url,
        data=raw,
        headers={
            "Authorization": f"Bearer {token.access_token}",
            "Content-Type": "application/json",
        },
    ) as r:
        assert r.status == 400
        assert fragment in (await r.json())["errors"][0]["message"]


async def test_documents_are_parsed_once(fake: FakeNetrex, session: aiohttp.ClientSession) -> None:
    from netrex_async.testing import _schema

    token = fake.issue_token()
    query = "{ cameraList { id } } # unique to this test"
    before = _schema._prepare.cache_info()
    for _ in range(5):
        assert (await graphql(session, fake, token.access_token, query))[0] == 200
    after = _schema._prepare.cache_info()
    assert after.misses - before.misses == 1
    assert after.hits - before.hits == 4


async def test_get_is_not_allowed(fake: FakeNetrex, session: aiohttp.ClientSession) -> None:
    async with session.get(fake.provider.graphql_url) as r:
        assert r.status == 405


async def test_result_cache_follows_the_data(session: aiohttp.ClientSession) -> None:
    async with FakeNetrex(cache_results=True) as fake:
        reader = fake.issue_token(scopes="read")
        writer = fake.issue_token(scopes="read,write")
        query = "{cameraList{name online}}"

        async def names(token: str = reader.access_token) -> list[object]:
            _, body = await graphql(session, fake, token, query)
            return [(c["name"], c["online"]) for c in body["data"]["cameraList"]]

        first = await names()
        assert await names() == first
        assert len(fake._results) == 1
        fake.cameras[0].online = False  # an attribute edit is noticed
        assert (await names())[0] == ("Entrance", False)
        fake.add_camera("Garden")
        assert (await names())[-1] == ("Garden", True)
        await graphql(
            session,
            fake,
            writer.access_token,
            'mutation { renameCamera(id: "1", name: "Door") { name } }',
        )
        assert (await names(writer.access_token))[0] == ("Door", False)
        fake.data.cameras.pop("3")  # behind its back: the length changed
        assert len(await names()) == 3
        fake.data.cameras["1"] = fake.data.cameras["2"]  # truly behind its back
        fake.data.touch()
        assert (await names())[0] == ("Parking lot", True)
        # Rights are part of the key: a token without 'read' does not see cached data.
        _, body = await graphql(session, fake, fake.issue_token("events").access_token, query)
        assert body["data"] is None
        assert fake.counters.api_calls == 9
