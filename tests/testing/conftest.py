"""Fixtures for the fake provider's own tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from netrex_async.testing import FakeNetrex

from ._helpers import ManualClock


@pytest.fixture(name="clock")
def _clock() -> ManualClock:
    return ManualClock()


@pytest_asyncio.fixture(name="fake")
async def _fake(clock: ManualClock) -> AsyncIterator[FakeNetrex]:
    """A fake on a clock the test moves by hand."""
    async with FakeNetrex(clock=clock) as fake:
        yield fake


@pytest_asyncio.fixture(name="session")
async def _session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
