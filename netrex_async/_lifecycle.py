"""``async with`` for everything that has an ``aclose()``."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class AsyncClosing:
    """Mixin: ``async with x`` returns ``x`` and calls ``await x.aclose()`` on the way out."""

    __slots__ = ()

    async def aclose(self) -> None:
        """Release what this object holds (subclasses override)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
