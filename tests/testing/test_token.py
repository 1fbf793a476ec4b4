"""The token endpoint: code exchange, refresh, rotation, reuse detection, errors."""

from __future__ import annotations

import base64
import hashlib

import aiohttp
import pytest
from yarl import URL

from netrex_async.testing import FakeNetrex

from ._helpers import ManualClock, auth_url, exchange, graphql, post_token, refresh

pytestmark = pytest.mark.asyncio

CAMERAS = "{cameraList{name}}"


async def _code(fake: FakeNetrex, **params: str | None) -> str:
    return URL(await fake.authorize(auth_url(fake, **params))).query["code"]


@pytest.mark.parametrize("grant_type", ["authorization_code", "auth_code"])
async def test_code_exchange_answers_like_the_provider(
    fake: FakeNetrex, session: aiohttp.ClientSession, grant_type: str
) -> None:
    status, body = await exchange(session, fake, await _code(fake), grant_type=grant_type)
    assert status == 200
    assert set(body) == {"access_token", "expires_in", "refresh_token"}
    assert body["expires_in"] == 3600
    assert isinstance(body["expires_in"], int)
    assert fake.counters.token_requests[grant_type] == 1
    assert fake.counters.code_exchanges == 1
    assert fake.counters.tokens_issued == 1
    assert fake.is_valid(body["access_token"])
    status, _ = await graphql(session, fake, body["access_token"], CAMERAS)
    assert status == 200


async def test_both_grant_type_names_are_counted_separately(
    fake: FakeNetrex, session: aiohttp.ClientSession
) -> None:
    await exchange(session, fake, await _code(fake), grant_type="auth_code")
    await exchange(session, fake, await _code(fake), grant_type="authorization_code")
    await exchange(session, fake, await _code(fake), grant_type="auth_code")
    assert fake.counters.token_requests["auth_code"] == 2
    assert fake.counters.token_requests["authorization_code"] == 1


@pytest.mark.parametrize(
    ("accept", "where", "ok"),
    [
        ("either", "query", True),
        ("either", "body", True),
        ("query", "query", True),
        ("query", "body", False),
        ("body", "body", True),
        ("body", "query", False),
    ],
)
async def test_where_parameters_are_accepted(
    fake: FakeNetrex, session: aiohttp.ClientSession, accept: str, where: str, ok: bool
) -> None:
    fake.accept_params_in = accept  # type: ignore[assignment]
    status, body = await exchange(session, fake, await _code(fake), where=where)
    if ok:
        assert status == 200, body
        assert "access_token" in body
    else:
        assert (status, body) == (
            400,
            {"error": "invalid_request", "error_description": "grant_type is missing"},
        )


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"client_secret": "wrong"}, "invalid_client"),
        ({"client_id": "someone-else"}, "invalid_client"),
        ({"client_id": None}, "invalid_request"),
        ({"grant_type": None}, "invalid_request"),
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({"code": None}, "invalid_request"),
        ({"code": "not-a-code"}, "invalid_grant"),
        ({"redirect_uri": "http://127.0.0.1:8765/other"}, "invalid_grant"),
        ({"redirect_uri": None}, "invalid_grant"),
    ],
)
async def test_code_exchange_errors(
    fake: FakeNetrex,
    session: aiohttp.ClientSession,
    params: dict[str, str | None],
    error: str,
) -> None:
    status, body = await exchange(session, fake, await _code(fake), **params)
    assert status == 400
    assert body["error"] == error
    assert "access_token" not in body
    assert fake.counters.tokens_issued == 0


async def test_errors_can_be_answered_with_200(
    fake: FakeNetrex, session: aiohttp.ClientSession
) -> None:
    fake.error_status = 200
    status, body = await exchange(session, fake, "nope")
    assert (status, body["error"]) == (200, "invalid_grant")


async def test_wrong_secret_does_not_burn_the_code(
    fake: FakeNetrex, session: aiohttp.ClientSession
) -> None:
    code = await _code(fake)
    assert (await exchange(session, fake, code, client_secret="wrong"))[0] == 400
    assert (await exchange(session, fake, code))[0] == 200


async def test_redirect_url_spelling_is_accepted_at_the_token_endpoint(
    fake: FakeNetrex, session: aiohttp.ClientSession
) -> None:
    code = await _code(fake)
    status, _ = await exchange(
        session, fake, code, redirect_uri=None, redirect_url=fake.redirect_uri
    )
    assert status == 200


async def test_codes_are_single_use_and_reuse_revokes_the_grant(
    fake: FakeNetrex, session: aiohttp.ClientSession
) -> None:
    code = await _code(fake)
    _, first = await exchange(session, fake, code)
    status, again = await exchange(session, fake, code)
    assert (status, again["error"]) == (400, "invalid_grant")
    assert not fake.is_valid(first["access_token"])
    assert fake.grants[0].revoked_reason == "code reuse"


async def test_codes_expire(
    fake: FakeNetrex, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    code = await _code(fake)
    clock.advance(60)
    status, body = await exchange(session, fake, code)
    assert (status, body) == (400, {"error": "invalid_grant", "error_description": "code expired"})
    fake.code_ttl = 5
    code = await _code(fake)
    clock.advance(4.9)
    assert (await exchange(session, fake, code))[0] == 200


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def test_pkce_s256(fake: FakeNetrex, session: aiohttp.ClientSession) -> None:
    verifier = "v" * 50
    params = {"code_challenge": _challenge(verifier), "code_challenge_method": "S256"}
    ok = await exchange(session, fake, await _code(fake, **params), code_verifier=verifier)
    assert ok[0] == 200
    missing = await exchange(session, fake, await _code(fake, **params))
    assert missing == (
        400,
        {"error": "invalid_grant", "error_description": "code_verifier is missing"},
    )
    wrong = await exchange(session, fake, await _code(fake, **params), code_verifier="w" * 50)
    assert wrong[1]["error_description"] == "code_verifier does not match"


async def test_pkce_plain(fake: FakeNetrex, session: aiohttp.ClientSession) -> None:
    code = await _code(fake, code_challenge="plain-verifier-" + "x" * 30)
    status, _ = await exchange(session, fake, code, code_verifier="plain-verifier-" + "x" * 30)
    assert status == 200


async def test_without_secret_the_grant_is_temporary(
    fake: FakeNetrex, session: aiohttp.ClientSession
) -> None:
    status, body = await exchange(session, fake, await _code(fake), client_secret=None)
    assert status == 200
    assert set(body) == {"access_token", "expires_in"}
    assert fake.grants[0].temporary
    fake.issue_refresh_token_without_secret = True
    _, body = await exchange(session, fake, await _code(fake), client_secret=None)
    assert "refresh_token" in body


async def test_fractional_and_missing_lifetimes(
    fake: FakeNetrex, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    fake.expires_in = 0.5
    _, body = await exchange(session, fake, await _code(fake))
    assert body["expires_in"] == 0.5
    clock.advance(0.49)
    assert fake.is_valid(body["access_token"])
    clock.advance(0.01)
    assert not fake.is_valid(body["access_token"])

    fake.expires_in = None
    _, body = await exchange(session, fake, await _code(fake))
    assert "expires_in" not in body
    clock.advance(10**9)
    assert fake.is_valid(body["access_token"])


async def test_extra_fields(fake: FakeNetrex, session: aiohttp.ClientSession) -> None:
    fake.token_response_extra = {"token_type": "Bearer", "scope": "read,write"}
    _, body = await exchange(session, fake, await _code(fake))
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "read,write"


async def test_refresh_rotates_and_old_access_tokens_live_on(
    fake: FakeNetrex, session: aiohttp.ClientSession
) -> None:
    _, first = await exchange(session, fake, await _code(fake))
    status, second = await refresh(session, fake, first["refresh_token"])
    assert status == 200
    assert set(second) == {"access_token", "expires_in", "refresh_token"}
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert fake.is_valid(first["access_token"])
    assert fake.is_valid(second["access_token"])
    assert fake.counters.refreshes == 1
    grant = fake.grants[0]
    assert grant.refreshes == 1
    assert grant.refresh_token == second["refresh_token"]
    assert grant.access_token == second["access_token"]
    status, third = await refresh(session, fake, second["refresh_token"], where="body")
    assert status == 200


async def test_reuse_of_a_rotated_refresh_token_revokes_the_grant(
    fake: FakeNetrex, session: aiohttp.ClientSession
) -> None:
    _, first = await exchange(session, fake, await _code(fake))
    _, second = await refresh(session, fake, first["refresh_token"])
    status, body = await refresh(session, fake, first["refresh_token"])
    assert (status, body["error"]) == (400, "invalid_grant")
    assert fake.counters.reuse_detected == 1
    for token in (first["access_token"], second["access_token"]):
        assert not fake.is_valid(token)
        status, _ = await graphql(session, fake, token, CAMERAS)
        assert status == 401
    status, body = await refresh(session, fake, second["refresh_token"])
    assert (status, body["error"]) == (400, "invalid_grant")
    assert fake.grants[0].revoked_reason == "refresh token reuse"


async def test_without_reuse_detection_an_old_refresh_token_is_just_refused(
    fake: FakeNetrex, session: aiohttp.ClientSession
) -> None:
    fake.reuse_detection = False
    _, first = await exchange(session, fake, await _code(fake))
    _, second = await refresh(session, fake, first["refresh_token"])
    status, _ = await refresh(session, fake, first["refresh_token"])
    assert status == 400
    assert fake.is_valid(second["access_token"])
    assert (await refresh(session, fake, second["refresh_token"]))[0] == 200


async def test_without_rotation_the_refresh_token_stays(
    fake: FakeNetrex, session: aiohttp.ClientSession
) -> None:
    fake.rotate_refresh_tokens = False
    _, first = await exchange(session, fake, await _code(fake))
    _, second = await refresh(session, fake, first["refresh_token"])
    assert second["refresh_token"] == first["refresh_token"]
    fake.echo_refresh_token = False
    status, third = await refresh(session, fake, first["refresh_token"])
    assert status == 200
    assert "refresh_token" not in third


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"client_secret": None}, "invalid_client"),
        ({"client_secret": "wrong"}, "invalid_client"),
        ({"refresh_token": None}, "invalid_request"),
        ({"refresh_token": "unknown"}, "invalid_grant"),
    ],
)
async def test_refresh_errors(
    fake: FakeNetrex, session: aiohttp.ClientSession, params: dict[str, str | None], error: str
) -> None:
    token = fake.issue_token()
    assert token.refresh_token is not None
    status, body = await refresh(session, fake, token.refresh_token, **params)
    assert (status, body["error"]) == (400, error)


async def test_refresh_of_a_revoked_grant(fake: FakeNetrex, session: aiohttp.ClientSession) -> None:
    token = fake.issue_token()
    assert token.refresh_token is not None
    fake.revoke_grant(token)
    status, body = await refresh(session, fake, token.refresh_token)
    assert (status, body["error"]) == (400, "invalid_grant")


async def test_answers_are_not_cached(fake: FakeNetrex, session: aiohttp.ClientSession) -> None:
    async with session.post(fake.provider.token_url) as r:
        assert r.headers["Cache-Control"] == "no-store"
        assert r.content_type == "application/json"
    status, _ = await post_token(session, fake)
    assert status == 400
    assert fake.counters.token_requests[""] == 2
