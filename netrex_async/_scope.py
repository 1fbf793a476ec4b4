"""The provider's access rights and their comma-separated form."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable

__all__ = ["Scope"]

_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class Scope(enum.StrEnum):
    """The ten documented rights an OAuth2 app may ask for.

    The provider writes a set of rights comma-separated (``read,events``), not
    space-separated as RFC 6749 does; :meth:`parse` and :meth:`to_param` speak that form.
    """

    READ = "read"
    WRITE = "write"
    LIVEVIEW = "liveview"
    AUDIOTRANSMIT = "audiotransmit"
    LIVEVIEW_PTZ = "liveview_ptz"
    LIVEVIEW_LIGHT = "liveview_light"
    LIVEVIEW_AUDIOCLIP = "liveview_audioclip"
    RECORDINGS = "recordings"
    RECORDINGS_DELETE = "recordings_delete"
    EVENTS = "events"

    @classmethod
    def parse(
        cls, value: str | Iterable[str], *, allow_unknown: bool = False
    ) -> tuple[Scope | str, ...]:
        """Parse ``"read,events"`` (or an iterable of names) into rights.

        Blanks around names are ignored; duplicates are dropped keeping the first; an
        empty list is allowed. A space-separated string is accepted too.

        Args:
            value: The comma-separated string, or names one by one.
            allow_unknown: Keep names this library does not know (the provider may add
                rights) as plain strings instead of raising.

        Raises:
            ValueError: A name is unknown (and ``allow_unknown`` is false) or malformed.
        """
        if isinstance(value, str):
            parts: Iterable[str] = re.split(r"[,\s]+", value)
        else:
            parts = value
        out: list[Scope | str] = []
        for raw in parts:
            name = str(raw).strip()
            if not name:
                continue
            item: Scope | str
            try:
                item = cls(name.lower())
            except ValueError:
                if not _NAME.match(name):
                    raise ValueError(f"malformed scope name {name[:64]!r}") from None
                if not allow_unknown:
                    known = ", ".join(s.value for s in cls)
                    raise ValueError(
                        f"unknown scope {name!r} (known: {known}; "
                        "pass allow_unknown=True to send it anyway)"
                    ) from None
                item = name
            if item not in out:
                out.append(item)
        return tuple(out)

    @staticmethod
    def to_param(scopes: Iterable[str]) -> str:
        """Join rights the provider's way: ``"read,events"``."""
        out: list[str] = []
        for s in scopes:
            v = str(s.value if isinstance(s, Scope) else s)
            if v not in out:
                out.append(v)
        return ",".join(out)
