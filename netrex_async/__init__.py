"""netrex_async: an asyncio client for the Netrex / Survilla Cloud GraphQL API.

Once authorized, a caller never sees an expired token: :class:`NetrexClient` wraps an
aiohttp session whose bearer token comes from a :class:`TokenManager` that refreshes it
before it expires, once per grant however many tasks or processes wait, through a
:class:`TokenStore`. See the README for the quick start.
"""

from ._auth_flow import Answer, default_token_rejected
from ._checkpoints import Checkpoint, CheckpointLost, FileCheckpoint, MemoryCheckpoint
from ._client import ApiResponse, NetrexClient
from ._collect import Collection
from ._errors import (
    ApiError,
    AuthorizationDenied,
    ClosedError,
    ExtraRequired,
    GraphQLError,
    InvalidClient,
    InvalidGrant,
    NetrexError,
    OAuthError,
    ReauthorizationRequired,
    StateMismatch,
    TokenEndpointError,
    TokenStoreConfigError,
    TokenStoreError,
    TransportError,
)
from ._events import (
    Hook,
    ManagerStats,
    ReauthorizationNeeded,
    RefreshFailed,
    TokenAdopted,
    TokenEvent,
    TokenRefreshed,
)
from ._manager import StaticToken, TokenManager, TokenSource
from ._oauth import OAuth2Client
from ._oauth_protocol import AuthorizationRequest, OAuth2App
from ._provider import Provider
from ._retry import RetryPolicy, set_testing
from ._scope import Scope
from ._stores._base import TokenStore
from ._stores._file import FileTokenStore
from ._stores._memory import MemoryTokenStore
from ._token import Token

__all__ = [
    "Answer",
    "ApiError",
    "ApiResponse",
    "AuthorizationDenied",
    "AuthorizationRequest",
    "Checkpoint",
    "CheckpointLost",
    "ClosedError",
    "Collection",
    "ExtraRequired",
    "FileCheckpoint",
    "FileTokenStore",
    "GraphQLError",
    "Hook",
    "InvalidClient",
    "InvalidGrant",
    "ManagerStats",
    "MemoryCheckpoint",
    "MemoryTokenStore",
    "NetrexClient",
    "NetrexError",
    "OAuth2App",
    "OAuth2Client",
    "OAuthError",
    "Provider",
    "ReauthorizationNeeded",
    "ReauthorizationRequired",
    "RefreshFailed",
    "RetryPolicy",
    "Scope",
    "StateMismatch",
    "StaticToken",
    "Token",
    "TokenAdopted",
    "TokenEndpointError",
    "TokenEvent",
    "TokenManager",
    "TokenRefreshed",
    "TokenSource",
    "TokenStore",
    "TokenStoreConfigError",
    "TokenStoreError",
    "TransportError",
    "default_token_rejected",
    "set_testing",
]


def __getattr__(name: str) -> str:
    if name == "__version__":
        from ._version import __version__

        return __version__
    raise AttributeError(f"module 'netrex_async' has no attribute {name!r}")
