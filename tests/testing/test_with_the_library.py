"""The library's own OAuth2 client against the fake: the whole flow, both parameter modes."""

from __future__ import annotations

import pytest

from netrex_async import (
    AuthorizationDenied,
    InvalidGrant,
    OAuth2App,
    OAuth2Client,
    Scope,
)
from netrex_async.testing import FakeNetrex

pytestmark = pytest.mark.asyncio


def _app(fake: FakeNetrex, **kwargs: object) -> OAuth2App:
    return OAuth2App(
        client_id=fake.client_id,
        client_secret=fake.client_secret,
        redirect_uri=fake.redirect_uri,
        provider=fake.provider,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("credentials_in", "grant_type_name", "use_pkce"),
    [("query", "authorization_code", False), ("body", "auth_code", True)],
)
async def test_authorize_exchange_refresh_revoke(
    fake: FakeNetrex, credentials_in: str, grant_type_name: str, use_pkce: bool
) -> None:
    fake.accept_params_in = credentials_in  # type: ignore[assignment]
    fake.require_pkce = use_pkce
    app = _app(
        fake, credentials_in=credentials_in, grant_type_name=grant_type_name, use_pkce=use_pkce
    )
    async with OAuth2Client(app) as oauth:
        request = oauth.authorization_request([Scope.READ, Scope.EVENTS])
        token = await oauth.exchange(await fake.authorize(request.url), request)
        assert fake.is_valid(token)
        assert token.refresh_token is not None
        assert fake.counters.token_requests[grant_type_name] == 1
        assert fake.find_grant(token) is fake.grants[0]
        assert fake.grants[0].scopes == ("read", "events")

        refreshed = await oauth.refresh(token)
        assert refreshed.refresh_token != token.refresh_token
        assert fake.counters.refreshes == 1
        with pytest.raises(InvalidGrant):
            await oauth.refresh(token)  # reuse: the grant is gone
        assert not fake.is_valid(refreshed)

        request = oauth.authorization_request([Scope.READ])
        token = await oauth.exchange(await fake.authorize(request.url), request)
        await oauth.revoke(token)
        assert not fake.is_valid(token)
        assert fake.counters.revocations == 1


async def test_denied_consent(fake: FakeNetrex) -> None:
    fake.consent = "deny"
    async with OAuth2Client(_app(fake)) as oauth:
        request = oauth.authorization_request([Scope.READ])
        with pytest.raises(AuthorizationDenied):
            await oauth.exchange(await fake.authorize(request.url), request)
