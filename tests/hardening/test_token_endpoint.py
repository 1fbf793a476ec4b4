"""The token endpoint misbehaves: every answer has a defined outcome, retries are bounded,
and the stored token is never lost or replaced by nonsense."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import attrs
import pytest

from netrex_async import (
    OAuth2App,
    OAuth2Client,
    ReauthorizationRequired,
    RetryPolicy,
    Token,
    TokenEndpointError,
    TokenManager,
    TransportError,
    set_testing,
)
from netrex_async._oauth_protocol import MAX_EXPIRES_IN
from netrex_async._stores._file import FileTokenStore
from netrex_async.testing import FakeNetrex, Fault

from ._helpers import Recorder, TcpProxy, app_for, expired_token


@attrs.define
class Setup:
    """An expired grant in a token file, and a manager that must refresh it."""

    fake: FakeNetrex
    token: Token
    store: FileTokenStore
    oauth: OAuth2Client
    manager: TokenManager

    async def stored(self) -> Token | None:
        return await self.store.load()

    async def assert_nothing_lost(self) -> None:
        """The file still holds the old token, and the grant still works."""
        assert await self.stored() == self.token
        self.fake.clear_faults()
        before = self.fake.counters.refreshes
        fresh = await self.manager.token()
        assert self.fake.is_valid(fresh)
        assert self.fake.counters.refreshes == before + 1
        await self.manager.settle()  # callers get the new token before its save ends
        assert (await self.stored()).access_token == fresh


async def _setup(
    fake: FakeNetrex, app: OAuth2App, path: Path, **oauth_options: object
) -> AsyncIterator[Setup]:
    token = expired_token(fake)
    store = FileTokenStore(path)
    await store.save(token)
    async with OAuth2Client(app, **oauth_options) as oauth:  # type: ignore[arg-type]
        # (a tiny spacing: these tests try again at once after a failed refresh)
        manager = TokenManager(oauth, store, background=False, min_refresh_interval=1e-6)
        try:
            yield Setup(fake, token, store, oauth, manager)
        finally:
            await manager.aclose()


@pytest.fixture(name="s")
async def _s(fake: FakeNetrex, app: OAuth2App, tmp_path: Path) -> AsyncIterator[Setup]:
    async for s in _setup(fake, app, tmp_path / "token.json"):
        yield s


# -- malformed answers ------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind", ["html", "truncated_json", "invalid_json", "json_array", "null", "empty"]
)
async def test_malformed_answer_is_an_error_and_nothing_is_lost(s, secret_registry, kind):
    s.fake.inject("token", Fault.malformed(kind))
    with pytest.raises(TokenEndpointError) as e:
        await s.manager.token()
    assert s.fake.counters.requests["token"] == 1  # not transient: no retry
    secret_registry.check(e)
    await s.assert_nothing_lost()


MALFORMED_BODIES = {
    "missing access_token": b'{"expires_in": 3600, "refresh_token": "rt-never-used-xxxxxxxx"}',
    "empty access_token": b'{"access_token": "", "expires_in": 3600}',
    "blank access_token": b'{"access_token": "   ", "expires_in": 3600}',
    "access_token not a string": b'{"access_token": 1234567890, "expires_in": 3600}',
    "non-bearer token_type": b'{"access_token": "at-made-up-xxxxxxxx", "token_type": "mac"}',
    "token_type not a string": b'{"access_token": "at-made-up-xxxxxxxx", "token_type": 7}',
    "negative expires_in": b'{"access_token": "at-made-up-xxxxxxxx", "expires_in": -5}',
    "zero expires_in": b'{"access_token": "at-made-up-xxxxxxxx", "expires_in": 0}',
    "text expires_in": b'{"access_token": "at-made-up-xxxxxxxx", "expires_in": "soon"}',
    "boolean expires_in": b'{"access_token": "at-made-up-xxxxxxxx", "expires_in": true}',
    "NaN expires_in": b'{"access_token": "at-made-up-xxxxxxxx", "expires_in": NaN}',
    "object expires_in": b'{"access_token": "at-made-up-xxxxxxxx", "expires_in": {}}',
    "refresh_token not a string": b'{"access_token": "at-made-up-xxxxxxxx", "refresh_token": 5}',
    "error with status 200": b'{"error": "Something went wrong"}',
}


@pytest.mark.parametrize("body", MALFORMED_BODIES.values(), ids=MALFORMED_BODIES.keys())
async def test_unusable_token_answer_is_an_error_and_nothing_is_lost(s, secret_registry, body):
    secret_registry.add("at-made-up-xxxxxxxx", "rt-never-used-xxxxxxxx")
    s.fake.inject("token", Fault.status(200, body=body, content_type="application/json"))
    with pytest.raises(TokenEndpointError) as e:
        await s.manager.token()
    secret_registry.check(e)
    await s.assert_nothing_lost()


@pytest.mark.parametrize(
    ("expires_in", "lifetime"),
    [
        (b"1e400", MAX_EXPIRES_IN),
        (b"100000000000000000000000000000", MAX_EXPIRES_IN),
        (b'"3600"', 3600.0),
        (b"null", None),
    ],
    ids=["infinite", "absurd", "numeric text", "missing"],
)
async def test_odd_but_usable_expires_in_has_a_defined_lifetime(s, expires_in, lifetime):
    body = b'{"access_token": "at-odd-lifetime-xxxxxxxx", "expires_in": %s}' % expires_in
    s.fake.inject("token", Fault.status(200, body=body, content_type="application/json"))
    token = await s.oauth.refresh(s.token)
    assert token.access_token == "at-odd-lifetime-xxxxxxxx"
    assert token.lifetime == lifetime
    # A refresh answer without a refresh token keeps the old one: the grant is not lost.
    assert token.refresh_token == s.token.refresh_token


async def test_error_answer_echoing_secrets_is_scrubbed(s, secret_registry):
    # A server that quotes the request back: neither the refresh token nor the client
    # secret may reach the exception (the registry knows both from the fake's log).
    s.fake.inject(
        "token",
        Fault.status(
            400,
            body={
                "error": f"refresh_token {s.token.refresh_token} is invalid",
                "error_description": f"client_secret={s.fake.client_secret}",
            },
        ),
    )
    with pytest.raises(ReauthorizationRequired) as e:
        await s.manager.token()
    secret_registry.check(e)
    assert await s.stored() == s.token


# -- transient faults -------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_storm_is_bounded_then_a_clear_error(s, secret_registry, status):
    s.fake.inject("token", Fault.status(status), times=None)
    with pytest.raises(TokenEndpointError, match=f"HTTP {status}") as e:
        await s.manager.token()
    assert s.fake.counters.requests["token"] == s.oauth.retry.attempts
    secret_registry.check(e)
    await s.assert_nothing_lost()


async def test_429_retry_after_is_honoured(s):
    old = set_testing(False)  # really wait, to see the wait
    try:
        s.fake.inject("token", Fault.rate_limited(retry_after=0.3))
        started = time.monotonic()
        fresh = await s.manager.token()
        waited = time.monotonic() - started
    finally:
        set_testing(old)
    assert waited >= 0.3
    assert s.fake.counters.requests["token"] == 2
    assert s.fake.is_valid(fresh)


async def test_429_retry_after_too_long_is_not_waited_for(s, secret_registry):
    old = set_testing(False)
    try:
        s.fake.inject("token", Fault.rate_limited(retry_after=3600))
        started = time.monotonic()
        with pytest.raises(TokenEndpointError, match="429") as e:
            await s.manager.token()
        assert time.monotonic() - started < 5
    finally:
        set_testing(old)
    assert s.fake.counters.requests["token"] == 1
    secret_registry.check(e)
    await s.assert_nothing_lost()


async def test_429_storm_is_bounded(s):
    s.fake.inject("token", Fault.rate_limited(retry_after=0), times=None)
    with pytest.raises(TokenEndpointError, match="429"):
        await s.manager.token()
    assert s.fake.counters.requests["token"] == s.oauth.retry.attempts
    await s.assert_nothing_lost()


async def test_hung_token_endpoint_times_out(fake, app, tmp_path, secret_registry):
    timeout = aiohttp.ClientTimeout(total=0.2)
    async for s in _setup(
        fake, app, tmp_path / "t.json", timeout=timeout, retry=RetryPolicy(attempts=2)
    ):
        # Longer than the test: the fake drops these answers when it closes.
        fake.inject("token", Fault.delay(60), times=2)
        started = time.monotonic()
        with pytest.raises(TransportError, match="/oauth2/token") as e:
            await s.manager.token()
        assert time.monotonic() - started < 3
        assert fake.counters.requests["token"] == 2
        secret_registry.check(e)
        assert "?" not in str(e.value)  # no query string, so no secret
        await s.assert_nothing_lost()


async def test_dropped_connections_are_bounded_then_a_transport_error(s, secret_registry):
    s.fake.inject("token", Fault.drop(), times=None)
    with pytest.raises(TransportError) as e:
        await s.manager.token()
    assert s.fake.counters.requests["token"] == s.oauth.retry.attempts
    secret_registry.check(e)
    await s.assert_nothing_lost()


async def test_one_dropped_connection_is_retried(s):
    s.fake.inject("token", Fault.drop())
    fresh = await s.manager.token()
    assert s.fake.is_valid(fresh)
    assert s.fake.counters.requests["token"] == 2


async def test_lost_refresh_answer_ends_in_reauthorization_without_a_loop(
    fake, tmp_path, secret_registry
):
    # The refresh reaches the provider, which rotates the refresh token, but its answer
    # is lost on the way back. The retry presents the old refresh token: reuse, so the
    # provider revokes the grant. The outcome must be one clean ReauthorizationRequired.
    async with TcpProxy("127.0.0.1", int(fake.base_url.rsplit(":", 1)[1])) as proxy:
        app = app_for(fake, provider=type(fake.provider)(proxy.url))
        async for s in _setup(fake, app, tmp_path / "t.json"):
            proxy.lose_answers = 1
            with pytest.raises(ReauthorizationRequired) as e:
                await s.manager.token()
            assert proxy.lost == 1
            assert fake.counters.refreshes == 2  # the lost one, and the refused retry
            assert fake.counters.reuse_detected == 1
            for _ in range(3):  # no loop: a dead grant sends no more requests
                with pytest.raises(ReauthorizationRequired):
                    await s.manager.token()
            assert fake.counters.requests["token"] == 2
            assert s.manager.stats.reauthorization_required
            assert await s.stored() == s.token
            secret_registry.check(e)


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
async def test_redirect_from_the_token_endpoint_is_not_followed(s, secret_registry, code):
    async with Recorder() as elsewhere:
        s.fake.inject("token", Fault.redirect(elsewhere.url + "/oauth2/token", code=code))
        with pytest.raises(TokenEndpointError, match="redirect") as e:
            await s.manager.token()
        assert elsewhere.requests == []
    assert s.fake.counters.requests["token"] == 1
    secret_registry.check(e)
    await s.assert_nothing_lost()


async def test_oversized_answer_is_refused(s):
    body = b'{"access_token": "at-huge-xxxxxxxx", "padding": "' + b"x" * 100_000 + b'"}'
    s.fake.inject("token", Fault.status(200, body=body, content_type="application/json"))
    with pytest.raises(TokenEndpointError, match="larger than"):
        await s.manager.token()
    await s.assert_nothing_lost()


async def test_concurrent_callers_share_one_failing_refresh(s):
    # Every caller of an expired token gets the one refresh's error; none starts its own.
    s.fake.inject("token", Fault.status(503), times=None)
    results = await asyncio.gather(*(s.manager.token() for _ in range(50)), return_exceptions=True)
    assert all(isinstance(r, TokenEndpointError) for r in results)
    assert s.fake.counters.requests["token"] == s.oauth.retry.attempts
    await s.assert_nothing_lost()
