"""Fault injection: every kind of fault, on every endpoint, in order."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDictProxy

from netrex_async.testing import (
    DelayFault,
    DropFault,
    Endpoint,
    FakeNetrex,
    Fault,
    MalformedFault,
    RedirectFault,
    StatusFault,
)

from ._helpers import auth_url

pytestmark = pytest.mark.asyncio

ENDPOINTS: list[Endpoint] = ["auth", "token", "revoke", "graphql"]


async def call(
    session: aiohttp.ClientSession, fake: FakeNetrex, endpoint: Endpoint
) -> tuple[int, CIMultiDictProxy[str], bytes]:
    """A valid request to ``endpoint``: the status, headers and body of the answer."""
    p = fake.provider
    kwargs: dict[str, Any] = {"allow_redirects": False}
    if endpoint == "auth":
        # POST: aiohttp retries a GET once on a dropped connection.
        method, url = "POST", auth_url(fake)
    elif endpoint == "token":
        token = fake.issue_token()
        assert token.refresh_token is not None
        method, url = "POST", p.token_url
        kwargs["params"] = {
            "grant_type": "refresh_token",
            "refresh_token": token.refresh_token,
            "client_id": fake.client_id,
            "client_secret": fake.client_secret,
        }
    elif endpoint == "revoke":
        method, url = "POST", p.revoke_url
        kwargs["params"] = {"access_token": fake.issue_token().access_token}
    else:
        method, url = "POST", p.graphql_url
        kwargs["json"] = {"query": "{cameraList{name}}"}
        kwargs["headers"] = {"Authorization": f"Bearer {fake.issue_token().access_token}"}
    async with session.request(method, url, **kwargs) as r:
        return r.status, r.headers, await r.read()


NORMAL_STATUS = {"auth": 302, "token": 200, "revoke": 200, "graphql": 200}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_status_fault_for_the_next_n_calls(
    fake: FakeNetrex, session: aiohttp.ClientSession, endpoint: Endpoint
) -> None:
    fake.inject(endpoint, Fault.status(503), times=2)
    assert fake.pending_faults(endpoint) == 2
    for _ in range(2):
        status, headers, body = await call(session, fake, endpoint)
        assert status == 503
        assert body == b"503 Service Unavailable\n"
        assert headers["Content-Type"].startswith("text/plain")
    assert (await call(session, fake, endpoint))[0] == NORMAL_STATUS[endpoint]
    assert fake.pending_faults() == 0
    assert fake.counters.faults[endpoint] == 2
    assert fake.counters.requests[endpoint] == 3
    logged = fake.requests_to(endpoint)
    assert [r.status for r in logged] == [503, 503, NORMAL_STATUS[endpoint]]
    assert isinstance(logged[0].fault, StatusFault)
    assert logged[2].fault is None


async def test_a_faulted_request_is_not_processed(
    fake: FakeNetrex, session: aiohttp.ClientSession
) -> None:
    fake.inject("token", Fault.status(502))
    assert (await call(session, fake, "token"))[0] == 502
    assert fake.grants[0].refreshes == 0
    assert fake.counters.refreshes == 1


@pytest.mark.parametrize(
    ("fault", "status", "content_type", "body"),
    [
        (Fault.status(500, body={"error": "boom"}), 500, "application/json", b'{"error": "boom"}'),
        (Fault.status(502, body="<h1>Bad</h1>", content_type="text/html"), 502, "text/html", None),
        (Fault.status(500, body=b"\x00\x01"), 500, "application/octet-stream", b"\x00\x01"),
        (Fault.status(599), 599, "text/plain", b"599 Error\n"),
        (Fault.status(401, headers={"WWW-Authenticate": "Bearer"}), 401, "text/plain", None),
    ],
)
async def test_status_fault_bodies(
    fake: FakeNetrex,
    session: aiohttp.ClientSession,
    fault: StatusFault,
    status: int,
    content_type: str,
    body: bytes | None,
) -> None:
    fake.inject("graphql", fault)
    got_status, headers, got_body = await call(session, fake, "graphql")
    assert got_status == status
    assert headers["Content-Type"].startswith(content_type)
    if body is not None:
        assert got_body == body
    for name, value in fault.headers.items():
        assert headers[name] == value


@pytest.mark.parametrize(
    ("retry_after", "header"),
    [
        (2, "2"),
        (1.0, "1"),
        (0.5, "0.5"),
        ("Wed, 21 Oct 2015 07:28:00 GMT", "Wed, 21 Oct 2015 07:28:00 GMT"),
        (None, None),
    ],
)
async def test_rate_limited(
    fake: FakeNetrex,
    session: aiohttp.ClientSession,
    retry_after: float | str | None,
    header: str | None,
) -> None:
    fake.inject("token", Fault.rate_limited(retry_after))
    status, headers, _ = await call(session, fake, "token")
    assert status == 429
    assert headers.get("Retry-After") == header


async def test_rate_limited_as_503(fake: FakeNetrex, session: aiohttp.ClientSession) -> None:
    fake.inject("graphql", Fault.rate_limited(3, code=503))
    status, headers, _ = await call(session, fake, "graphql")
    assert (status, headers["Retry-After"]) == (503, "3")


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_delay_then_answer_normally(
    fake: FakeNetrex, session: aiohttp.ClientSession, endpoint: Endpoint
) -> None:
    fake.inject(endpoint, Fault.delay(0.1))
    started = time.monotonic()
    status, _, _ = await call(session, fake, endpoint)
    assert time.monotonic() - started >= 0.1
    assert status == NORMAL_STATUS[endpoint]
    assert isinstance(fake.requests[-1].fault, DelayFault)


async def test_delay_then_another_fault(fake: FakeNetrex, session: aiohttp.ClientSession) -> None:
    fake.inject("token", Fault.delay(0.05, then=Fault.delay(0.05, then=Fault.status(504))))
    started = time.monotonic()
    assert (await call(session, fake, "token"))[0] == 504
    assert time.monotonic() - started >= 0.1


async def test_delay_longer_than_the_client_timeout(
    fake: FakeNetrex, session: aiohttp.ClientSession
) -> None:
    fake.inject("graphql", Fault.delay(30))
    token = fake.issue_token()
    with pytest.raises(asyncio.TimeoutError):
        async with session.post(
            fake.provider.graphql_url,
            json={"query": "{me{name}}"},
            headers={"Authorization": f"Bearer {token.access_token}"},
            timeout=aiohttp.ClientTimeout(total=0.2),
        ):
            pass


async def test_closing_does_not_wait_for_delayed_answers(
    session: aiohttp.ClientSession,
) -> None:
    fake = FakeNetrex()
    await fake.start()
    fake.inject("graphql", Fault.delay(30))
    pending = asyncio.create_task(call(session, fake, "graphql"))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    await fake.aclose()
    assert time.monotonic() - started < 2
    with pytest.raises(aiohttp.ClientError):
        await pending


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_drop_closes_the_connection_without_an_answer(
    fake: FakeNetrex, session: aiohttp.ClientSession, endpoint: Endpoint
) -> None:
    fake.inject(endpoint, Fault.drop())
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await call(session, fake, endpoint)
    record = fake.requests[-1]
    assert record.status is None
    assert record.fault == DropFault()
    assert (await call(session, fake, endpoint))[0] == NORMAL_STATUS[endpoint]


async def test_drop_twice_defeats_aiohttps_get_retry(
    fake: FakeNetrex, session: aiohttp.ClientSession
) -> None:
    fake.inject("auth", Fault.drop(), times=2)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await session.get(auth_url(fake), allow_redirects=False)
    assert [r.status for r in fake.requests] == [None, None]


def _expect_malformed(kind: str, body: bytes) -> None:
    if kind == "empty":
        assert body == b""
        return
    if kind in ("invalid_json", "truncated_json", "html"):
        with pytest.raises(ValueError):
            json.loads(body)
        return
    assert json.loads(body) == {"json_array": [{"error": "unexpected"}], "null": None}[kind]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(
    "kind", ["invalid_json", "truncated_json", "html", "json_array", "null", "empty"]
)
async def test_malformed_answers(
    fake: FakeNetrex, session: aiohttp.ClientSession, endpoint: Endpoint, kind: Any
) -> None:
    fake.inject(endpoint, Fault.malformed(kind))
    status, headers, body = await call(session, fake, endpoint)
    assert status == 200
    expected_type = "text/html" if kind == "html" else "application/json"
    assert headers["Content-Type"].startswith(expected_type)
    _expect_malformed(kind, body)
    assert fake.requests[-1].fault == MalformedFault(kind)


async def test_malformed_with_an_error_status(
    fake: FakeNetrex, session: aiohttp.ClientSession
) -> None:
    fake.inject("token", Fault.malformed("html", code=502))
    status, _, body = await call(session, fake, "token")
    assert status == 502
    assert b"<html>" in body


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_redirect_to_another_origin(
    fake: FakeNetrex, session: aiohttp.ClientSession, endpoint: Endpoint
) -> None:
    async with FakeNetrex() as other:
        target = other.base_url + "/api/graphql.php"
        fake.inject(endpoint, Fault.redirect(target, code=307))
        status, headers, _ = await call(session, fake, endpoint)
        assert (status, headers["Location"]) == (307, target)
        assert fake.requests[-1].fault == RedirectFault(target, code=307)


async def test_a_followed_redirect_shows_what_a_client_forwards(
    fake: FakeNetrex, session: aiohttp.ClientSession
) -> None:
    async with FakeNetrex() as other:
        fake.inject("graphql", Fault.redirect(other.base_url + "/api/graphql.php", code=307))
        token = fake.issue_token()
        async with session.post(
            fake.provider.graphql_url,
            json={"query": "{me{name}}"},
            headers={"Authorization": f"Bearer {token.access_token}"},
        ) as r:
            assert r.status == 401  # the other fake does not know the token
        # aiohttp drops Authorization on a cross-origin redirect; the log proves it.
        assert other.requests[-1].bearer is None
        assert other.counters.unauthorized == 1


async def test_faults_are_served_in_order(fake: FakeNetrex, session: aiohttp.ClientSession) -> None:
    fake.inject("graphql", Fault.status(500), times=2)
    fake.inject("graphql", Fault.rate_limited(1))
    fake.inject("graphql", Fault.malformed("null"))
    fake.inject("token", Fault.status(503))
    statuses = [(await call(session, fake, "graphql"))[0] for _ in range(5)]
    assert statuses == [500, 500, 429, 200, 200]
    assert fake.requests[-2].fault == MalformedFault("null")
    assert fake.pending_faults() == 1
    assert fake.pending_faults("token") == 1


async def test_until_cleared(fake: FakeNetrex, session: aiohttp.ClientSession) -> None:
    fake.inject("revoke", Fault.status(500), times=None)
    fake.inject("graphql", Fault.status(500), times=None)
    for _ in range(3):
        assert (await call(session, fake, "revoke"))[0] == 500
    fake.clear_faults("revoke")
    assert (await call(session, fake, "revoke"))[0] == 200
    assert fake.pending_faults("graphql") == 1
    fake.clear_faults()
    assert fake.pending_faults() == 0
    assert (await call(session, fake, "graphql"))[0] == 200


async def test_bad_fault_arguments() -> None:
    fake = FakeNetrex()
    with pytest.raises(ValueError, match="endpoint must be one of"):
        fake.inject("api", Fault.drop())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="times"):
        fake.inject("token", Fault.drop(), times=0)
    with pytest.raises(TypeError, match="expected a Fault"):
        fake.inject("token", 503)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expected a Fault"):
        fake.inject("token", Fault())
    with pytest.raises(ValueError, match="endpoint must be one of"):
        fake.clear_faults("nope")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="endpoint must be one of"):
        fake.pending_faults("nope")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="HTTP status"):
        Fault.status(42)
    with pytest.raises(ValueError, match="3xx"):
        Fault.redirect("http://x", code=200)
    with pytest.raises(ValueError, match="seconds"):
        Fault.delay(-1)
    with pytest.raises(ValueError, match="kind must be one of"):
        Fault.malformed("xml")  # type: ignore[arg-type]
