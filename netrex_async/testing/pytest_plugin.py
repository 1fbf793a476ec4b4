"""Pytest fixtures for testing code that talks to Netrex, against :class:`FakeNetrex`.

Installed with netrex-async and loaded automatically (entry point ``pytest11``):

``fake_netrex``
    A started :class:`~netrex_async.testing.FakeNetrex` on a free loopback port, new for
    each test and closed after it.
``netrex_client``
    A :class:`~netrex_async.NetrexClient` for that fake, holding a grant with every right
    (``fake_netrex.grants[0]``) and refreshing it as needed, as a real application would.

Both are asyncio fixtures (pytest-asyncio) and work in ``strict`` and ``auto`` mode; mark
the tests that use them ``@pytest.mark.asyncio`` in strict mode. graphql-core (the
``testing`` extra) is imported only when a fake starts, and pytest-asyncio only when the
plugin loads: without it the fixtures fail with an explanation, and nothing else breaks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from netrex_async import NetrexClient
    from netrex_async.testing import FakeNetrex

__all__: list[str] = []

_NEEDS_ASYNCIO = (
    "the netrex_async fixtures need pytest-asyncio: pip install pytest-asyncio "
    "(or the test extra: pip install -e '.[test]' in a clone of netrex_async)"
)


async def _fake_netrex() -> AsyncIterator[FakeNetrex]:
    """A started FakeNetrex on a free loopback port, closed after the test."""
    from netrex_async.testing import FakeNetrex

    async with FakeNetrex() as fake:
        yield fake


async def _netrex_client(fake_netrex: FakeNetrex) -> AsyncIterator[NetrexClient]:
    """A NetrexClient for ``fake_netrex`` with a refreshable grant holding every right."""
    from netrex_async import MemoryTokenStore, NetrexClient, OAuth2App, Scope

    token = fake_netrex.issue_token(scopes=tuple(Scope))
    app = OAuth2App(
        client_id=fake_netrex.client_id,
        client_secret=fake_netrex.client_secret,
        redirect_uri=fake_netrex.redirect_uri,
        provider=fake_netrex.provider,
    )
    async with NetrexClient.from_app(app, MemoryTokenStore(token)) as client:
        yield client


def _async_fixture(func: Callable[..., Any], name: str) -> Any:
    try:
        import pytest_asyncio
    except ImportError:  # pragma: no cover - only without pytest-asyncio

        def missing() -> None:
            pytest.fail(_NEEDS_ASYNCIO)

        return pytest.fixture(missing, name=name)
    return pytest_asyncio.fixture(func, name=name)


fake_netrex = _async_fixture(_fake_netrex, "fake_netrex")
netrex_client = _async_fixture(_netrex_client, "netrex_client")
