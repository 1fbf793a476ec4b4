"""No secret leaks: the suite-wide checker itself, and every path end to end at DEBUG.

The autouse fixture in ``tests/conftest.py`` scans every record of the ``netrex_async``
logger tree for every secret the fakes of a test issued or received; these tests drive
each path against a fake and also check the exceptions, reprs and traces they produce.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from urllib.parse import quote_plus

import aiohttp
import pytest

from netrex_async import (
    MemoryTokenStore,
    NetrexClient,
    NetrexError,
    OAuth2Client,
    Provider,
    RetryPolicy,
    Token,
    TokenManager,
    TransportError,
)
from netrex_async._stores._file import FileTokenStore
from netrex_async.testing import FakeNetrex, Fault

from ._helpers import app_for, expired_token, long_secret


def _capture_handler() -> logging.Handler:
    handlers = [h for h in logging.getLogger("netrex_async").handlers if hasattr(h, "texts")]
    assert len(handlers) == 1, "the suite-wide capture handler is not installed"
    return handlers[0]


# -- the checker ------------------------------------------------------------------------


async def test_checker_sees_a_secret_logged_at_debug(fake, secret_registry):
    token = fake.issue_token()
    handler = _capture_handler()
    assert logging.getLogger("netrex_async.anything").isEnabledFor(logging.DEBUG)
    logging.getLogger("netrex_async.manager").debug(
        "oops %s", "x", extra={"detail": {"nested": [token.refresh_token]}}
    )
    logging.getLogger("netrex_async.oauth").debug("url %s", f"?access_token={token.access_token}")
    leaks = secret_registry.find(handler.texts)  # type: ignore[attr-defined]
    handler.texts.clear()  # type: ignore[attr-defined]  # so that this test itself passes
    assert any("extra 'detail'" in leak and "refresh token" in leak for leak in leaks)
    assert any("message" in leak and "access token" in leak for leak in leaks)
    assert all(token.access_token not in leak for leak in leaks)  # reports name no secret


async def test_checker_follows_hidden_contexts_and_encodings(secret_registry):
    secret = "s3cret value/with+plus&amp"
    secret_registry.add(secret, "short")  # "short" is below the length limit: ignored
    try:
        try:
            raise ValueError(f"https://x/?t={quote_plus(secret)}")
        except ValueError:
            raise NetrexError("clean message") from None
    except NetrexError as e:
        with pytest.raises(AssertionError, match="ValueError"):
            secret_registry.check(e)
    with pytest.raises(AssertionError):
        secret_registry.check("s3cret%20value%2Fwith%2Bplus%26amp")
    secret_registry.check("a short word", Token(access_token=secret, refresh_token=secret))


def test_checker_knows_every_secret_of_a_fake(secret_registry):
    fake = FakeNetrex()
    token = fake.issue_token()
    code = fake.issue_code()
    known = set(secret_registry.known())
    assert {fake.client_secret, token.access_token, token.refresh_token, code} <= known


# -- every path, end to end -------------------------------------------------------------


@pytest.mark.parametrize("credentials_in", ["query", "body"])
@pytest.mark.parametrize("pkce", [False, True])
async def test_whole_life_of_a_grant_leaks_nothing(
    tmp_path: Path, secret_registry, credentials_in, pkce
):
    # Login, API calls, expiry, 401, refresh, failures of every kind, revocation: at
    # DEBUG, every record is scanned at teardown; every exception is scanned here.
    errors: list[BaseException] = []
    async with FakeNetrex(require_pkce=pkce, accept_params_in="either") as fake:
        app = app_for(fake, credentials_in=credentials_in, use_pkce=pkce)
        store = FileTokenStore(tmp_path / "token.json")
        async with OAuth2Client(app) as oauth:
            request = oauth.authorization_request("read,write")
            callback = await fake.authorize(request.url)
            token = await oauth.exchange(callback, request)
            if pkce:
                assert fake.requests_to("token")[-1].params["code_verifier"]
            async with TokenManager(oauth, store) as manager:
                await manager.set_token(token)
                async with NetrexClient(manager, provider=fake.provider) as client:
                    await client.graphql("{cameraList{name}}")
                    fake.expire_all()  # 401, then a refresh
                    await client.graphql("{cameraList{name}}")
                    await manager.refresh()
                    for fault in (
                        Fault.malformed("html"),
                        Fault.status(503),
                        Fault.drop(),
                        Fault.status(400, body={"error": "invalid_client"}),
                    ):
                        fake.inject("token", fault, times=None)
                        try:
                            await manager.refresh()
                        except NetrexError as e:
                            errors.append(e)
                        fake.clear_faults()
                    fake.inject("graphql", Fault.status(500, body="x"), times=None)
                    try:
                        await client.graphql("{cameraList{name}}")
                    except NetrexError as e:
                        errors.append(e)
                    fake.clear_faults()
                    await oauth.revoke(manager.current)  # type: ignore[arg-type]
                    fake.expire_all()
                    try:  # the grant is gone: 401, then invalid_grant
                        await client.graphql("{cameraList{name}}")
                    except NetrexError as e:
                        errors.append(e)
                    for obj in (client, manager, oauth, store, app, request, token):
                        secret_registry.check(obj)
        assert len(errors) == 6
        secret_registry.check(*errors)
        assert fake.counters.revocations == 1


async def test_transport_errors_from_aiohttp_leak_nothing(secret_registry):
    # aiohttp's own messages quote the request URL, query string (with its secrets) and
    # all; nothing listens on this port.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    secret = long_secret("client-secret")
    token = Token(access_token=long_secret("access"), refresh_token=long_secret("refresh"))
    secret_registry.add(secret, token)
    fake = FakeNetrex()
    app = app_for(fake, client_secret=secret, provider=Provider(f"http://127.0.0.1:{port}"))
    async with OAuth2Client(app, retry=RetryPolicy(attempts=2)) as oauth:
        with pytest.raises(TransportError) as e:
            await oauth.refresh(token)
        secret_registry.check(e)
        with pytest.raises(TransportError) as e:
            await oauth.revoke(token)
        secret_registry.check(e)


async def test_trace_configs_see_no_token_endpoint_secret(fake, app, secret_registry):
    # A caller's TraceConfig on its session sees its API calls; the token endpoint is
    # called through the OAuth2 client's own session, so its URLs never reach the trace.
    urls: list[str] = []

    async def on_start(session, ctx, params) -> None:  # type: ignore[no-untyped-def]
        urls.append(str(params.url))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    token = expired_token(fake)
    async with (
        aiohttp.ClientSession(trace_configs=[trace]) as session,
        OAuth2Client(app) as oauth,
        TokenManager(oauth, MemoryTokenStore(token), background=False) as manager,
        NetrexClient(manager, provider=fake.provider, session=session) as client,
    ):
        await client.graphql("{cameraList{name}}")
    assert fake.counters.refreshes == 1
    assert urls == [str(fake.provider.graphql_url)]
    secret_registry.check(*urls)


async def test_store_errors_leak_nothing(fake, tmp_path: Path, secret_registry):
    token = fake.issue_token()
    path = tmp_path / "token.json"
    raw = token.to_dict()
    for broken, reason in (
        (repr(raw).encode(), "not valid JSON"),  # Python, not JSON
        (str(raw).encode()[:-7], "not valid JSON"),
        (
            b'{"access_token": "' + token.access_token.encode() + b'", "issued_at": "x"}',
            "issued_at must be",
        ),
        (
            b'{"version": "' + token.refresh_token.encode() + b'", "access_token": "x"}',  # type: ignore[union-attr]
            "unsupported token format version",
        ),
    ):
        path.write_bytes(broken)
        with pytest.raises(NetrexError, match=reason) as e:
            await FileTokenStore(path).load()
        secret_registry.check(e)
