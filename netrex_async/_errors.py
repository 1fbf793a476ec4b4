"""The exception tree of netrex_async.

Every exception the library raises on purpose derives from :class:`NetrexError`::

    NetrexError
     ├── OAuthError                  the provider's OAuth2 endpoints said no
     │    ├── AuthorizationDenied    the user refused consent (error=access_denied)
     │    ├── StateMismatch          callback state missing, wrong, reused or stale
     │    ├── InvalidGrant           code or refresh token refused (invalid_grant)
     │    ├── InvalidClient          client id or secret refused (invalid_client)
     │    └── TokenEndpointError     any other error or malformed answer
     ├── ReauthorizationRequired     the grant is gone: a person must authorize again
     ├── ApiError                    the API answered a non-2xx status
     │    └── GraphQLError           the API answered GraphQL ``errors``
     ├── TransportError              network failure or timeout, after retries
     ├── TokenStoreError             a token store is unreadable, corrupt or locked
     ├── ClosedError                 the object was closed (also a RuntimeError)
     └── ExtraRequired               an optional dependency is missing (also an ImportError)

No message carries a secret: client secrets, codes, tokens, PKCE verifiers and the query
strings of the token and revoke endpoints are redacted before they reach an exception.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "ApiError",
    "AuthorizationDenied",
    "ClosedError",
    "ExtraRequired",
    "GraphQLError",
    "InvalidClient",
    "InvalidGrant",
    "NetrexError",
    "OAuthError",
    "ReauthorizationRequired",
    "StateMismatch",
    "TokenEndpointError",
    "TokenStoreError",
    "TransportError",
    "install_hint",
]


class NetrexError(Exception):
    """Root of every error netrex_async raises on purpose."""


class OAuthError(NetrexError):
    """An OAuth2 endpoint of the provider refused a request or answered nonsense.

    Attributes:
        error: The provider's ``error`` value (free text at this provider), redacted and
            shortened, or ``None`` when the answer was malformed rather than an error.
        status: The HTTP status of the answer, when there was one.
    """

    def __init__(self, message: str, *, error: str | None = None, status: int | None = None):
        super().__init__(message)
        self.error = error
        self.status = status


class AuthorizationDenied(OAuthError):
    """The user (or the provider) refused the authorization request."""


class StateMismatch(OAuthError):
    """The callback's ``state`` is missing, wrong, already used or too old.

    No token request is sent when this is raised: it is the CSRF defence.
    """


class InvalidGrant(OAuthError):
    """The authorization code or refresh token was refused (``invalid_grant``)."""


class InvalidClient(OAuthError):
    """The client id or client secret was refused (``invalid_client``)."""


class TokenEndpointError(OAuthError):
    """The token or revoke endpoint answered an error or something that is not a token."""


class ReauthorizationRequired(NetrexError):
    """The grant cannot be used any more; a person must authorize the app again.

    Raised when a temporary grant (no refresh token) expires, when a refresh token is
    refused and no other process holds a newer one, when a user token is rejected, and
    when no token is stored at all.
    """


class ApiError(NetrexError):
    """The API answered with a non-2xx status.

    Attributes:
        status: The HTTP status.
        body_excerpt: The first few hundred characters of the body, with secrets removed.
    """

    def __init__(self, message: str, *, status: int, body_excerpt: str = ""):
        super().__init__(message)
        self.status = status
        self.body_excerpt = body_excerpt


class GraphQLError(ApiError):
    """The GraphQL API answered an ``errors`` list.

    Attributes:
        errors: The ``errors`` list as the API sent it.
        data: The partial ``data`` that came with the errors, or ``None``.
    """

    def __init__(
        self,
        message: str,
        *,
        errors: Sequence[Mapping[str, Any]],
        data: Any = None,
        status: int = 200,
    ):
        super().__init__(message, status=status)
        self.errors = list(errors)
        self.data = data

    # The first error's details, for the common case of one error. ``errors`` has them all,
    # as the API sent them; these give ``None`` where the API sent nothing of the right shape.

    @property
    def path(self) -> list[str | int] | None:
        """The first error's ``path``: where in ``data`` it happened (``None``: not given)."""
        path = self._first("path")
        if isinstance(path, list) and all(isinstance(p, str | int) for p in path):
            return list(path)
        return None

    @property
    def locations(self) -> list[dict[str, int]] | None:
        """The first error's ``locations`` in the document (``line``/``column`` dicts)."""
        locations = self._first("locations")
        if isinstance(locations, list) and all(isinstance(loc, dict) for loc in locations):
            return [dict(loc) for loc in locations]
        return None

    @property
    def extensions(self) -> dict[str, Any] | None:
        """The first error's ``extensions`` (server-specific details, like a ``code``)."""
        extensions = self._first("extensions")
        return dict(extensions) if isinstance(extensions, Mapping) else None

    @property
    def codes(self) -> list[str]:
        """Every ``extensions.code`` of the errors, in order (``"UNAUTHENTICATED"``, ...)."""
        codes = []
        for error in self.errors:
            extensions = error.get("extensions")
            code = extensions.get("code") if isinstance(extensions, Mapping) else None
            if isinstance(code, str):
                codes.append(code)
        return codes

    def _first(self, key: str) -> Any:
        return self.errors[0].get(key) if self.errors else None


class TransportError(NetrexError):
    """The network failed or timed out, and retrying did not help."""


class TokenStoreError(NetrexError):
    """A token store could not be read, written or locked.

    Attributes:
        store: A description of the store (a file path, a Redis key), never a secret.
    """

    def __init__(self, message: str, *, store: str):
        super().__init__(message)
        self.store = store


class ClosedError(NetrexError, RuntimeError):
    """The client, manager, OAuth2 client or store was closed before or during the call.

    Also a :class:`RuntimeError`, which is what earlier releases raised here.
    """


class ExtraRequired(NetrexError, ImportError):
    """A feature needs an optional dependency that is not installed.

    Also an :class:`ImportError`, which is what code guarding an optional import catches,
    and a :class:`NetrexError`, like everything the library raises on purpose. The message
    names the extra to install.

    Attributes:
        extra: The extra of netrex-async that brings the dependency (``"graphql"``).
        name: The module that could not be imported (as on every ImportError).
    """

    def __init__(self, message: str, *, extra: str, name: str | None = None):
        super().__init__(message, name=name)
        self.extra = extra


def install_hint(extra: str) -> str:
    """How to install an extra of netrex-async, from an index or from a clone of it."""
    return (
        f"pip install 'netrex-async[{extra}]' "
        f"(in a clone of the repository: pip install -e '.[{extra}]')"
    )
