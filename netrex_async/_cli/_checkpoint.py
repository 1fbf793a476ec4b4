"""The checkpoint of ``netrex-async collect``: a file (one host) or a Redis URL (a fleet).

``--checkpoint`` (or ``$NETREX_CHECKPOINT``) is a file path, unless it starts with one of
the schemes :class:`~netrex_async.stores.redis.RedisCheckpoint` takes; then the cursor
and the lock of the one active collector are in Redis, under ``--checkpoint-key``, with
a lease of ``--lease`` seconds.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, urlsplit

from .._checkpoints import Checkpoint, FileCheckpoint
from .._errors import ExtraRequired, install_hint
from .._redact import safe_text
from ._context import Context
from ._exits import CliError

__all__ = ["ENV_CHECKPOINT", "REDIS_SCHEMES", "StandbyNotes", "open_checkpoint"]

#: Where ``--checkpoint`` comes from when it is not given (keeps a Redis password out of
#: the process list).
ENV_CHECKPOINT = "NETREX_CHECKPOINT"
#: What makes ``--checkpoint`` a Redis URL rather than a file path.
REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "redis+sentinel://")


def _url_secrets(url: str) -> list[str]:
    """The password (and user name) in a Redis URL, sentinel credentials included."""
    try:
        parts = urlsplit(url)
        found = [parts.password or "", parts.username or ""]
    except ValueError:
        return []
    found += [v for k, v in parse_qsl(parts.query) if "password" in k or "username" in k]
    return [s for s in found if s]


def open_checkpoint(ctx: Context) -> Checkpoint:
    """The checkpoint ``--checkpoint`` names, not opened yet (its ``async with`` opens it).

    Raises:
        CliError: No checkpoint was given, the options do not go together, the URL is
            not a Redis URL, or redis-py is not installed (the ``redis`` extra).
    """
    args = ctx.args
    value: str | None = args.checkpoint or ctx.env.get(ENV_CHECKPOINT) or None
    if value is None:
        raise CliError(f"collect needs --checkpoint FILE or URL (or ${ENV_CHECKPOINT})")
    if not value.lower().startswith(REDIS_SCHEMES):
        if args.checkpoint_key is not None or args.lease is not None:
            raise CliError(
                "--checkpoint-key and --lease go with a Redis checkpoint (--checkpoint "
                "redis://...); a file checkpoint has neither"
            )
        return FileCheckpoint(value)
    ctx.console.add_secret(*_url_secrets(value))
    if not args.checkpoint_key:
        raise CliError(
            "a Redis checkpoint needs --checkpoint-key KEY: the name of the stream, the "
            "same for every collector of it"
        )
    try:
        from ..stores.redis import RedisCheckpoint
    except ExtraRequired:
        raise CliError(
            "a Redis checkpoint needs redis-py, which is not installed: "
            f"{install_hint('redis')}; or give --checkpoint a file"
        ) from None
    options = {} if args.lease is None else {"lock_expiry": args.lease}
    try:
        return RedisCheckpoint(value, key=args.checkpoint_key, **options)
    except (ValueError, TypeError) as e:  # the message never quotes the URL
        raise CliError(f"--checkpoint: {safe_text(e)}") from None


class StandbyNotes(logging.Handler):
    """Says on stderr when this collector waits as a standby and when it takes over (the
    ``checkpoint.standby`` and ``checkpoint.taken_over`` records): which of a fleet's
    collectors is the active one shows in each one's log."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(logging.INFO)
        self._console = ctx.console

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "event", None) in ("checkpoint.standby", "checkpoint.taken_over"):
            self._console.info(f"collect: {record.getMessage()}")
