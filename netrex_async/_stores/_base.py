"""The TokenStore protocol."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from .._token import Token

__all__ = ["TokenStore"]


@runtime_checkable
class TokenStore(Protocol):
    """Where a grant's current token is kept, and the lock that serializes its refresh.

    Every process that shares a grant must share its store. :class:`TokenManager` runs
    each refresh as ``lock() -> load() -> refresh -> save() -> unlock``, so that one grant
    is never refreshed twice at once, in one process or across a fleet.

    Every store is also an async context manager; ``aclose()`` releases what it holds
    (a no-op for stores that hold nothing).
    """

    async def load(self) -> Token | None:
        """The stored token, or ``None`` if there is none.

        Raises:
            TokenStoreError: The store is unreachable, or holds something that is not a
                token (a corrupt file is reported, never silently replaced).
        """
        ...

    async def save(self, token: Token) -> None:
        """Replace the stored token atomically: readers see the old or the new one."""
        ...

    async def clear(self) -> None:
        """Forget the stored token (after revocation, or by the caller's decision)."""
        ...

    def lock(self) -> AbstractAsyncContextManager[None]:
        """An exclusive lock across every process sharing this store.

        Raises:
            TokenStoreError: The lock could not be taken in time; names the store.
        """
        ...

    async def aclose(self) -> None:
        """Release connections or handles this store opened."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
