"""Fixtures of the GraphQL-side tests: a fake provider and clients on it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from cli.conftest import Cli

from netrex_async import MemoryTokenStore, NetrexClient, OAuth2App, Scope, Token, set_testing
from netrex_async.testing import FakeNetrex


@pytest.fixture(name="no_backoff", autouse=True)
def _no_backoff() -> Iterator[None]:
    old = set_testing(True)
    try:
        yield
    finally:
        set_testing(old)


@pytest.fixture(name="fake")
async def _fake() -> AsyncIterator[FakeNetrex]:
    async with FakeNetrex() as fake:
        yield fake


def app_for(fake: FakeNetrex) -> OAuth2App:
    """The fake's registered app, with its secret (refreshable grants)."""
    return OAuth2App(
        client_id=fake.client_id,
        client_secret=fake.client_secret,
        redirect_uri=fake.redirect_uri,
        provider=fake.provider,
    )


def expired_grant(fake: FakeNetrex) -> Token:
    """A grant whose access token expired an hour ago, at the provider and in the token."""
    fresh = fake.issue_token(("read",))
    fake.expire_token(fresh)
    now = time.time()
    return attrs.evolve(fresh, issued_at=now - 7200, expires_at=now - 3600)


@pytest.fixture(name="client")
async def _client(fake: FakeNetrex) -> AsyncIterator[NetrexClient]:
    """A client on a refreshable grant with every right, as an application holds one."""
    store = MemoryTokenStore(fake.issue_token(tuple(Scope)))
    async with NetrexClient.from_app(app_for(fake), store, background=False) as client:
        yield client


@pytest.fixture(name="cli")
def _cli(fake: FakeNetrex, tmp_path: Path, secret_registry: Any) -> Cli:
    return Cli(fake, tmp_path, secret_registry)
