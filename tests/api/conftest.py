"""Fixtures of the API path tests: no back-off, a user token the leak scanner knows."""

from __future__ import annotations

import pytest
from hardening._helpers import long_secret
from hardening.conftest import _no_backoff  # noqa: F401  (autouse: retries without sleeping)


@pytest.fixture(name="token")
def _token(secret_registry) -> str:
    """A user token: every exception and log line of the test is scanned for it."""
    token = long_secret("user-token")
    secret_registry.add(token)
    return token
