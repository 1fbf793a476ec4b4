"""What the CLI writes: scrubbed lines, safe JSON, durations, and the debug log."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterable
from typing import Any, TextIO

from .._redact import safe_text, scrub
from .._token import Token

__all__ = ["Console", "DebugLogging", "WarningLogging", "format_duration", "json_text"]

# json.dumps(ensure_ascii=False) escapes C0 controls only; a terminal also acts on DEL,
# C1 controls, line separators and bidi overrides.
_UNSAFE_IN_JSON = re.compile(r"[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def json_text(value: Any, *, indent: int | None = 2) -> str:
    """``value`` as JSON that is safe to show on a terminal (and still valid JSON)."""
    text = json.dumps(value, indent=indent, ensure_ascii=False, sort_keys=False)
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def format_duration(seconds: float) -> str:
    """``"2.0 s"``, ``"59 min 12 s"``, ``"3 h 5 min"``, ``"2 d 4 h"``."""
    s = abs(seconds)
    if s < 10:
        return f"{s:.1f} s"
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60)} s"
    if s < 86400:
        return f"{int(s // 3600)} h {int(s % 3600 // 60)} min"
    return f"{int(s // 86400)} d {int(s % 86400 // 3600)} h"


def format_expiry(token: Token, now: float | None = None) -> str:
    """How long the token still lives, in words."""
    left = token.expires_in(time.time() if now is None else now)
    if left is None:
        return "unknown (the provider gave no lifetime)"
    if left <= 0:
        return f"expired {format_duration(-left)} ago"
    return format_duration(left)


class Console:
    """Stdout and stderr of one command, with every known secret scrubbed.

    Each text a command shows is built from its own words and provider text passed
    through :func:`safe_text`; scrubbing the secrets it knows (client secret, codes,
    tokens, the PKCE verifier) from every line is the second line of defence.
    """

    def __init__(self, out: TextIO, err: TextIO, *, prog: str = "netrex-async") -> None:
        self.out = out
        self.err = err
        self.prog = prog
        self._secrets: set[str] = set()

    def add_secret(self, *values: str | Token | None) -> None:
        """Never show these (a :class:`Token` adds both of its tokens)."""
        for value in values:
            if isinstance(value, Token):
                self.add_secret(value.access_token, value.refresh_token)
            elif value:
                self._secrets.add(value)

    @property
    def secrets(self) -> Iterable[str]:
        """The secrets this console scrubs."""
        return tuple(self._secrets)

    def clean(self, text: str) -> str:
        """``text`` without any known secret."""
        return scrub(text, self._secrets) if self._secrets else text

    def print(self, text: str = "", *, end: str = "\n") -> None:
        """A result line on stdout."""
        self.out.write(self.clean(text) + end)
        self.out.flush()

    def info(self, text: str = "", *, end: str = "\n") -> None:
        """Guidance for the person at the terminal, on stderr."""
        self.err.write(self.clean(text) + end)
        self.err.flush()

    def warn(self, text: str) -> None:
        """A one-line warning on stderr."""
        self.info(f"{self.prog}: warning: {safe_text(self.clean(text), limit=600)}")

    def error(self, text: str) -> None:
        """The one line an expected failure prints on stderr."""
        self.info(f"{self.prog}: error: {safe_text(self.clean(text), limit=800)}")

    def is_tty(self) -> bool:
        """Whether stdout is a terminal (for an updating progress line)."""
        isatty = getattr(self.out, "isatty", None)
        try:
            return bool(isatty and isatty())
        except ValueError:  # closed
            return False


class _ScrubbingFormatter(logging.Formatter):
    def __init__(self, console: Console) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s%(fields)s")
        self._console = console

    def format(self, record: logging.LogRecord) -> str:
        fields = {
            k: v
            for k, v in vars(record).items()
            if k in ("event", "grant", "expires_in", "attempt", "store", "reason", "endpoint")
        }
        record.fields = (" " + " ".join(f"{k}={v}" for k, v in fields.items())) if fields else ""
        return self._console.clean(super().format(record))


class DebugLogging:
    """``--debug``: DEBUG records of the netrex_async loggers on stderr, scrubbed.

    The library never logs a secret; the formatter scrubs the ones the console knows
    anyway. A context manager, so that in-process callers get their loggers back as
    they were.
    """

    def __init__(self, console: Console) -> None:
        self._handler = logging.StreamHandler(console.err)
        self._handler.setFormatter(_ScrubbingFormatter(console))
        self._handler.setLevel(logging.DEBUG)
        self._logger = logging.getLogger("netrex_async")
        self._old_level = self._logger.level

    def __enter__(self) -> DebugLogging:
        self._old_level = self._logger.level
        self._logger.addHandler(self._handler)
        self._logger.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._logger.removeHandler(self._handler)
        self._logger.setLevel(self._old_level)


class _OneLineFormatter(logging.Formatter):
    """``netrex-async: warning: MESSAGE (STORE)``: one scrubbed, escaped line."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self._console = console

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        store = getattr(record, "store", None)
        if store and str(store) not in text:
            text += f" ({store})"
        level = "warning" if record.levelno < logging.ERROR else "error"
        clean = safe_text(self._console.clean(text), limit=600)
        return f"{self._console.prog}: {level}: {clean}"


class _Held(logging.Handler):
    """Keeps ERROR records until the command's outcome is known."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class WarningLogging:
    """Without ``--debug``: the library's WARNING and worse records on stderr, one line each.

    WARNING records are shown at once. An ERROR record comes just before the exception
    that ends the command, whose own error line (with the CLI's advice) says it again:
    so ERROR records are held, and shown only if the command succeeds anyway (the library
    got over it). The library never logs a secret; the console scrubs the ones it knows
    anyway. A context manager, like :class:`DebugLogging`; call :meth:`finish` with the
    outcome before it exits.
    """

    def __init__(self, console: Console) -> None:
        self._handler = logging.StreamHandler(console.err)
        self._handler.setFormatter(_OneLineFormatter(console))
        self._handler.setLevel(logging.WARNING)
        self._handler.addFilter(lambda record: record.levelno < logging.ERROR)
        self._held = _Held()
        self._logger = logging.getLogger("netrex_async")
        self._old_level = self._logger.level

    def __enter__(self) -> WarningLogging:
        self._old_level = self._logger.level
        self._logger.addHandler(self._handler)
        self._logger.addHandler(self._held)
        if self._logger.getEffectiveLevel() > logging.WARNING:
            self._logger.setLevel(logging.WARNING)
        return self

    def finish(self, ok: bool) -> None:
        """Show the held ERROR records if the command succeeded; drop them otherwise."""
        held, self._held.records = self._held.records, []
        if ok:
            for record in held:
                # Past the handler's filter, which keeps ERROR records out while running.
                self._handler.acquire()
                try:
                    self._handler.stream.write(self._handler.format(record) + "\n")
                    self._handler.flush()
                finally:
                    self._handler.release()

    def __exit__(self, *exc_info: object) -> None:
        self._logger.removeHandler(self._handler)
        self._logger.removeHandler(self._held)
        self._logger.setLevel(self._old_level)
