"""Token sources: the protocol, and a static user token."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import attrs

from . import _log
from ._errors import ReauthorizationRequired
from ._redact import fingerprint

__all__ = ["StaticToken", "TokenSource"]


@runtime_checkable
class TokenSource(Protocol):
    """Anything that hands out bearer tokens for the API.

    :class:`NetrexClient` asks ``await token()`` before each request and, when the API
    answers 401, reports the token it sent with ``await invalidate(token)``.
    """

    async def token(self) -> str:
        """A bearer token that is valid now."""
        ...

    async def invalidate(self, access_token: str) -> None:
        """Report that the API rejected ``access_token``; replace it if it is current."""
        ...


@attrs.frozen(repr=False)
class StaticToken:
    """A user token created in the web UI (``</> API``): no expiry known, no refresh.

    The provider recommends this mode "for most API use cases". When the API rejects
    the token (401), :meth:`invalidate` raises :class:`ReauthorizationRequired`: only a
    person can create a new one.
    """

    _token: str = attrs.field(alias="token")

    @_token.validator
    def _check(self, attribute: attrs.Attribute[str], value: str) -> None:
        if not isinstance(value, str) or not value.strip():
            raise ValueError("a user token must be a non-empty string")
        # Anywhere, not only at the ends: a token is one header value, and a space, a tab
        # or a control character inside it is a paste gone wrong (or a header injection).
        if any(c.isspace() or not c.isprintable() for c in value):
            raise ValueError("a user token must not contain whitespace or control characters")

    def __repr__(self) -> str:
        return f"StaticToken(fingerprint={fingerprint(self._token)!r})"

    async def token(self) -> str:
        """The user token."""
        return self._token

    async def invalidate(self, access_token: str) -> None:
        """The API rejected the user token.

        Raises:
            ReauthorizationRequired: Always, when ``access_token`` is this token.
        """
        if access_token == self._token:
            _log.manager.error(
                "the API rejected the user token (HTTP 401)",
                extra={"event": "reauthorization_required", "grant": fingerprint(self._token)},
            )
            raise ReauthorizationRequired(
                "the API rejected the user token (HTTP 401): it was deleted or has expired; "
                "create a new one in the web UI (</> API)"
            )
