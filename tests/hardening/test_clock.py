"""The local wall clock jumps (NTP, a suspended VM, a wrong date fixed by hand).

The manager keeps monotonic deadlines for the token it holds; only the epoch times in a
stored token are wall-clock times. A forward jump may make a stored token look expired
(at most one extra refresh); a backward jump may make an expired one look valid (one 401,
one refresh). Neither may cause a failure or a loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import netrex_async._oauth
from netrex_async import NetrexClient, OAuth2App, OAuth2Client, TokenManager
from netrex_async._stores._file import FileTokenStore
from netrex_async.testing import FakeNetrex

from ._helpers import app_for

QUERY = "{cameraList{name}}"
HOUR = 3600.0


class Wall:
    """This process's wall clock, which a test can move."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture(name="wall")
def _wall(monkeypatch: pytest.MonkeyPatch) -> Wall:
    wall = Wall()
    # The OAuth2 client stamps tokens with the wall clock when an answer arrives.
    monkeypatch.setattr(netrex_async._oauth, "time", SimpleNamespace(time=wall))
    return wall


@pytest.mark.parametrize("lifetime", [0.6])
async def test_collector_survives_clock_jumps(wall, tmp_path: Path, caplog, lifetime):
    async with FakeNetrex(expires_in=lifetime) as fake:
        token = fake.issue_token()
        store = FileTokenStore(tmp_path / "token.json")
        await store.save(token)
        async with OAuth2Client(app_for(fake)) as oauth:
            # (0.6 s tokens need refreshes closer than the default spacing of 1 s)
            manager = TokenManager(oauth, store, clock=wall, min_refresh_interval=0.1)
            async with manager, NetrexClient(manager, provider=fake.provider) as client:
                results = 0
                jumps = [(0.5, +HOUR), (1.0, -HOUR), (1.5, -HOUR)]  # +1 h, back, -1 h
                started = time.monotonic()
                with caplog.at_level(logging.WARNING, logger="netrex_async"):
                    async for data in client.watch(QUERY, every=0.01):
                        assert data["cameraList"]
                        results += 1
                        elapsed = time.monotonic() - started
                        while jumps and elapsed >= jumps[0][0]:
                            wall.offset += jumps.pop(0)[1]
                        if elapsed >= 2.0:
                            break
                elapsed = time.monotonic() - started
    assert results > 50
    # No failure, not even one that was retried.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert fake.counters.unauthorized == 0
    # A refresh every half lifetime (the margin, minus jitter), one extra per jump at most.
    assert fake.counters.refreshes <= elapsed / (lifetime / 2 * 0.85) + 1 + 3
    assert manager.stats.failures == 0


async def test_forward_jump_with_a_stored_token_costs_one_refresh(fake, app, wall, tmp_path):
    token = fake.issue_token(expires_in=HOUR)
    store = FileTokenStore(tmp_path / "token.json")
    await store.save(token)
    wall.offset = HOUR + 60  # the stored token now looks expired
    async with (
        OAuth2Client(app) as oauth,
        TokenManager(oauth, store, clock=wall, background=False) as manager,
        NetrexClient(manager, provider=fake.provider) as client,
    ):
        for _ in range(20):
            assert (await client.graphql(QUERY))["cameraList"]
    assert fake.counters.refreshes == 1
    assert fake.counters.unauthorized == 0


async def test_backward_jump_does_not_use_an_expired_token_past_a_401(fake, app, wall, tmp_path):
    token = fake.issue_token(expires_in=HOUR)
    store = FileTokenStore(tmp_path / "token.json")
    await store.save(token)
    fake.expire_token(token)  # really expired ...
    wall.offset = -HOUR  # ... but by the local clock it has two hours left
    async with (
        OAuth2Client(app) as oauth,
        TokenManager(oauth, store, clock=wall, background=False) as manager,
        NetrexClient(manager, provider=fake.provider) as client,
    ):
        for _ in range(20):
            assert (await client.graphql(QUERY))["cameraList"]
        assert manager.stats.invalidations == 1
    assert fake.counters.unauthorized == 1
    assert fake.counters.refreshes == 1


async def test_held_token_ignores_wall_clock_jumps(fake: FakeNetrex, wall, tmp_path):
    # Deadlines of the held token are monotonic: jumps in either direction change
    # nothing until the token really needs refreshing.
    app: OAuth2App = app_for(fake)
    store = FileTokenStore(tmp_path / "token.json")
    await store.save(fake.issue_token(expires_in=HOUR))
    async with OAuth2Client(app) as oauth:
        manager = TokenManager(oauth, store, clock=wall, background=False)
        first = await manager.token()
        for offset in (+HOUR * 24, -HOUR * 24, +HOUR, -HOUR, 0.0):
            wall.offset = offset
            assert await manager.token() == first
            await asyncio.sleep(0)
        await manager.aclose()
    assert fake.counters.requests["token"] == 0
