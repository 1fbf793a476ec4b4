"""aioresponses, made to work with aiohttp 3.14.

aiohttp 3.14 added a required ``stream_writer`` argument to ``ClientResponse``, which
aioresponses 0.7.9 does not pass (pnuckowski/aioresponses#289). The response class here
supplies a finished writer, and :class:`MockHTTP` uses it for every mocked answer.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from aioresponses import aioresponses
from yarl import URL

__all__ = ["MockHTTP"]


class _SentWriter:
    """Stands in for the writer of a request that was already sent."""

    output_size = 0


class _Response(aiohttp.ClientResponse):
    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", _SentWriter())
        super().__init__(method, url, **kwargs)


class MockHTTP(aioresponses):
    """:class:`aioresponses.aioresponses` whose answers build under aiohttp 3.14."""

    def add(self, url: Any, method: str = "GET", **kwargs: Any) -> None:  # type: ignore[override]
        kwargs.setdefault("response_class", _Response)
        super().add(url, method, **kwargs)
