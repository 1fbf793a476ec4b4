"""The authorization endpoint: validation, the simulated consent, PKCE, redirects."""

from __future__ import annotations

import aiohttp
import pytest
from yarl import URL

from netrex_async.testing import FakeNetrex

from ._helpers import auth_url

pytestmark = pytest.mark.asyncio


async def _open(session: aiohttp.ClientSession, url: URL, method: str = "GET") -> tuple[int, str]:
    async with session.request(method, url, allow_redirects=False) as r:
        return r.status, r.headers.get("Location") or await r.text()


async def test_approval_redirects_with_code_and_unchanged_state(
    fake: FakeNetrex, session: aiohttp.ClientSession
) -> None:
    status, location = await _open(session, auth_url(fake, state="a b/c?=&"))
    assert status == 302
    url = URL(location)
    assert str(url.with_query(None)) == fake.redirect_uri
    assert url.query["state"] == "a b/c?=&"
    assert len(url.query["code"]) >= 20
    assert fake.counters.auth_requests == 1


async def test_state_is_omitted_when_not_sent(
    fake: FakeNetrex, session: aiohttp.ClientSession
) -> None:
    _, location = await _open(session, auth_url(fake, state=None))
    assert set(URL(location).query) == {"code"}


@pytest.mark.parametrize("path_suffix", ["", "/"])
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_trailing_slash_and_post_are_accepted(
    fake: FakeNetrex, session: aiohttp.ClientSession, path_suffix: str, method: str
) -> None:
    url = auth_url(fake)
    url = url.with_path(url.path + path_suffix).with_query(url.query)
    status, location = await _open(session, url, method)
    assert status == 302
    assert "code" in URL(location).query


async def test_post_with_form_body(fake: FakeNetrex, session: aiohttp.ClientSession) -> None:
    form = dict(auth_url(fake).query)
    async with session.post(fake.provider.auth_url, data=form, allow_redirects=False) as r:
        assert r.status == 302
        assert URL(r.headers["Location"]).query["state"] == "st4te"


async def test_documented_typo_redirect_url_is_accepted(
    fake: FakeNetrex, session: aiohttp.ClientSession
) -> None:
    url = auth_url(fake, redirect_uri=None, redirect_url=fake.redirect_uri)
    status, location = await _open(session, url)
    assert status == 302
    assert "code" in URL(location).query


async def test_existing_query_of_the_redirect_uri_is_kept(
    fake: FakeNetrex, session: aiohttp.ClientSession
) -> None:
    fake.add_redirect_uri("http://127.0.0.1:9/cb?app=1")
    _, location = await _open(session, auth_url(fake, redirect_uri="http://127.0.0.1:9/cb?app=1"))
    query = URL(location).query
    assert query["app"] == "1"
    assert "code" in query


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"client_id": "someone-else"}, "unknown client_id"),
        ({"client_id": None}, "client_id is missing"),
        ({"redirect_uri": "http://127.0.0.1:8765/other"}, "not registered"),
        ({"redirect_uri": "http://127.0.0.1:8765/callback/"}, "not registered"),
        ({"redirect_uri": None}, "redirect_uri is missing"),
    ],
)
async def test_bad_client_or_redirect_uri_gets_an_error_page_not_a_redirect(
    fake: FakeNetrex, session: aiohttp.ClientSession, params: dict[str, str | None], message: str
) -> None:
    async with session.get(auth_url(fake, **params), allow_redirects=False) as r:
        assert r.status == 400
        assert "Location" not in r.headers
        assert r.content_type == "text/html"
        assert message in await r.text()


async def test_several_redirect_uris_can_be_registered(session: aiohttp.ClientSession) -> None:
    extra = "http://localhost:7000/done"
    async with FakeNetrex(extra_redirect_uris=[extra]) as fake:
        assert fake.redirect_uris == (fake.redirect_uri, extra)
        status, location = await _open(session, auth_url(fake, redirect_uri=extra))
        assert status == 302
        assert location.startswith(extra + "?code=")


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": None}, "unsupported_response_type"),
        ({"scope": "read,fly"}, "invalid_scope"),
        ({"scope": ""}, "invalid_scope"),
        ({"code_challenge": "x" * 43, "code_challenge_method": "S512"}, "invalid_request"),
    ],
)
async def test_bad_request_redirects_with_an_error(
    fake: FakeNetrex, session: aiohttp.ClientSession, params: dict[str, str | None], error: str
) -> None:
    status, location = await _open(session, auth_url(fake, **params))
    assert status == 302
    query = URL(location).query
    assert query["error"] == error
    assert query["state"] == "st4te"
    assert "code" not in query


async def test_denied_consent(fake: FakeNetrex, session: aiohttp.ClientSession) -> None:
    fake.consent = "deny"
    _, location = await _open(session, auth_url(fake))
    assert dict(URL(location).query) == {"error": "access_denied", "state": "st4te"}


async def test_require_pkce(fake: FakeNetrex, session: aiohttp.ClientSession) -> None:
    fake.require_pkce = True
    _, location = await _open(session, auth_url(fake))
    assert URL(location).query["error"] == "invalid_request"
    challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    _, location = await _open(
        session, auth_url(fake, code_challenge=challenge, code_challenge_method="S256")
    )
    assert "code" in URL(location).query


async def test_scopes_are_comma_separated_and_recorded_in_the_grant(
    fake: FakeNetrex, session: aiohttp.ClientSession
) -> None:
    callback = await fake.authorize(auth_url(fake, scope="read,events,liveview_ptz"))
    code = URL(callback).query["code"]
    async with session.post(
        fake.provider.token_url.with_query(
            client_id=fake.client_id,
            client_secret=fake.client_secret,
            grant_type="auth_code",
            code=code,
            redirect_uri=fake.redirect_uri,
        )
    ) as r:
        assert r.status == 200
    assert fake.grants[-1].scopes == ("read", "events", "liveview_ptz")


async def test_authorize_helper(fake: FakeNetrex) -> None:
    callback = await fake.authorize(auth_url(fake))
    assert URL(callback).query["state"] == "st4te"
    fake.consent = "deny"
    assert URL(await fake.authorize(auth_url(fake))).query["error"] == "access_denied"
    with pytest.raises(ValueError, match="answered 400: .*unknown client_id"):
        await fake.authorize(auth_url(fake, client_id="nobody"))
    with pytest.raises(ValueError, match="does not point at this fake"):
        await fake.authorize("http://127.0.0.1:1/oauth2/auth")
    assert fake.counters.auth_requests == 3
