"""The bearer-token flow of an API request, written once and without I/O.

In the manner of httpx's ``auth_flow``: :func:`auth_flow` is a generator that *decides*
and a driver that *does*. It yields a step and receives the step's result:

* :data:`TOKEN`: the driver answers with ``await source.token()``;
* a :class:`Send`: the driver sends the request (``method``, ``url``, with or without its
  body) with ``Authorization: Bearer <token>`` and answers with an :class:`Answer`;
* an :class:`Invalidate`: the driver calls ``await source.invalidate(token)`` and answers
  ``None``.

The flow returns the final :class:`Answer`, or raises :class:`ApiError` for a redirect it
refuses. It knows the rules: the token only for the provider's origin; no redirect to
another origin (nor from https to http), and nothing sent there; a rejected token
(:func:`default_token_rejected`: HTTP 401 or a GraphQL ``UNAUTHENTICATED`` error) is
invalidated, a fresh one fetched, and the request sent once more, never twice.

Two drivers run it (both in ``_client.py``): the client's own send path, which sets the
header itself and follows same-origin redirects through the flow, and
:meth:`NetrexClient.middleware` for sessions a caller brings, where aiohttp follows
redirects and the middleware runs again on each hop.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, Final

from multidict import CIMultiDictProxy
from yarl import URL

from . import _json, _log
from ._errors import ApiError
from ._redact import safe_text

__all__ = [
    "MAX_REDIRECTS",
    "REDIRECT_STATUSES",
    "TOKEN",
    "Answer",
    "FlowConfig",
    "Invalidate",
    "Send",
    "auth_flow",
    "default_token_rejected",
    "graphql_unauthenticated",
    "json_type",
]

#: Same-origin redirects followed in a row before the answer is an :class:`ApiError`.
MAX_REDIRECTS: Final = 10
REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})

_UNSET: Any = object()


class _TokenStep:
    __slots__ = ()

    def __repr__(self) -> str:
        return "TOKEN"


#: Step: "give me the current token" (``await source.token()``).
TOKEN: Final = _TokenStep()


class Send:
    """Step: send the request with ``token``, to ``url`` by ``method``.

    ``body`` is false after a redirect that turns the request into a GET (301/302 of a
    POST, 303), as browsers and aiohttp do: the body is not sent again.
    """

    __slots__ = ("body", "method", "token", "url")

    def __init__(self, token: str, method: str, url: URL, body: bool) -> None:
        self.token = token
        self.method = method
        self.url = url
        self.body = body

    def __repr__(self) -> str:  # never the token
        return f"Send({self.method} {self.url.with_query(None)}, body={self.body})"


class Invalidate:
    """Step: report ``token`` as rejected (``await source.invalidate(token)``)."""

    __slots__ = ("token",)

    def __init__(self, token: str) -> None:
        self.token = token

    def __repr__(self) -> str:
        return "Invalidate(<token>)"


class Answer:
    """One HTTP answer as the flow and a rejection predicate see it.

    Attributes:
        status: The HTTP status.
        headers: The response headers.
        body: The body, fully read, or ``None`` when the driver did not read it (a
            caller's own session reads only JSON answers, up to ``max_response_bytes``).
        response: The :class:`aiohttp.ClientResponse` (for ``auth_failed`` predicates).
    """

    __slots__ = ("_data", "body", "headers", "response", "status")

    def __init__(
        self, status: int, headers: CIMultiDictProxy[str], body: bytes | None, response: Any
    ) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.response = response
        self._data: Any = _UNSET

    def decode(self) -> None:
        """Decode the body now, once; :meth:`json` then returns (or raises) at no cost."""
        if self._data is _UNSET:
            if self.body is None:
                self._data = ValueError("the body was not read")
                return
            try:
                self._data = _json.loads(self.body)
            except ValueError as e:
                self._data = e

    def json(self) -> Any:
        """The body decoded as JSON (decoded once, then kept).

        Raises:
            ValueError: No body was read, or it is not JSON.
        """
        if self._data is _UNSET:
            self.decode()
        data = self._data
        if isinstance(data, ValueError):
            raise ValueError(str(data))
        return data

    def __repr__(self) -> str:
        size = "unread" if self.body is None else f"{len(self.body)} bytes"
        return f"Answer(status={self.status}, body=<{size}>)"


def graphql_unauthenticated(answer: Answer) -> bool:
    """Whether ``answer`` is a GraphQL answer with an ``UNAUTHENTICATED`` error.

    That is an ``errors`` list with an entry whose ``extensions.code`` is
    ``"UNAUTHENTICATED"``, whatever the HTTP status (many GraphQL servers send it with
    200 for an expired token).
    """
    document = answer._data
    if document is _UNSET:
        body = answer.body
        # Cheap before decoding: an answer that does not contain the word cannot match.
        if not body or b"UNAUTHENTICATED" not in body:
            return False
        answer.decode()
        document = answer._data
    if not isinstance(document, dict):  # not JSON (a ValueError kept), or not an object
        return False
    errors = document.get("errors")
    if not errors or not isinstance(errors, list):
        return False
    for error in errors:
        if isinstance(error, dict):
            extensions = error.get("extensions")
            if isinstance(extensions, dict) and extensions.get("code") == "UNAUTHENTICATED":
                return True
    return False


def default_token_rejected(answer: Answer) -> bool:
    """The default rule for "the API rejected the token".

    HTTP 401, or a GraphQL ``errors`` entry with ``extensions.code == "UNAUTHENTICATED"``
    (see :func:`graphql_unauthenticated`).
    """
    if answer.status == 401:
        return True
    document = answer._data
    if document.__class__ is dict and "errors" not in document:
        return False  # the usual answer, decoded: no errors, no rejection (one call less)
    return graphql_unauthenticated(answer)


class FlowConfig:
    """What :func:`auth_flow` needs to know, fixed per client.

    Args:
        origin: The provider's origin: the only place the token and requests may go.
        rejected: The predicate of "token rejected"; it sees the :class:`Answer`.
        excerpt: Makes a redacted excerpt of a body for an :class:`ApiError`.
    """

    __slots__ = ("excerpt", "origin", "rejected")

    def __init__(
        self,
        origin: URL,
        rejected: Callable[[Answer], bool],
        excerpt: Callable[[bytes | None], str],
    ) -> None:
        self.origin = (origin.scheme, origin.host, origin.port)
        self.rejected = rejected
        self.excerpt = excerpt

    def is_home(self, url: URL) -> bool:
        """Whether ``url`` is at the provider's origin (scheme, host and port)."""
        return (url.scheme, url.host, url.port) == self.origin


def _redirect_target(config: FlowConfig, url: URL, answer: Answer) -> URL | None:
    """Where a redirect answer points, if it may be followed; ``None``: no Location."""
    location = answer.headers.get("Location")
    if location is None:
        return None
    status = answer.status
    target: URL | None = None
    origin: URL | None = None
    try:
        target = url.join(URL(location))
        if target.scheme in ("http", "https"):
            origin = target.origin()
    except (ValueError, TypeError):
        target = None
    # Raised out here, not in the except block: yarl's error quotes the location.
    if target is None:
        raise ApiError(
            f"the API answered HTTP {status} with a redirect to an invalid location; not followed",
            status=status,
            body_excerpt=config.excerpt(answer.body),
        )
    scheme = target.scheme
    if origin is None:
        raise ApiError(
            f"the API answered HTTP {status} with a redirect to a non-HTTP location "
            f"(scheme {safe_text(scheme, limit=20)!r}); not followed",
            status=status,
            body_excerpt=config.excerpt(answer.body),
        )
    if not config.is_home(target):
        raise ApiError(
            f"the API answered HTTP {status} with a redirect to another origin "
            f"({safe_text(origin, limit=120)}); not followed: API requests stay at "
            "the provider's origin",
            status=status,
            body_excerpt=config.excerpt(answer.body),
        )
    return target


def auth_flow(
    config: FlowConfig, method: str, url: URL, *, follow: bool
) -> Generator[object, Any, Answer]:
    """The flow of one API request; see the module docstring for the protocol.

    Args:
        config: The client's settings.
        method: The HTTP method.
        url: The URL, at the provider's origin.
        follow: Follow same-origin redirects here (the client's own driver); ``False``
            when aiohttp follows them (the middleware): the flow then only refuses a
            redirect that leaves the origin.

    Raises:
        ApiError: A redirect to another origin, to https->http, to a non-HTTP or invalid
            location, or more than :data:`MAX_REDIRECTS` in a row.
    """
    token: str = yield TOKEN
    retried = False
    body = True
    while True:
        answer: Answer = yield Send(token, method, url, body)
        hops = 0
        while answer.status in REDIRECT_STATUSES:
            target = _redirect_target(config, url, answer)
            if target is None or not follow:
                break
            hops += 1
            if hops > MAX_REDIRECTS:
                raise ApiError(
                    f"the API redirected more than {MAX_REDIRECTS} times in a row "
                    f"(last HTTP {answer.status}); not followed",
                    status=answer.status,
                    body_excerpt=config.excerpt(answer.body),
                )
            status = answer.status
            if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
                method, body = "GET", False
            url = target
            answer = yield Send(token, method, url, body)
        if retried or not config.rejected(answer):
            return answer
        _log.client.info(
            "the API rejected the token (HTTP %d); refreshing and retrying once",
            answer.status,
            extra={"event": "unauthorized", "status": answer.status},
        )
        yield Invalidate(token)
        fresh: str = yield TOKEN
        if fresh == token:
            return answer
        token, retried = fresh, True


def json_type(content_type: str | None) -> bool:
    """Whether a Content-Type names JSON (``application/json``, ``...+json``)."""
    if not content_type:
        return False
    kind = content_type.partition(";")[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")
