"""Faults the fake provider can be told to commit, and the queue that hands them out.

A fault replaces (or, for a delay, precedes) the normal answer of one endpoint for the
next few requests::

    fake.inject("token", Fault.status(503), times=2)
    fake.inject("graphql", Fault.rate_limited(retry_after=2))
    fake.inject("token", Fault.malformed("truncated_json"))
    fake.inject("revoke", Fault.drop())
    fake.inject("graphql", Fault.delay(0.5))
    fake.inject("graphql", Fault.redirect(other.base_url + "/api/graphql.php", code=307))

Faults queued for one endpoint are served in the order they were injected.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Mapping
from typing import Any, Final, Literal, TypeAlias, get_args

import attrs

__all__ = [
    "ENDPOINTS",
    "DelayFault",
    "DropFault",
    "Endpoint",
    "Fault",
    "MalformedFault",
    "MalformedKind",
    "RedirectFault",
    "StatusFault",
]

#: The fake's endpoints, as named in :meth:`FakeNetrex.inject`.
Endpoint: TypeAlias = Literal["auth", "token", "revoke", "graphql"]
ENDPOINTS: Final[tuple[Endpoint, ...]] = get_args(Endpoint)

#: The kinds of broken answers :meth:`Fault.malformed` can give.
MalformedKind: TypeAlias = Literal[
    "invalid_json", "truncated_json", "html", "json_array", "null", "empty"
]
MALFORMED_KINDS: Final[tuple[MalformedKind, ...]] = get_args(MalformedKind)

JsonBody: TypeAlias = Mapping[str, Any] | list[Any]


class Fault:
    """A scripted misbehaviour of one endpoint. Build one with the factory methods.

    ``Fault.status(503)``, ``Fault.rate_limited(2)``, ``Fault.delay(1.5)``, ``Fault.drop()``,
    ``Fault.malformed("truncated_json")``, ``Fault.redirect(url)``.
    """

    __slots__ = ()

    @staticmethod
    def status(
        code: int,
        *,
        body: str | bytes | JsonBody | None = None,
        headers: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> StatusFault:
        """Answer with HTTP status ``code`` instead of handling the request.

        Args:
            code: The HTTP status, e.g. 500, 502, 503, 401.
            body: The answer's body: text, bytes, or a dict or list sent as JSON. By
                default a short ``text/plain`` line such as ``503 Service Unavailable``.
            headers: Extra response headers (e.g. ``{"Retry-After": "3"}``).
            content_type: Overrides the content type guessed from ``body``.
        """
        return StatusFault(
            code=code, body=body, headers=dict(headers or {}), content_type=content_type
        )

    @staticmethod
    def rate_limited(retry_after: float | str | None = 1, *, code: int = 429) -> StatusFault:
        """Answer ``429 Too Many Requests`` with a ``Retry-After`` header.

        Args:
            retry_after: Seconds (sent as a whole number when whole) or an HTTP date;
                ``None`` sends no ``Retry-After`` header.
            code: The status to answer with (429, or 503 as some servers do).
        """
        headers: dict[str, str] = {}
        if retry_after is not None:
            if isinstance(retry_after, float) and retry_after.is_integer():
                retry_after = int(retry_after)
            headers["Retry-After"] = str(retry_after)
        return StatusFault(code=code, headers=headers)

    @staticmethod
    def delay(seconds: float, then: Fault | None = None) -> DelayFault:
        """Wait ``seconds`` before answering, then answer normally (or commit ``then``).

        A delay longer than the client's timeout simulates a hung server.
        """
        return DelayFault(seconds=seconds, then=then)

    @staticmethod
    def drop() -> DropFault:
        """Close the connection without sending any answer."""
        return DropFault()

    @staticmethod
    def malformed(kind: MalformedKind, *, code: int = 200) -> MalformedFault:
        """Answer a broken body with status ``code`` (200 by default: the sneaky case).

        Kinds: ``invalid_json`` (JSON-looking text that does not parse), ``truncated_json``
        (a JSON object cut short), ``html`` (a proxy's or login page, ``text/html``),
        ``json_array``, ``null``, ``empty`` (no body at all). All but ``html`` claim to be
        ``application/json``.
        """
        return MalformedFault(kind=kind, code=code)

    @staticmethod
    def redirect(location: str, *, code: int = 302) -> RedirectFault:
        """Answer a redirect to ``location`` (typically another origin).

        Use a second fake as the target to see what a client forwards there.
        """
        return RedirectFault(location=location, code=code)


def _check_code(instance: Any, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
        raise ValueError(f"{attribute.name} must be an HTTP status between 100 and 599")


@attrs.frozen
class StatusFault(Fault):
    """Answer status ``code`` with an optional body and headers (see :meth:`Fault.status`)."""

    code: int = attrs.field(validator=_check_code)
    body: str | bytes | JsonBody | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    content_type: str | None = None

    def render(self) -> tuple[bytes, str]:
        """The body bytes and content type to send."""
        body = self.body
        if body is None:
            from http import HTTPStatus

            try:
                phrase = HTTPStatus(self.code).phrase
            except ValueError:
                phrase = "Error"
            return f"{self.code} {phrase}\n".encode(), self.content_type or "text/plain"
        if isinstance(body, bytes):
            return body, self.content_type or "application/octet-stream"
        if isinstance(body, str):
            return body.encode(), self.content_type or "text/plain"
        return json.dumps(body).encode(), self.content_type or "application/json"


def _check_seconds(instance: Any, attribute: attrs.Attribute[float], value: float) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not value >= 0:
        raise ValueError("seconds must be a number >= 0")


@attrs.frozen
class DelayFault(Fault):
    """Wait ``seconds``, then answer normally or commit ``then`` (see :meth:`Fault.delay`)."""

    seconds: float = attrs.field(validator=_check_seconds)
    then: Fault | None = None


@attrs.frozen
class DropFault(Fault):
    """Close the connection without an answer (see :meth:`Fault.drop`)."""


def _check_kind(instance: Any, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in MALFORMED_KINDS:
        raise ValueError(f"kind must be one of {', '.join(MALFORMED_KINDS)}; got {value!r}")


@attrs.frozen
class MalformedFault(Fault):
    """Answer a broken body (see :meth:`Fault.malformed`)."""

    kind: MalformedKind = attrs.field(validator=_check_kind)
    code: int = attrs.field(default=200, validator=_check_code)

    def render(self) -> tuple[bytes, str]:
        """The body bytes and content type to send."""
        return _MALFORMED[self.kind]


_MALFORMED: Final[dict[str, tuple[bytes, str]]] = {
    # The wiki prints JSON with curly quotes; a server that does the same sends this.
    "invalid_json": (
        "{\u201csuccess\u201d: true, \u201cmessage\u201d: \u201cInfo message\u201d}".encode(),
        "application/json",
    ),
    "truncated_json": (b'{"access_token": "fake-truncated", "expires_in": 36', "application/json"),
    "html": (
        b"<!DOCTYPE html>\n<html><head><title>Maintenance</title></head>"
        b"<body><h1>We'll be back soon</h1></body></html>\n",
        "text/html",
    ),
    "json_array": (b'[{"error": "unexpected"}]', "application/json"),
    "null": (b"null", "application/json"),
    "empty": (b"", "application/json"),
}


@attrs.frozen
class RedirectFault(Fault):
    """Answer a redirect to ``location`` (see :meth:`Fault.redirect`)."""

    location: str
    code: int = attrs.field(default=302, validator=_check_code)

    def __attrs_post_init__(self) -> None:
        if not 300 <= self.code <= 399:
            raise ValueError("a redirect needs a 3xx status")


def check_endpoint(endpoint: str) -> Endpoint:
    """``endpoint`` if it names one of the fake's endpoints, else :class:`ValueError`."""
    if endpoint not in ENDPOINTS:
        raise ValueError(f"endpoint must be one of {', '.join(ENDPOINTS)}; got {endpoint!r}")
    return endpoint


@attrs.define
class _Entry:
    fault: Fault
    remaining: int | None


@attrs.define
class FaultQueue:
    """Faults waiting per endpoint, served first in, first out."""

    _queues: dict[str, collections.deque[_Entry]] = attrs.field(
        factory=lambda: {e: collections.deque() for e in ENDPOINTS}
    )
    #: Whether any fault is queued at all: lets the hot path skip the lookup.
    armed: bool = False

    def push(self, endpoint: Endpoint, fault: Fault, times: int | None) -> None:
        """Queue ``fault`` for the next ``times`` requests (``None``: until cleared)."""
        if not isinstance(fault, Fault) or type(fault) is Fault:
            raise TypeError(
                f"expected a Fault made by a factory such as Fault.status(503), "
                f"got {type(fault).__name__}"
            )
        if times is not None and (isinstance(times, bool) or times < 1):
            raise ValueError("times must be a positive number, or None for 'until cleared'")
        self._queues[check_endpoint(endpoint)].append(_Entry(fault, times))
        self.armed = True

    def take(self, endpoint: str) -> Fault | None:
        """The fault for this request to ``endpoint``, if one is queued."""
        queue = self._queues[endpoint]
        if not queue:
            return None
        entry = queue[0]
        if entry.remaining is not None:
            entry.remaining -= 1
            if entry.remaining <= 0:
                queue.popleft()
                self.armed = any(self._queues.values())
        return entry.fault

    def pending(self, endpoint: Endpoint | None = None) -> int:
        """How many faulty answers are queued (a fault without a limit counts once)."""
        queues = self._queues.values() if endpoint is None else [self._queues[endpoint]]
        return sum(e.remaining or 1 for q in queues for e in q)

    def clear(self, endpoint: Endpoint | None = None) -> None:
        """Forget the faults of ``endpoint``, or of every endpoint."""
        if endpoint is None:
            for queue in self._queues.values():
                queue.clear()
        else:
            self._queues[check_endpoint(endpoint)].clear()
        self.armed = any(self._queues.values())
