"""The token value and its JSON form for stores."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import attrs

from ._redact import fingerprint
from ._scope import Scope

__all__ = ["Token"]

#: Version of the dict written by :meth:`Token.to_dict`.
FORMAT_VERSION = 1


def _scopes(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(Scope.parse(value, allow_unknown=True))
    return tuple(Scope.parse(list(value), allow_unknown=True))


def _nonempty_str(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{attribute.name} must be a non-empty string")


def _opt_nonempty_str(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        _nonempty_str(instance, attribute, value)


def _finite(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None and attribute.name == "expires_at":
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{attribute.name} must be a finite number of epoch seconds")


@attrs.frozen(repr=False)
class Token:
    """An access token, and the refresh token of its grant when there is one.

    Times are epoch seconds taken from the local clock when the provider's answer was
    received, so a token read back from a store still knows how long it lives.

    Attributes:
        access_token: The bearer token (a secret: never in a repr or log).
        refresh_token: The refresh token, or ``None`` for a temporary grant.
        issued_at: When the token was received.
        expires_at: ``issued_at + expires_in``, or ``None`` when the provider gave no
            lifetime (then only a 401 tells that the token is dead).
        scopes: The rights granted, as far as known.
        token_type: Always ``"Bearer"`` at this provider.
    """

    access_token: str = attrs.field(validator=_nonempty_str)
    refresh_token: str | None = attrs.field(default=None, validator=_opt_nonempty_str)
    issued_at: float = attrs.field(factory=time.time, validator=_finite)
    expires_at: float | None = attrs.field(default=None, validator=_finite)
    scopes: tuple[str, ...] = attrs.field(default=(), converter=_scopes)
    token_type: str = "Bearer"

    def __attrs_post_init__(self) -> None:
        if self.expires_at is not None and self.expires_at < self.issued_at:
            raise ValueError("expires_at must not be before issued_at")

    @property
    def lifetime(self) -> float | None:
        """Seconds between issue and expiry, or ``None`` if the expiry is unknown."""
        return None if self.expires_at is None else self.expires_at - self.issued_at

    @property
    def can_refresh(self) -> bool:
        """Whether the grant has a refresh token (a permanent grant)."""
        return self.refresh_token is not None

    @property
    def fingerprint(self) -> str:
        """A short hash naming this grant in logs and events; reveals nothing of a token.

        Taken from the refresh token when there is one (it names the grant across
        access tokens), else from the access token.
        """
        return fingerprint(self.refresh_token or self.access_token)

    @property
    def access_fingerprint(self) -> str:
        """A short hash naming this access token alone."""
        return fingerprint(self.access_token)

    def expires_in(self, now: float | None = None) -> float | None:
        """Seconds left until expiry (negative once expired), or ``None`` if unknown."""
        if self.expires_at is None:
            return None
        return self.expires_at - (time.time() if now is None else now)

    def __repr__(self) -> str:
        exp = "unknown" if self.expires_at is None else f"{self.expires_at:.3f}"
        return (
            f"Token(access_token=***, refresh_token={'***' if self.refresh_token else None}, "
            f"issued_at={self.issued_at:.3f}, expires_at={exp}, scopes={self.scopes!r}, "
            f"fingerprint={self.fingerprint!r})"
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict for stores; :meth:`from_dict` reads it back."""
        return {
            "version": FORMAT_VERSION,
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "issued_at": self.issued_at,
            "expires_at": self.expires_at,
            "scopes": list(self.scopes),
            "token_type": self.token_type,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Token:
        """Read a dict written by :meth:`to_dict`.

        Raises:
            ValueError: The dict is not a token: a field is missing or of the wrong type.
                The message names the field, never its value.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"a token must be a JSON object, not {type(data).__name__}")
        version = data.get("version", FORMAT_VERSION)
        if version != FORMAT_VERSION:
            raise ValueError(f"unsupported token format version {version!r}")
        if "access_token" not in data:
            raise ValueError("access_token is missing")
        if "issued_at" not in data:
            raise ValueError("issued_at is missing")
        scopes = data.get("scopes", ())
        if not isinstance(scopes, list | tuple) or not all(isinstance(s, str) for s in scopes):
            raise ValueError("scopes must be a list of strings")
        token_type = data.get("token_type", "Bearer")
        if not isinstance(token_type, str):
            raise ValueError("token_type must be a string")
        try:
            return cls(
                access_token=data["access_token"],
                refresh_token=data.get("refresh_token"),
                issued_at=data["issued_at"],
                expires_at=data.get("expires_at"),
                scopes=tuple(scopes),
                token_type=token_type,
            )
        except (TypeError, ValueError) as e:
            raise ValueError(str(e)) from None
