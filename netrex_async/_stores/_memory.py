"""MemoryTokenStore: one process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Self

import attrs

from .._token import Token

__all__ = ["MemoryTokenStore"]


@attrs.define(repr=False)
class MemoryTokenStore:
    """A token kept in this process's memory; the lock is an :class:`asyncio.Lock`.

    For one process, tests, and a token that needs no persistence. Nothing survives a
    restart; use :class:`FileTokenStore` or ``RedisTokenStore`` for that.

    Args:
        token: An initial token, e.g. the one :meth:`OAuth2Client.exchange` returned.
    """

    _token: Token | None = attrs.field(default=None, alias="token")
    _lock: asyncio.Lock = attrs.field(factory=asyncio.Lock, init=False)

    def __repr__(self) -> str:
        return f"MemoryTokenStore(has_token={self._token is not None})"

    @property
    def description(self) -> str:
        """How this store is named in errors and logs."""
        return "memory"

    async def load(self) -> Token | None:
        """The stored token, or ``None``."""
        return self._token

    async def save(self, token: Token) -> None:
        """Replace the stored token."""
        if not isinstance(token, Token):
            raise TypeError(f"save() takes a Token, not {type(token).__name__}")
        self._token = token

    async def clear(self) -> None:
        """Forget the stored token."""
        self._token = None

    @asynccontextmanager
    async def lock(self) -> AsyncIterator[None]:
        """Exclusive within this process."""
        async with self._lock:
            yield

    async def aclose(self) -> None:
        """Nothing to release."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
