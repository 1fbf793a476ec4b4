"""Fixtures of the unit tests: apps, secrets that look like secrets, no back-off."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from netrex_async._oauth_protocol import OAuth2App
from netrex_async._provider import Provider
from netrex_async._retry import set_testing

BASE_URL = "https://netrex.test"
REDIRECT_URI = "http://127.0.0.1:8765/callback"
CLIENT_ID = "client-id-42"
# Secrets carry characters that URLs and form bodies encode, so that a leak checker
# looking only for the raw text would miss an encoded copy.
CLIENT_SECRET = "cs-Secr3t+/=&x y-7f3a9c"
ACCESS_TOKEN = "at-Acc3ss+/=-0b1c2d3e4f"
REFRESH_TOKEN = "rt-R3fresh+/=-5a6b7c8d9e"
NEW_ACCESS_TOKEN = "at-N3wAccess-1a2b3c4d5e"
NEW_REFRESH_TOKEN = "rt-N3wRefresh-6f7a8b9c0d"


@pytest.fixture(name="no_backoff")
def _no_backoff() -> Iterator[None]:
    """Retries without sleeping; restores the previous setting afterwards."""
    old = set_testing(True)
    try:
        yield
    finally:
        set_testing(old)


@pytest.fixture(name="provider")
def _provider() -> Provider:
    return Provider(BASE_URL)


@pytest.fixture(name="app")
def _app(provider: Provider) -> OAuth2App:
    return OAuth2App(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uri=REDIRECT_URI,
        provider=provider,
    )


@pytest.fixture(name="temp_app")
def _temp_app(provider: Provider) -> OAuth2App:
    """An app without a client secret: its grants are temporary."""
    return OAuth2App(client_id=CLIENT_ID, redirect_uri=REDIRECT_URI, provider=provider)
