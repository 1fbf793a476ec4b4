"""What the fake received: a request log with redacting reprs, and counters."""

from __future__ import annotations

import collections
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import attrs

from .._redact import REDACTED, SECRET_PARAMS
from ._faults import Fault

__all__ = ["Counters", "RecordedRequest", "SecretMapping"]

#: Parameters whose values are secrets (a "plain" PKCE challenge is the verifier itself).
SECRET_FIELDS = SECRET_PARAMS | {"code_challenge"}

#: Header names whose values are secrets.
SECRET_HEADERS = frozenset({"authorization", "cookie", "set-cookie", "proxy-authorization"})


class SecretMapping(Mapping[str, str]):
    """A read-only mapping whose values are all there, but whose repr hides the secret ones.

    ``m["client_secret"]`` gives the real value to a test; ``repr(m)`` and ``str(m)``
    show ``***`` instead, so a failing assertion or a log line prints no secret.
    """

    __slots__ = ("_data", "_secret")

    def __init__(self, data: Mapping[str, str], secret: frozenset[str] = SECRET_FIELDS) -> None:
        self._data = data
        self._secret = secret

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self.items()) == dict(other.items())
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        items = ", ".join(
            f"{k!r}: {REDACTED if k.lower() in self._secret else repr(v)}" for k, v in self.items()
        )
        return "{" + items + "}"

    __str__ = __repr__


EMPTY = SecretMapping({})


def first_values(items: Iterable[tuple[str, object]]) -> dict[str, str]:
    """A plain dict of the first string value of each key of a multidict's items."""
    out: dict[str, str] = {}
    for k, v in items:
        if k not in out and isinstance(v, str):
            out[k] = v
    return out


@attrs.frozen(repr=False)
class RecordedRequest:
    """One request the fake received. Secrets are in the fields, never in the repr.

    Attributes:
        endpoint: ``"auth"``, ``"token"``, ``"revoke"`` or ``"graphql"``.
        method: ``"GET"``, ``"POST"``...
        path: The path, without the query string.
        query: Query string parameters (first value of each name).
        form: Form body parameters (empty unless the body was a form).
        headers: The request headers (case-insensitive lookup).
        body: The raw body (for the GraphQL endpoint: the JSON document).
        status: The HTTP status answered, or ``None`` when the connection was dropped.
        fault: The injected fault that shaped the answer, if any.
        at: The fake's clock when the request arrived.
    """

    endpoint: str
    method: str
    path: str
    query: SecretMapping
    form: SecretMapping
    headers: SecretMapping
    body: bytes
    status: int | None
    fault: Fault | None
    at: float

    @property
    def params(self) -> SecretMapping:
        """Query and form parameters together (a form value wins over a query value)."""
        if not self.form:
            return self.query
        if not self.query:
            return self.form
        return SecretMapping({**self.query, **self.form})

    @property
    def bearer(self) -> str | None:
        """The token of an ``Authorization: Bearer`` header, if one was sent."""
        value = self.headers.get("Authorization", "")
        scheme, _, token = value.partition(" ")
        return (token.strip() or None) if scheme.lower() == "bearer" else None

    def json(self) -> Any:
        """The body parsed as JSON (raises :class:`ValueError` if it is not JSON)."""
        return json.loads(self.body)

    def __repr__(self) -> str:
        fault = "" if self.fault is None else f", fault={self.fault!r}"
        body = f", body=<{len(self.body)} bytes>" if self.body and not self.form else ""
        return (
            f"RecordedRequest({self.method} {self.path}, endpoint={self.endpoint!r}, "
            f"params={self.params!r}{body}, status={self.status}{fault})"
        )

    __str__ = __repr__


def _counter() -> collections.Counter[str]:
    return collections.Counter()


@attrs.define
class Counters:
    """How often things happened at the fake, since it was made or last reset.

    Every received request counts, including those answered by an injected fault
    (``faults`` counts those per endpoint).

    Attributes:
        requests: Requests per endpoint (``"auth"``, ``"token"``, ``"revoke"``,
            ``"graphql"``).
        token_requests: Token endpoint requests per ``grant_type`` as sent
            (``"authorization_code"``, ``"auth_code"``, ``"refresh_token"``; ``""`` when
            missing).
        auth_requests: Requests to the authorization endpoint.
        api_calls: Requests to the GraphQL endpoint.
        unauthorized: GraphQL requests refused for a missing, unknown, expired or revoked
            token.
        revocations: Requests to the revocation endpoint.
        tokens_issued: Access tokens issued (by the token endpoint or ``issue_token``).
        reuse_detected: Grants revoked because a rotated refresh token came back.
        faults: Answers shaped by an injected fault, per endpoint.
    """

    requests: collections.Counter[str] = attrs.field(factory=_counter)
    token_requests: collections.Counter[str] = attrs.field(factory=_counter)
    auth_requests: int = 0
    api_calls: int = 0
    unauthorized: int = 0
    revocations: int = 0
    tokens_issued: int = 0
    reuse_detected: int = 0
    faults: collections.Counter[str] = attrs.field(factory=_counter)

    @property
    def code_exchanges(self) -> int:
        """Token requests exchanging a code (``authorization_code`` plus ``auth_code``)."""
        return self.token_requests["authorization_code"] + self.token_requests["auth_code"]

    @property
    def refreshes(self) -> int:
        """Token requests with ``grant_type=refresh_token``."""
        return self.token_requests["refresh_token"]
