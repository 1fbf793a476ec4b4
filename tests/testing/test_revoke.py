"""The revocation endpoint."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from netrex_async.testing import FakeNetrex

from ._helpers import graphql, refresh

pytestmark = pytest.mark.asyncio


async def _revoke(
    session: aiohttp.ClientSession, fake: FakeNetrex, body: bool = False, **params: str
) -> tuple[int, Any]:
    url = fake.provider.revoke_url
    request = session.post(url, data=params) if body else session.post(url.with_query(params))
    async with request as r:
        return r.status, await r.json()


async def test_revoking_an_access_token_cancels_the_grant(
    fake: FakeNetrex, session: aiohttp.ClientSession
) -> None:
    token = fake.issue_token()
    assert token.refresh_token is not None
    status, body = await _revoke(session, fake, access_token=token.access_token)
    assert status == 200
    assert body["success"] is True
    assert isinstance(body["message"], str)
    assert not fake.is_valid(token)
    assert (await graphql(session, fake, token.access_token, "{me{name}}"))[0] == 401
    assert (await refresh(session, fake, token.refresh_token))[1]["error"] == "invalid_grant"
    assert fake.counters.revocations == 1
    assert fake.grants[0].revoked_reason == "revoked"


async def test_revoking_twice_succeeds(fake: FakeNetrex, session: aiohttp.ClientSession) -> None:
    token = fake.issue_token()
    assert (await _revoke(session, fake, access_token=token.access_token))[0] == 200
    assert (await _revoke(session, fake, access_token=token.access_token))[0] == 200


async def test_token_in_a_form_body_and_the_rfc_7009_name(
    fake: FakeNetrex, session: aiohttp.ClientSession
) -> None:
    a, b = fake.issue_token(), fake.issue_token()
    assert (await _revoke(session, fake, body=True, access_token=a.access_token))[0] == 200
    assert (await _revoke(session, fake, token=b.access_token))[0] == 200
    assert not fake.is_valid(a)
    assert not fake.is_valid(b)


@pytest.mark.parametrize("accept", ["query", "body"])
async def test_accept_params_in_does_not_apply(
    fake: FakeNetrex, session: aiohttp.ClientSession, accept: str
) -> None:
    fake.accept_params_in = accept  # type: ignore[assignment]
    a, b = fake.issue_token(), fake.issue_token()
    assert (await _revoke(session, fake, body=True, access_token=a.access_token))[0] == 200
    assert (await _revoke(session, fake, access_token=b.access_token))[0] == 200


async def test_unknown_or_missing_token(fake: FakeNetrex, session: aiohttp.ClientSession) -> None:
    keep = fake.issue_token()
    assert await _revoke(session, fake, access_token="nope") == (
        400,
        {"success": False, "message": "unknown token"},
    )
    assert await _revoke(session, fake) == (
        400,
        {"success": False, "message": "access_token is missing"},
    )
    assert fake.is_valid(keep)
    assert fake.counters.revocations == 2
