"""Exit codes of ``netrex-async``, and how each expected failure maps to one.

==== ==========================================================================
code meaning
==== ==========================================================================
0    success
1    the API answered an error (GraphQL ``errors``, an HTTP error), or a demo check
     failed
2    usage or configuration error: a bad option, a missing client id or redirect URI,
     a redirect URI the loopback receiver cannot serve, a port in use, a password or
     user name Redis refuses (``--checkpoint``)
3    authorization failed or is needed: consent denied, no callback in time, state
     mismatch, a code or refresh token refused, no token stored, re-authorization required
4    network: the provider could not be reached or timed out (after retries)
5    a local file is unusable: corrupt, unreadable or locked token file or config file
     (``collect``: also the output cannot be written, or the checkpoint's lock was lost)
65   ``collect``: the checkpoint is corrupt, left as it is for a person to look at (a
     restart cannot help: a service manager should not restart on it)
70   internal error (a bug: run again with ``--debug`` and report it)
130  interrupted (Ctrl-C)
141  stdout was closed before the output was written (``| head``): ended quietly,
     without a message (128 + SIGPIPE, as a shell shows for tools SIGPIPE ended)
==== ==========================================================================
"""

from __future__ import annotations

import enum

import attrs

from .._checkpoints import _CorruptCheckpoint
from .._errors import (
    ApiError,
    AuthorizationDenied,
    InvalidClient,
    NetrexError,
    OAuthError,
    ReauthorizationRequired,
    StateMismatch,
    TokenStoreConfigError,
    TokenStoreError,
    TransportError,
)
from .._redact import safe_text
from .._stores._file import _CorruptFile

__all__ = ["TESTING_EXTRA", "CliError", "ExitCode", "Hints", "corrupt_file_advice", "describe"]

#: How to get the fake provider (``testing`` extra), from a clone or from an index.
TESTING_EXTRA = (
    "install the testing extra: pip install -e '.[testing]' in a clone of netrex_async, "
    "or pip install 'netrex-async[testing]'"
)


class ExitCode(enum.IntEnum):
    """The process exit status of each kind of outcome."""

    OK = 0
    API_ERROR = 1
    USAGE = 2
    AUTH = 3
    NETWORK = 4
    LOCAL_FILE = 5
    #: sysexits' EX_DATAERR: the data is wrong, and running again does not change it.
    CORRUPT_CHECKPOINT = 65
    INTERNAL = 70
    INTERRUPTED = 130
    BROKEN_PIPE = 141


class CliError(Exception):
    """An expected failure: one line on stderr and an exit code, no traceback."""

    def __init__(self, message: str, code: ExitCode = ExitCode.USAGE):
        super().__init__(message)
        self.code = code


@attrs.define
class Hints:
    """What a command knows that makes the advice of a failure usable with the CLI."""

    #: Where the client secret came from (``--client-secret-file PATH`` or the variable).
    secret_from: str = "NETREX_CLIENT_SECRET"
    #: Where the user token came from (``NETREX_TOKEN``, ``--user-token``), if one is used.
    user_token_from: str | None = None


#: What fixes a corrupt token file, in the CLI's words.
_CORRUPT_ADVICE = (
    "inspect it, then either log in again with `netrex-async login --overwrite-corrupt` "
    "(replaces it) or delete it with `netrex-async revoke --force`"
)


def corrupt_file_advice(exc: _CorruptFile) -> str:
    """The store's own words about a corrupt file, with the CLI's advice instead of its API's."""
    # The store's text advises Python calls (clear(), overwrite_corrupt=True) after "It was
    # left as it is"; keep what went wrong, say what to run.
    what = safe_text(exc, limit=600).split(" It was left as it is", 1)[0].rstrip(". ")
    return f"{what}. It was left as it is: {_CORRUPT_ADVICE}"


def _corrupt_checkpoint_advice(exc: _CorruptCheckpoint) -> str:
    """The checkpoint's own words, with the CLI's advice instead of ``clear()``."""
    what = safe_text(exc, limit=600).split(" It was left as it is", 1)[0].rstrip(". ")
    return (
        f"{what}. It was left as it is (a collector never starts again from the beginning "
        "by itself): inspect it, then fix it, or delete it (the file; with a Redis "
        "checkpoint, its key) to start from the beginning"
    )


def _user_token_advice(source: str) -> str:
    if source == "NETREX_TOKEN":
        return (
            "set NETREX_TOKEN to a new user token, or unset NETREX_TOKEN to use the grant "
            "stored by `netrex-async login`"
        )
    return f"pass a new user token to {source}"


def describe(exc: BaseException, hints: Hints | None = None) -> tuple[ExitCode, str]:
    """The exit code and the one-line message for an expected failure.

    Library messages are already free of secrets; they are cut to one line here, with
    control characters shown escaped (they may quote the provider). Advice is given in
    the CLI's terms (flags, variables, commands), using ``hints`` where it depends on
    where a setting came from.
    """
    hints = hints or Hints()
    text = safe_text(exc, limit=600)
    if isinstance(exc, CliError):
        return exc.code, text
    if isinstance(exc, _CorruptFile):
        return ExitCode.LOCAL_FILE, corrupt_file_advice(exc)
    if isinstance(exc, _CorruptCheckpoint):
        return ExitCode.CORRUPT_CHECKPOINT, _corrupt_checkpoint_advice(exc)
    if isinstance(exc, AuthorizationDenied):
        return ExitCode.AUTH, text
    if isinstance(exc, StateMismatch):
        return ExitCode.AUTH, f"{text} (was the URL from an older login attempt?)"
    if isinstance(exc, InvalidClient):
        return ExitCode.AUTH, (
            f"{text}; check the client id (--client-id, NETREX_CLIENT_ID) and the client "
            f"secret ({hints.secret_from}) of the registered app"
        )
    if isinstance(exc, ReauthorizationRequired):
        if hints.user_token_from is not None:
            return ExitCode.AUTH, f"{text}; {_user_token_advice(hints.user_token_from)}"
        hint = "" if "login" in text else "; run `netrex-async login`"
        return ExitCode.AUTH, text + hint
    if isinstance(exc, OAuthError):
        return ExitCode.AUTH, text
    if isinstance(exc, TransportError):
        return ExitCode.NETWORK, f"network: {text}"
    if isinstance(exc, TokenStoreConfigError):
        return ExitCode.USAGE, text  # a wrong Redis password: fix the URL, do not retry
    if isinstance(exc, TokenStoreError):
        return ExitCode.LOCAL_FILE, text
    if isinstance(exc, ApiError):
        return ExitCode.API_ERROR, text
    if isinstance(exc, NetrexError):
        return ExitCode.API_ERROR, text
    return ExitCode.INTERNAL, f"internal error: {type(exc).__name__}: {text}"
