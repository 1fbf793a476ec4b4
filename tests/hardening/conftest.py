"""Fixtures of the hardening suite: no back-off, a fake provider, its app and client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from netrex_async import OAuth2App, OAuth2Client, set_testing
from netrex_async.testing import FakeNetrex

from ._helpers import app_for


@pytest.fixture(name="no_backoff", autouse=True)
def _no_backoff() -> Iterator[None]:
    """Retries happen, without sleeping; the old setting comes back afterwards."""
    old = set_testing(True)
    try:
        yield
    finally:
        set_testing(old)


@pytest.fixture(name="fake")
async def _fake() -> AsyncIterator[FakeNetrex]:
    """A fake provider that rotates refresh tokens and detects their reuse."""
    async with FakeNetrex(rotate_refresh_tokens=True, reuse_detection=True) as fake:
        yield fake


@pytest.fixture(name="app")
def _app(fake: FakeNetrex) -> OAuth2App:
    return app_for(fake)


@pytest.fixture(name="oauth")
async def _oauth(app: OAuth2App) -> AsyncIterator[OAuth2Client]:
    async with OAuth2Client(app) as oauth:
        yield oauth
