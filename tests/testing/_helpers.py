"""Helpers for the fake provider's tests: a hand-moved clock and request shortcuts."""

from __future__ import annotations

from typing import Any

import aiohttp
import attrs
from yarl import URL

from netrex_async.testing import FakeNetrex


@attrs.define
class ManualClock:
    """A clock that moves only when told to."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def auth_url(fake: FakeNetrex, **params: Any) -> URL:
    """An authorization URL for the fake's client, with ``params`` overriding defaults."""
    query = {
        "response_type": "code",
        "client_id": fake.client_id,
        "redirect_uri": fake.redirect_uri,
        "scope": "read,write",
        "state": "st4te",
    }
    query.update(params)
    return fake.provider.auth_url.with_query({k: v for k, v in query.items() if v is not None})


async def post_token(
    session: aiohttp.ClientSession,
    fake: FakeNetrex,
    *,
    where: str = "query",
    **params: Any,
) -> tuple[int, Any]:
    """POST to the token endpoint with ``params`` in the query or a form body."""
    clean = {k: v for k, v in params.items() if v is not None}
    url = fake.provider.token_url
    if where == "query":
        request = session.post(url.with_query(clean))
    else:
        request = session.post(url, data=clean)
    async with request as response:
        return response.status, await response.json()


async def exchange(
    session: aiohttp.ClientSession, fake: FakeNetrex, code: str, /, **params: Any
) -> tuple[int, Any]:
    """Exchange ``code`` with the fake's credentials (override any with ``params``)."""
    defaults: dict[str, Any] = {
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": fake.redirect_uri,
    }
    defaults.update(params)
    return await post_token(session, fake, **defaults)


async def refresh(
    session: aiohttp.ClientSession, fake: FakeNetrex, refresh_token: str, /, **params: Any
) -> tuple[int, Any]:
    """Refresh with the fake's credentials (override any with ``params``)."""
    defaults: dict[str, Any] = {
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
    }
    defaults.update(params)
    return await post_token(session, fake, **defaults)


async def graphql(
    session: aiohttp.ClientSession,
    fake: FakeNetrex,
    token: str | None,
    query: str,
    variables: dict[str, Any] | None = None,
    **extra: Any,
) -> tuple[int, Any]:
    """POST a GraphQL request with an optional bearer token; the status and JSON body."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    body: dict[str, Any] = {"query": query, **extra}
    if variables is not None:
        body["variables"] = variables
    async with session.post(fake.provider.graphql_url, json=body, headers=headers) as r:
        return r.status, await r.json(content_type=None)
