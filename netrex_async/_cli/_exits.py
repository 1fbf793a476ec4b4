"""Exit codes of ``netrex-async``, and how each expected failure maps to one.

==== ==========================================================================
code meaning
==== ==========================================================================
0    success
1    the API answered an error (GraphQL ``errors``, an HTTP error), or a demo check
     failed
2    usage or configuration error: a bad option, a missing client id or redirect URI,
     a redirect URI the loopback receiver cannot serve, a port in use
3    authorization failed or is needed: consent denied, no callback in time, state
     mismatch, a code or refresh token refused, no token stored, re-authorization required
4    network: the provider could not be reached or timed out (after retries)
5    a local file is unusable: corrupt, unreadable or locked token file or config file
70   internal error (a bug: run again with ``--debug`` and report it)
130  interrupted (Ctrl-C)
==== ==========================================================================
"""

from __future__ import annotations

import enum

from .._errors import (
    ApiError,
    AuthorizationDenied,
    InvalidClient,
    NetrexError,
    OAuthError,
    ReauthorizationRequired,
    StateMismatch,
    TokenStoreError,
    TransportError,
)
from .._redact import safe_text

__all__ = ["CliError", "ExitCode", "describe"]


class ExitCode(enum.IntEnum):
    """The process exit status of each kind of outcome."""

    OK = 0
    API_ERROR = 1
    USAGE = 2
    AUTH = 3
    NETWORK = 4
    LOCAL_FILE = 5
    INTERNAL = 70
    INTERRUPTED = 130


class CliError(Exception):
    """An expected failure: one line on stderr and an exit code, no traceback."""

    def __init__(self, message: str, code: ExitCode = ExitCode.USAGE):
        super().__init__(message)
        self.code = code


def describe(exc: BaseException) -> tuple[ExitCode, str]:
    """The exit code and the one-line message for an expected failure.

    Library messages are already free of secrets; they are cut to one line here, with
    control characters shown escaped (they may quote the provider).
    """
    text = safe_text(exc, limit=600)
    if isinstance(exc, CliError):
        return exc.code, text
    if isinstance(exc, AuthorizationDenied):
        return ExitCode.AUTH, text
    if isinstance(exc, StateMismatch):
        return ExitCode.AUTH, f"{text} (was the URL from an older login attempt?)"
    if isinstance(exc, InvalidClient):
        return ExitCode.AUTH, (
            f"{text}; check the client id and NETREX_CLIENT_SECRET of the registered app"
        )
    if isinstance(exc, ReauthorizationRequired):
        hint = "" if "login" in text else "; run `netrex-async login`"
        return ExitCode.AUTH, text + hint
    if isinstance(exc, OAuthError):
        return ExitCode.AUTH, text
    if isinstance(exc, TransportError):
        return ExitCode.NETWORK, f"network: {text}"
    if isinstance(exc, TokenStoreError):
        return ExitCode.LOCAL_FILE, text
    if isinstance(exc, ApiError):
        return ExitCode.API_ERROR, text
    if isinstance(exc, NetrexError):
        return ExitCode.API_ERROR, text
    return ExitCode.INTERNAL, f"internal error: {type(exc).__name__}: {text}"
