"""MemoryTokenStore: one process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs

from .._errors import TokenStoreError
from .._lifecycle import AsyncClosing
from .._token import Token

__all__ = ["MemoryTokenStore"]


@attrs.define(repr=False)
class MemoryTokenStore(AsyncClosing):
    """A token kept in this process's memory; the lock is an :class:`asyncio.Lock`.

    For one process, tests, and a token that needs no persistence. Nothing survives a
    restart; use :class:`FileTokenStore` or ``RedisTokenStore`` for that.

    Args:
        token: An initial token, e.g. the one :meth:`OAuth2Client.exchange` returned.
        lock_timeout: Seconds :meth:`lock` waits before raising :class:`TokenStoreError`;
            ``None`` (the default) waits as long as it takes.
    """

    _token: Token | None = attrs.field(default=None, alias="token")
    lock_timeout: float | None = attrs.field(default=None, kw_only=True)
    _lock: asyncio.Lock = attrs.field(factory=asyncio.Lock, init=False)

    def __repr__(self) -> str:
        return f"MemoryTokenStore(has_token={self._token is not None})"

    @property
    def description(self) -> str:
        """How this store is named in errors and logs."""
        return "memory"

    @property
    def lease(self) -> None:
        """``None``: the lock has no expiry."""
        return None

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
        """Exclusive within this process.

        Raises:
            TokenStoreError: Not acquired within ``lock_timeout``.
        """
        try:
            async with asyncio.timeout(self.lock_timeout):
                await self._lock.acquire()
        except TimeoutError:
            raise TokenStoreError(
                f"could not lock the memory token store within {self.lock_timeout:g} s",
                store=self.description,
            ) from None
        try:
            yield
        finally:
            self._lock.release()

    async def aclose(self) -> None:
        """Nothing to release."""
