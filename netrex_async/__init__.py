"""netrex_async: an asyncio client for the Netrex / Survilla Cloud GraphQL API."""

from ._errors import (
    ApiError,
    AuthorizationDenied,
    GraphQLError,
    InvalidClient,
    InvalidGrant,
    NetrexError,
    OAuthError,
    ReauthorizationRequired,
    StateMismatch,
    TokenEndpointError,
    TokenStoreError,
    TransportError,
)
from ._provider import Provider
from ._scope import Scope
from ._stores._base import TokenStore
from ._stores._memory import MemoryTokenStore
from ._token import Token

__all__ = [
    "ApiError",
    "AuthorizationDenied",
    "GraphQLError",
    "InvalidClient",
    "InvalidGrant",
    "MemoryTokenStore",
    "NetrexError",
    "OAuthError",
    "Provider",
    "ReauthorizationRequired",
    "Scope",
    "StateMismatch",
    "Token",
    "TokenEndpointError",
    "TokenStore",
    "TokenStoreError",
    "TransportError",
]


def __getattr__(name: str) -> str:
    if name == "__version__":
        from ._version import __version__

        return __version__
    raise AttributeError(f"module 'netrex_async' has no attribute {name!r}")
