"""``netrex-async schema``: the provider's schema as SDL (or introspection JSON)."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import secrets
import stat
from pathlib import Path
from typing import Any

from .._errors import ExtraRequired
from .._schema_fetch import INSTALL_HINT
from ._api_client import add_user_token_option, api_client
from ._context import Context
from ._exits import CliError, ExitCode
from ._output import json_text

__all__ = ["add_schema_parser", "cmd_schema"]

# What a terminal acts on (C0 controls but tab and newline, DEL, C1, bidi overrides): shown
# escaped when stdout is a terminal; a file or a pipe gets the SDL exactly.
_UNSAFE_ON_TTY = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def add_schema_parser(
    sub: argparse._SubParsersAction[Any],
    parents: list[argparse.ArgumentParser],
) -> None:
    """Add the ``schema`` command to the CLI's subparsers."""
    schema = sub.add_parser(
        "schema",
        parents=parents,
        help="print or save the API's schema (SDL, or introspection JSON)",
        description=(
            "Fetch the GraphQL schema by the standard introspection query, with the stored "
            "grant (refreshed as needed) or a user token, and print it as SDL, or write it "
            "to a file. SDL needs graphql-core (the graphql extra); --json does not."
        ),
    )
    schema.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write the schema to FILE (atomically) instead of printing it",
    )
    schema.add_argument(
        "--json",
        action="store_true",
        help="the introspection result as JSON (what ariadne-codegen and gql also read)",
    )
    add_user_token_option(schema)


async def cmd_schema(ctx: Context) -> int:
    """Fetch the schema; print it or write it to ``--output``."""
    args, console = ctx.args, ctx.console
    api = await api_client(ctx)
    try:
        async with api as client:
            if args.json:
                text = json_text(await client.schema(as_json=True)) + "\n"
            else:
                text = await client.schema()
    except ExtraRequired:
        raise CliError(
            "printing the schema as SDL needs graphql-core, which is not installed: "
            f"{INSTALL_HINT}; or run `netrex-async schema --json` for the introspection JSON"
        ) from None
    if args.output is None:
        if console.is_tty():
            text = _UNSAFE_ON_TTY.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
        console.print(text, end="")
        return ExitCode.OK
    path = Path(args.output)
    write_atomically(path, text.encode("utf-8"))
    what = "introspection JSON" if args.json else "schema"
    console.info(f"Wrote the {what} of {client.provider.base_url} to {path}.")
    return ExitCode.OK


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    A reader sees the old file or the new one, never half of one. A file that exists keeps
    its permissions; a new one gets 0644 less the umask, like any new file.

    Raises:
        CliError: The folder is missing or not writable (exit code 5).
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            mode = None
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        with os.fdopen(os.open(tmp, flags, 0o644), "wb") as f:
            if mode is not None and os.name == "posix":
                os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise CliError(
            f"cannot write {path}: {e.strerror or type(e).__name__}", ExitCode.LOCAL_FILE
        ) from None
