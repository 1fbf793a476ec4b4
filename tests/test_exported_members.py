"""The public namespace: complete, sorted, and nothing private leaks into it."""

from __future__ import annotations

import importlib
import inspect

import pytest

import netrex_async

PUBLIC_MODULES = [
    "netrex_async",
    "netrex_async.codegen",
    "netrex_async.testing",
    "netrex_async.stores.redis",
]


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_is_sorted_and_unique(name):
    module = importlib.import_module(name)
    assert list(module.__all__) == sorted(set(module.__all__))


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_is_complete(name):
    module = importlib.import_module(name)
    public = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and (
            getattr(value, "__module__", "") == name
            or getattr(value, "__module__", "").startswith(name + "._")
        )
    }
    assert public <= set(module.__all__), public - set(module.__all__)
    for attr in module.__all__:
        assert hasattr(module, attr), attr


def test_design_contract_names_are_exported():
    # The public names DESIGN.md promises; renaming one breaks users.
    for name in [
        "Provider", "Scope", "OAuth2App", "AuthorizationRequest", "OAuth2Client", "Token",
        "TokenManager", "StaticToken", "NetrexClient", "TokenStore", "MemoryTokenStore",
        "FileTokenStore", "NetrexError", "OAuthError", "AuthorizationDenied", "StateMismatch",
        "InvalidGrant", "InvalidClient", "TokenEndpointError", "ReauthorizationRequired",
        "ApiError", "GraphQLError", "TransportError", "TokenStoreError",
        "MemoryCheckpoint", "FileCheckpoint",
    ]:  # fmt: skip
        assert name in netrex_async.__all__, name
    from netrex_async.stores.redis import RedisCheckpoint, RedisTokenStore
    from netrex_async.testing import FakeNetrex

    assert RedisTokenStore and RedisCheckpoint and FakeNetrex


def test_version_is_lazy_and_a_string():
    assert isinstance(netrex_async.__version__, str)
    with pytest.raises(AttributeError):
        netrex_async.no_such_name  # noqa: B018


def test_error_tree():
    from netrex_async import (
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
    )  # fmt: skip

    for cls in (
        AuthorizationDenied,
        StateMismatch,
        InvalidGrant,
        InvalidClient,
        TokenEndpointError,
    ):
        assert issubclass(cls, OAuthError)
    assert issubclass(GraphQLError, ApiError)
    for cls in (OAuthError, ReauthorizationRequired, ApiError, TransportError, TokenStoreError):
        assert issubclass(cls, NetrexError)
