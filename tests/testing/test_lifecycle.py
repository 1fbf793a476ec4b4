"""Starting, stopping, restarting; ports and hosts; grant helpers; exported names."""

from __future__ import annotations

import gc
import socket

import aiohttp
import pytest

import netrex_async.testing
from netrex_async import Provider, Token
from netrex_async.testing import FakeNetrex

from ._helpers import ManualClock, graphql

pytestmark = pytest.mark.asyncio


async def test_exports_are_sorted_and_complete() -> None:
    exported = netrex_async.testing.__all__
    assert exported == sorted(exported)
    public = {n for n in dir(netrex_async.testing) if n.isidentifier() and n[0] != "_"}
    assert public - {"pytest_plugin"} == set(exported)
    for name in exported:
        assert getattr(netrex_async.testing, name) is not None


async def test_base_url_and_provider(session: aiohttp.ClientSession) -> None:
    fake = FakeNetrex()
    with pytest.raises(RuntimeError, match="not been started"):
        _ = fake.base_url
    assert "not started" in repr(fake)
    async with fake:
        assert fake.running
        assert fake.base_url.startswith("http://127.0.0.1:")
        assert fake.provider == Provider(fake.base_url)
        with pytest.raises(RuntimeError, match="running already"):
            await fake.start()
    assert "running=False" in repr(fake)
    await fake.aclose()  # twice is fine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_given_port() -> None:
    port = _free_port()
    async with FakeNetrex(port=port) as fake:
        assert fake.base_url == f"http://127.0.0.1:{port}"


async def test_restart_keeps_the_port_and_the_grants(session: aiohttp.ClientSession) -> None:
    fake = FakeNetrex()
    await fake.start()
    try:
        url = fake.base_url
        token = fake.issue_token()
        await fake.aclose()
        with pytest.raises(aiohttp.ClientConnectionError):
            await graphql(session, fake, token.access_token, "{me{name}}")
        await fake.start()
        assert fake.base_url == url
        assert (await graphql(session, fake, token.access_token, "{me{name}}"))[0] == 200
    finally:
        await fake.aclose()


async def test_only_loopback_hosts() -> None:
    with pytest.raises(ValueError, match="loopback"):
        FakeNetrex(host="0.0.0.0")
    with pytest.raises(ValueError, match="loopback"):
        FakeNetrex(host="example.com")
    FakeNetrex(host="localhost")


async def test_ipv6_loopback(session: aiohttp.ClientSession) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        fake = FakeNetrex(host="::1")
        await fake.start()
    except OSError:
        pytest.skip("cannot bind ::1 here")
    try:
        assert fake.base_url.startswith("http://[::1]:")
        token = fake.issue_token()
        assert (await graphql(session, fake, token.access_token, "{me{name}}"))[0] == 200
    finally:
        await fake.aclose()


async def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="accept_params_in"):
        FakeNetrex(accept_params_in="header")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="consent"):
        FakeNetrex(consent="maybe")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="invalid_token_answer"):
        FakeNetrex(invalid_token_answer="500")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="list of URIs"):
        FakeNetrex(extra_redirect_uris="http://127.0.0.1/cb")


async def test_a_fake_left_open_warns() -> None:
    fake = FakeNetrex()
    await fake.start()
    runner = fake._runner
    assert runner is not None
    with pytest.warns(ResourceWarning, match="never closed"):
        fake.__del__()
    await runner.cleanup()
    fake._runner = None
    del fake
    gc.collect()


async def test_issue_token(clock: ManualClock) -> None:
    async with FakeNetrex(clock=clock, expires_in=30) as fake:
        token = fake.issue_token(scopes="read,events")
        assert isinstance(token, Token)
        assert token.scopes == ("read", "events")
        assert token.refresh_token is not None
        assert token.lifetime == pytest.approx(30)
        temporary = fake.issue_token(with_refresh=False, expires_in=0.25)
        assert temporary.refresh_token is None
        assert temporary.lifetime == pytest.approx(0.25)
        assert fake.find_grant(temporary) is fake.grants[1]
        assert fake.grants[1].temporary
        clock.advance(0.25)
        assert not fake.is_valid(temporary)
        assert fake.is_valid(token)
        with pytest.raises(ValueError, match="unknown scope"):
            fake.issue_token(scopes=("fly",))
        fake.expires_in = None
        forever = fake.issue_token()
        assert forever.expires_at is None


async def test_grant_helpers(fake: FakeNetrex) -> None:
    a, b, c = fake.issue_token(), fake.issue_token(), fake.issue_token()
    grant_a = fake.grants[0]
    assert fake.find_grant(a) is grant_a
    assert fake.find_grant(a.access_token) is grant_a
    assert fake.find_grant(str(a.refresh_token)) is grant_a
    assert fake.find_grant(grant_a.id) is grant_a
    assert fake.find_grant("nope") is None

    fake.expire_token(a)
    assert not fake.is_valid(a)
    assert fake.is_valid(b)
    with pytest.raises(KeyError):
        fake.expire_token("nope")

    assert fake.revoke_grant(b.access_token).revoked
    assert fake.revoke_grant(fake.grants[1]) is fake.grants[1]
    with pytest.raises(KeyError):
        fake.revoke_grant("nope")
    assert fake.is_valid(c)
    fake.expire_all()
    assert not fake.is_valid(c)
    assert not fake.grants[2].revoked

    fake.revoke_all()
    assert all(g.revoked for g in fake.grants)


async def test_issue_code(fake: FakeNetrex, session: aiohttp.ClientSession) -> None:
    from ._helpers import exchange

    code = fake.issue_code(scopes="read")
    status, body = await exchange(session, fake, code)
    assert status == 200
    assert fake.find_grant(body["access_token"]) is not None
    fake.add_redirect_uri("http://127.0.0.1:1/cb")
    fake.add_redirect_uri("http://127.0.0.1:1/cb")
    assert fake.redirect_uris.count("http://127.0.0.1:1/cb") == 1
    code = fake.issue_code(redirect_uri="http://127.0.0.1:1/cb")
    assert (await exchange(session, fake, code, redirect_uri="http://127.0.0.1:1/cb"))[0] == 200
    with pytest.raises(ValueError, match="not registered"):
        fake.issue_code(redirect_uri="http://127.0.0.1:2/cb")
