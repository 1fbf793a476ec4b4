"""The whole library against FakeNetrex on loopback: login, refresh, API, revoke."""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
import pytest

from netrex_async import (
    AuthorizationDenied,
    InvalidClient,
    MemoryTokenStore,
    NetrexClient,
    OAuth2App,
    OAuth2Client,
    ReauthorizationNeeded,
    ReauthorizationRequired,
    RefreshFailed,
    TokenAdopted,
    TokenManager,
    TokenRefreshed,
    set_testing,
)
from netrex_async.testing import FakeNetrex, Fault


@pytest.fixture(autouse=True)
def _no_backoff():
    old = set_testing(True)
    yield
    set_testing(old)


def app_for(fake: FakeNetrex, **kw) -> OAuth2App:
    kw.setdefault("client_secret", fake.client_secret)
    return OAuth2App(
        client_id=fake.client_id, redirect_uri=fake.redirect_uri, provider=fake.provider, **kw
    )


async def login(fake: FakeNetrex, oauth: OAuth2Client, scopes: str = "read,events"):
    request = oauth.authorization_request(scopes)
    callback = await fake.authorize(request.url)
    return await oauth.exchange(callback, request)


@pytest.mark.parametrize("grant_type_name", ["authorization_code", "auth_code"])
@pytest.mark.parametrize("credentials_in", ["query", "body"])
async def test_login_and_query(grant_type_name, credentials_in):
    async with FakeNetrex(accept_params_in=credentials_in) as fake:
        app = app_for(fake, grant_type_name=grant_type_name, credentials_in=credentials_in)
        async with OAuth2Client(app) as oauth:
            token = await login(fake, oauth)
            assert token.can_refresh
            assert set(token.scopes) == {"read", "events"}
            store = MemoryTokenStore(token)
            async with NetrexClient.from_app(app, store) as client:
                data = await client.graphql("{cameraList{name}}")
        assert data["cameraList"]
        assert fake.counters.token_requests[grant_type_name] == 1


async def test_pkce_flow():
    async with FakeNetrex(require_pkce=True) as fake:
        async with OAuth2Client(app_for(fake, use_pkce=True)) as oauth:
            token = await login(fake, oauth)
        assert token.access_token


async def test_temporary_grant_without_secret():
    async with FakeNetrex() as fake:
        app = app_for(fake, client_secret=None)
        async with OAuth2Client(app) as oauth:
            token = await login(fake, oauth)
        assert not token.can_refresh


async def test_denied_consent():
    async with FakeNetrex(consent="deny") as fake, OAuth2Client(app_for(fake)) as oauth:
        with pytest.raises(AuthorizationDenied):
            await login(fake, oauth)
        assert fake.counters.requests["token"] == 0


async def test_wrong_secret_is_invalid_client():
    async with (
        FakeNetrex() as fake,
        OAuth2Client(app_for(fake, client_secret="wrong-secret-x")) as oauth,
    ):
        with pytest.raises(InvalidClient):
            await login(fake, oauth)


async def test_revoke_cancels_access_and_refresh():
    async with FakeNetrex() as fake, OAuth2Client(app_for(fake)) as oauth:
        token = await login(fake, oauth)
        await oauth.revoke(token)
        assert not fake.is_valid(token)
        with pytest.raises(Exception, match="refused"):
            await oauth.refresh(token)


async def test_collector_across_lifetimes_one_refresh_each():
    lifetime = 0.6
    async with FakeNetrex(expires_in=lifetime) as fake:
        app = app_for(fake)
        async with OAuth2Client(app) as oauth:
            token = await login(fake, oauth)
        events = []
        store = MemoryTokenStore(token)
        started = time.monotonic()
        # (0.6 s tokens need refreshes closer than the default spacing)
        async with NetrexClient.from_app(
            app, store, hooks=[events.append], min_refresh_interval=0.1
        ) as client:
            calls = 0

            async def worker():
                nonlocal calls
                while time.monotonic() - started < lifetime * 5:
                    await client.graphql("{cameraList{name}}")
                    calls += 1

            await asyncio.gather(*(worker() for _ in range(20)))
        assert fake.counters.unauthorized == 0
        refreshes = fake.counters.token_requests["refresh_token"]
        # proactive refresh at half-life: about two per lifetime, never one per call
        assert 5 <= refreshes <= 12
        assert refreshes == sum(isinstance(e, TokenRefreshed) for e in events)
        assert calls > 100


async def test_ten_thousand_calls_across_an_expiry_one_token_request():
    async with FakeNetrex(expires_in=3600) as fake:
        app = app_for(fake)
        token = fake.issue_token("read", expires_in=0.3)
        await asyncio.sleep(0.3)  # now expired at the provider too
        async with (
            OAuth2Client(app) as oauth,
            TokenManager(oauth, MemoryTokenStore(token), background=False) as manager,
            NetrexClient(manager, provider=fake.provider, limit=100) as client,
        ):
            results = await asyncio.gather(
                *(client.graphql("{cameraList{name}}") for _ in range(10_000)),
                return_exceptions=True,
            )
        assert [r for r in results if isinstance(r, BaseException)] == []
        assert fake.counters.token_requests["refresh_token"] == 1
        assert fake.counters.unauthorized == 0


async def test_revoked_grant_raises_reauthorization_and_alerts(caplog):
    caplog.set_level(logging.DEBUG, logger="netrex_async")
    async with FakeNetrex() as fake:
        app = app_for(fake)
        token = fake.issue_token("read")
        events = []
        async with NetrexClient.from_app(
            app, MemoryTokenStore(token), hooks=[events.append]
        ) as client:
            await client.graphql("{cameraList{name}}")
            fake.revoke_grant(token)  # the user removed the app in the web UI
            with pytest.raises(ReauthorizationRequired):
                await client.graphql("{cameraList{name}}")
            assert client.auth.stats.reauthorization_required  # type: ignore[attr-defined]
        assert isinstance(events[-1], ReauthorizationNeeded)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert any(getattr(r, "event", None) == "reauthorization_required" for r in errors)


async def test_proactive_failure_then_recovery_events():
    async with FakeNetrex() as fake:
        app = app_for(fake)
        token = fake.issue_token("read", expires_in=1.0)
        fake.inject("token", Fault.status(400, body={"error": "system error"}))
        events = []
        async with (
            OAuth2Client(app) as oauth,
            # (a one-second token: retries of a failed refresh closer than the default)
            TokenManager(
                oauth,
                MemoryTokenStore(token),
                hooks=[events.append],
                jitter=0,
                min_refresh_interval=0.1,
            ) as m,
        ):
            assert await m.token() == token.access_token
            await asyncio.sleep(0.9)
            assert await m.token() != token.access_token
        kinds = [type(e) for e in events]
        assert kinds[0] is RefreshFailed
        assert events[0].will_retry
        assert TokenRefreshed in kinds
        assert m.stats.failures == 1


async def test_adoption_between_two_managers_sharing_a_store():
    async with FakeNetrex() as fake:
        app = app_for(fake)
        store = MemoryTokenStore(fake.issue_token("read", expires_in=1.0))
        a_events, b_events = [], []
        async with (
            OAuth2Client(app) as oauth,
            TokenManager(oauth, store, hooks=[a_events.append], jitter=0) as a,
            TokenManager(oauth, store, hooks=[b_events.append], jitter=0, background=False) as b,
        ):
            assert await a.token() == await b.token()
            await asyncio.sleep(0.9)  # a refreshes in the background at half-life
            assert await b.token() == await a.token()
        assert fake.counters.token_requests["refresh_token"] >= 1
        assert any(isinstance(e, TokenAdopted) for e in b_events)
        assert b.stats.adoptions >= 1
        assert b.stats.refreshes == 0


async def test_trace_config_never_sees_the_token_endpoint():
    seen = []

    async def on_start(session, ctx, params):
        seen.append(str(params.url))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    async with FakeNetrex() as fake:
        app = app_for(fake)
        token = fake.issue_token("read", expires_in=0.2)
        await asyncio.sleep(0.25)
        async with (
            OAuth2Client(app) as oauth,
            TokenManager(oauth, MemoryTokenStore(token)) as manager,
        ):
            client = NetrexClient(manager, provider=fake.provider)
            async with aiohttp.ClientSession(
                middlewares=(client.middleware,), trace_configs=[trace]
            ) as session:
                async with NetrexClient(manager, provider=fake.provider, session=session) as c:
                    await c.graphql("{cameraList{name}}")
            await client.aclose()
        assert fake.counters.token_requests["refresh_token"] == 1
    assert seen == [str(fake.provider.graphql_url)]
    assert all(fake.client_secret not in url for url in seen)
