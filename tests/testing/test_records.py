"""The request log, counters, and that no secret shows in any repr or log."""

from __future__ import annotations

import logging

import aiohttp
import pytest
from yarl import URL

from netrex_async.testing import FakeNetrex, Fault, RecordedRequest, SecretMapping

from ._helpers import auth_url, exchange, graphql, refresh

pytestmark = pytest.mark.asyncio


async def test_secrets_are_available_in_the_log(
    fake: FakeNetrex, session: aiohttp.ClientSession
) -> None:
    code = URL(await fake.authorize(auth_url(fake))).query["code"]
    _, body = await exchange(session, fake, code, where="body", grant_type="auth_code")
    await graphql(session, fake, body["access_token"], "{me{name}}")

    auth, token, api = fake.requests
    assert (auth.endpoint, auth.method, auth.path, auth.status) == (
        "auth",
        "GET",
        "/oauth2/auth",
        302,
    )
    assert auth.params["state"] == "st4te"
    assert token.form["client_secret"] == fake.client_secret
    assert token.params["code"] == code
    assert token.query == {}
    assert token.headers["content-type"] == "application/x-www-form-urlencoded"
    assert api.headers["Authorization"] == f"Bearer {body['access_token']}"
    assert api.bearer == body["access_token"]
    assert api.json() == {"query": "{me{name}}"}
    assert token.bearer is None
    assert fake.requests_to("token") == [token]


async def test_params_merge_form_over_query(
    fake: FakeNetrex, session: aiohttp.ClientSession
) -> None:
    async with session.post(
        fake.provider.token_url.with_query(grant_type="x", client_id="q"), data={"client_id": "f"}
    ):
        pass
    record = fake.requests[-1]
    assert dict(record.params) == {"grant_type": "x", "client_id": "f"}


async def test_reprs_hide_every_secret(
    fake: FakeNetrex, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    verifier = "v" * 43
    url = auth_url(fake, code_challenge=verifier, code_challenge_method="plain")
    code = URL(await fake.authorize(url)).query["code"]
    _, first = await exchange(session, fake, code, code_verifier=verifier)
    _, second = await refresh(session, fake, first["refresh_token"])
    await graphql(session, fake, second["access_token"], "{me{name}}")
    fake.inject("graphql", Fault.status(500))
    with pytest.raises(ValueError):
        await graphql(session, fake, second["access_token"], "{me{name}}")
    async with session.post(
        fake.provider.revoke_url.with_query(access_token=first["access_token"])
    ):
        pass
    issued = fake.issue_token()

    secrets = [
        fake.client_secret,
        code,
        verifier,
        "st4te",
        first["access_token"],
        first["refresh_token"],
        second["access_token"],
        second["refresh_token"],
        issued.access_token,
        str(issued.refresh_token),
    ]
    shown = [
        repr(fake),
        str(fake),
        repr(fake.counters),
        repr(fake.grants),
        repr(issued),
        *(repr(r) for r in fake.requests),
        *(str(r) for r in fake.requests),
        *(repr(r.params) + repr(r.headers) + str(r.query) + str(r.form) for r in fake.requests),
        caplog.text,
    ]
    for text in shown:
        for secret in secrets:
            assert secret not in text, text
    assert "client_secret': ***" in repr(fake.requests[1])
    assert "'Authorization': ***" in repr(fake.requests[3].headers)


async def test_secret_mapping() -> None:
    m = SecretMapping({"client_id": "app", "refresh_token": "rt-secret"})
    assert m["refresh_token"] == "rt-secret"
    assert "refresh_token" in m
    assert len(m) == 2
    assert m == {"client_id": "app", "refresh_token": "rt-secret"}
    assert m != {"client_id": "app"}
    assert m != 3
    assert repr(m) == "{'client_id': 'app', 'refresh_token': ***}"
    assert str(m) == repr(m)


async def test_counters_and_reset(fake: FakeNetrex, session: aiohttp.ClientSession) -> None:
    token = fake.issue_token()
    assert token.refresh_token is not None
    await refresh(session, fake, token.refresh_token)
    await graphql(session, fake, "bad", "{me{name}}")
    await graphql(session, fake, token.access_token, "{me{name}}")
    c = fake.counters
    assert (c.refreshes, c.code_exchanges, c.api_calls, c.unauthorized) == (1, 0, 2, 1)
    assert c.tokens_issued == 2
    assert c.requests == {"token": 1, "graphql": 2}
    fake.reset_stats()
    assert fake.counters.api_calls == 0
    assert not fake.requests
    assert fake.is_valid(token)  # grants survive a reset


async def test_log_limits_and_hooks(session: aiohttp.ClientSession) -> None:
    seen: list[RecordedRequest] = []
    async with FakeNetrex(log_size=2, on_request=seen.append) as fake:
        token = fake.issue_token()
        for _ in range(3):
            await graphql(session, fake, token.access_token, "{me{name}}")
        assert len(fake.requests) == 2
        assert len(seen) == 3
        fake.record_requests = False
        fake.on_request = None
        fake.requests.clear()
        await graphql(session, fake, token.access_token, "{me{name}}")
        assert not fake.requests
        assert fake.counters.api_calls == 4


async def test_secrets_lists_everything_the_fake_issued_or_received():
    import aiohttp

    from netrex_async.testing import FakeNetrex

    async with FakeNetrex() as fake:
        token = fake.issue_token("read")
        code = fake.issue_code("read")
        async with aiohttp.ClientSession() as session:
            await session.post(
                fake.base_url + "/api/graphql.php",
                json={"query": "{me{name}}"},
                headers={"Authorization": "Bearer sent-but-unknown-token"},
            )
        values = {value for _, value in fake.secrets()}
        labels = [label for label, _ in fake.secrets()]
    assert {fake.client_secret, token.access_token, token.refresh_token, code} <= values
    assert "sent-but-unknown-token" in values
    assert not any(value in label for label in labels for value in values if len(value) > 8)
