"""``netrex-async``: log in, inspect and use a stored grant, and run the demo.

Commands: ``login``, ``status``, ``refresh``, ``revoke``, ``query``, ``schema``,
``collect``, ``demo`` and ``fake-server``. Each expected failure prints one line on
stderr and exits with the code documented in :mod:`netrex_async._cli._exits`;
``--debug`` logs the whole story (still without secrets).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import os
import sys
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, NoReturn, TextIO

from .._errors import NetrexError
from ._api_client import add_user_token_option
from ._collect import add_collect_parser, cmd_collect
from ._commands import Context, cmd_login, cmd_query, cmd_refresh, cmd_revoke, cmd_status
from ._exits import TESTING_EXTRA, CliError, ExitCode, describe
from ._login import Opener
from ._output import Console, DebugLogging, WarningLogging
from ._schema import add_schema_parser, cmd_schema

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

__all__ = ["amain", "build_parser", "main"]

PROG = "netrex-async"

_console: contextvars.ContextVar[Console | None] = contextvars.ContextVar(
    "netrex_cli_console", default=None
)


class _Exit(Exception):
    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that writes to the command's console and never calls sys.exit."""

    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        if not message:
            return
        console = _console.get()
        if console is None:
            super()._print_message(message, file)
        elif file is None or file is sys.stderr:
            console.info(message, end="")
        else:
            console.print(message, end="")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            self._print_message(message, sys.stderr)
        raise _Exit(status)

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        command = self.prog.removeprefix(PROG).strip()
        raise CliError(f"{command}: {message}" if command else message)


_EXIT_CODES = """\
exit codes:
  0    success
  1    the API answered an error (GraphQL errors, HTTP error); a demo check failed
  2    usage or configuration error
  3    authorization failed or needed (denied, timeout, state mismatch, no token stored,
       re-authorization required)
  4    network: the provider could not be reached
  5    a local file is unusable (corrupt or unreadable token or config file; collect:
       the output cannot be written, the checkpoint's lock was lost)
  65   collect: the checkpoint is corrupt (left as it is; restarting cannot help)
  70   internal error (run again with --debug, please report it)
  130  interrupted
  141  stdout was closed early (e.g. `| head`): ended quietly
"""

_ENVIRONMENT = """\
environment:
  NETREX_PROVIDER       provider base URL (default https://system2.netrex.cz)
  NETREX_CLIENT_ID      the OAuth2 app's client id
  NETREX_CLIENT_SECRET  its client secret (never written to disk by this tool)
  NETREX_REDIRECT_URI   its registered redirect URI
  NETREX_TOKEN_FILE     where the token is stored
  NETREX_TOKEN          a user token (web UI, </> API) for query, schema and collect
Flags win over the environment, which wins over what `login` saved next to the token.
"""


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    if not seconds > 0 or seconds != seconds or seconds == float("inf"):
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``netrex-async``."""
    from .._version import __version__

    formatter = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog=PROG,
        description=(
            "Log in to Netrex / Survilla Cloud with OAuth2, keep the token fresh, query the\n"
            "GraphQL API or follow its camera events, or watch the whole library work\n"
            "against a fake provider (demo)."
        ),
        epilog=_ENVIRONMENT + "\n" + _EXIT_CODES,
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="log every step to stderr (secrets stay hidden)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    debug_only = _Parser(add_help=False)
    debug_only.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    common = _Parser(add_help=False, parents=[debug_only])
    common.add_argument(
        "--token-file",
        metavar="PATH",
        help="the token file (default: $NETREX_TOKEN_FILE, else token.json in the user "
        "data directory)",
    )
    app_title = "app settings (default: environment, then saved by login)"

    def add_where(group: argparse._ArgumentGroup) -> None:
        group.add_argument(
            "--provider", metavar="URL", help="provider base URL, no path ($NETREX_PROVIDER)"
        )
        group.add_argument("--client-id", metavar="ID", help="$NETREX_CLIENT_ID")

    where = _Parser(add_help=False)  # where the grant goes: all that status needs
    add_where(where.add_argument_group(app_title))

    def app_options(*, login: bool) -> _Parser:
        parser = _Parser(add_help=False)
        group = parser.add_argument_group(app_title)
        add_where(group)
        group.add_argument(
            "--client-secret-file",
            metavar="PATH",
            help="read the client secret from this file (else $NETREX_CLIENT_SECRET)",
        )
        # Only login's authorization request and code exchange use these three: the other
        # commands accept them (scripts pass them along) without listing them.
        group.add_argument(
            "--redirect-uri",
            metavar="URI",
            help="$NETREX_REDIRECT_URI" if login else argparse.SUPPRESS,
        )
        group.add_argument(
            "--grant-type-name",
            choices=("authorization_code", "auth_code"),
            default=None,
            help="the code grant's name at your provider (default authorization_code)"
            if login
            else argparse.SUPPRESS,
        )
        group.add_argument(
            "--credentials-in",
            choices=("query", "body"),
            default=None,
            help="token request parameters in the URL (documented, default) or a form body",
        )
        group.add_argument(
            "--pkce",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="add a PKCE challenge to the authorization request (default off)"
            if login
            else argparse.SUPPRESS,
        )
        return parser

    login_opts, app_opts = app_options(login=True), app_options(login=False)
    bind = _Parser(add_help=False)
    bind.add_argument(
        "--bind",
        action="store_true",
        help="for a token file that does not record its provider (not written by login): "
        "record that it belongs to the provider and client id given now",
    )

    login = sub.add_parser(
        "login",
        parents=[common, login_opts],
        help="authorize the app in a browser and store the token",
        description=(
            "Authorize the app: open the provider's consent page, receive the callback on a "
            "loopback receiver at the registered redirect URI (http://127.0.0.1:PORT/...), "
            "exchange the code and store the token. --paste works without a local browser."
        ),
    )
    login.add_argument(
        "--scope", default="read", help="rights, comma-separated (default: read), e.g. read,events"
    )
    mode = login.add_mutually_exclusive_group()
    mode.add_argument(
        "--no-browser", action="store_true", help="print the URL instead of opening a browser"
    )
    mode.add_argument(
        "--paste",
        action="store_true",
        help="print the URL, then read the redirected URL from stdin (no local receiver)",
    )
    mode.add_argument(
        "--browser-command",
        metavar="CMD",
        help="open the URL with CMD (the URL is appended, or replaces {url})",
    )
    login.add_argument(
        "--timeout",
        type=_seconds,
        default=300.0,
        metavar="S",
        help="seconds to wait for the callback (default: 300)",
    )
    login.add_argument(
        "--any-port",
        action="store_true",
        help="if the redirect URI has no port, listen on a free one (only for providers that "
        "accept any port on loopback redirect URIs, RFC 8252)",
    )
    login.add_argument(
        "--allow-unknown-scope",
        action="store_true",
        help="ask for rights this tool does not know (your provider may have more)",
    )
    login.add_argument(
        "--revoke-old",
        action="store_true",
        help="revoke the grant stored before, once the new one is stored",
    )
    login.add_argument(
        "--overwrite-corrupt",
        action="store_true",
        help="replace a corrupt token file (it is kept and reported otherwise)",
    )

    status = sub.add_parser(
        "status",
        parents=[common, where],
        help="show the stored token (no secret, no network)",
        description=(
            "Show what is stored: the provider and app the grant belongs to, scopes, expiry, "
            "whether it can be refreshed. With --provider or --client-id (or their variables), "
            "it also says whether the other commands would refuse the grant for those settings."
        ),
    )
    status.add_argument("--json", action="store_true", help="print JSON for scripts")

    sub.add_parser(
        "refresh",
        parents=[common, app_opts, bind],
        help="refresh the stored token now",
        description="Refresh the stored grant now and save the new token.",
    )

    revoke = sub.add_parser(
        "revoke",
        parents=[common, app_opts, bind],
        help="revoke the grant at the provider and delete the stored token",
        description="Revoke the stored grant at the provider, then delete the token file.",
    )
    revoke.add_argument(
        "--force",
        action="store_true",
        help="delete the stored token even if the provider cannot be reached or refuses, "
        "or the token file is corrupt",
    )

    query = sub.add_parser(
        "query",
        parents=[common, app_opts, bind],
        help="run a GraphQL query and print the data as JSON",
        description=(
            "Run a GraphQL operation with the stored grant (refreshed as needed) or a user "
            "token, and print its data as JSON. GraphQL errors go to stderr (exit code 1)."
        ),
    )
    query.add_argument("query", metavar="GRAPHQL", help="the document, or - to read stdin")
    query.add_argument("--variables", metavar="JSON", help="variables as a JSON object")
    query.add_argument("--operation-name", metavar="NAME", help="the operation to run")
    add_user_token_option(query)
    query.add_argument("--compact", action="store_true", help="print JSON on one line")
    add_schema_parser(sub, [common, app_opts, bind])
    add_collect_parser(sub, [common, app_opts, bind])

    demo = sub.add_parser(
        "demo",
        parents=[debug_only],
        help="see the whole library work against a fake provider (under a minute)",
        description=(
            "Start a fake provider on loopback, log in through the real flow, run thousands "
            "of concurrent queries across several short token lifetimes, check the result "
            "(no failure, one refresh per lifetime), revoke."
        ),
    )
    demo.add_argument(
        "--tasks", type=int, default=1000, metavar="N", help="concurrent tasks (default: 1000)"
    )
    demo.add_argument(
        "--connections",
        type=int,
        default=100,
        metavar="N",
        help="HTTP connections the tasks share (default: 100)",
    )
    demo.add_argument(
        "--duration",
        type=_seconds,
        default=12.0,
        metavar="S",
        help="seconds of traffic (default: 12)",
    )
    demo.add_argument(
        "--lifetime",
        type=_seconds,
        default=2.0,
        metavar="S",
        help="access token lifetime in seconds (default: 2)",
    )
    demo.add_argument("--json", action="store_true", help="print the summary as JSON")
    demo.add_argument(
        "--collector",
        action="store_true",
        help="instead: `netrex-async collect` SIGKILLed and restarted while events keep "
        "coming; counts events produced, collected, missing (must be 0) and duplicated",
    )
    demo.add_argument(
        "--kills",
        type=int,
        default=5,
        metavar="N",
        help="with --collector: how many kills, 1 to 100 (default: 5)",
    )

    sub.add_parser(
        "fake-server",
        add_help=False,
        help="run the fake provider standalone (options: fake-server --help)",
    )
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    for arg in argv:
        if not arg.startswith("-"):
            return arg
    return None


async def _demo(ctx: Context) -> int:
    if ctx.args.collector:
        from ._collect_demo import run_collect_demo

        return await run_collect_demo(ctx)
    from ._demo import run_demo

    return await run_demo(ctx)


_COMMANDS: Mapping[str, Callable[[Context], Awaitable[int]]] = {
    "login": cmd_login,
    "status": cmd_status,
    "refresh": cmd_refresh,
    "revoke": cmd_revoke,
    "query": cmd_query,
    "schema": cmd_schema,
    "collect": cmd_collect,
    "demo": _demo,
}


async def amain(
    argv: Sequence[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    opener: Opener | None = None,
) -> int:
    """Run one command in the running event loop; return its exit code.

    The streams, the environment and the browser can be replaced (tests script them).

    Raises:
        BrokenPipeError: Stdout's reader went away; :func:`main` ends quietly (141).
    """
    console = Console(stdout or sys.stdout, stderr or sys.stderr, prog=PROG)
    argv = list(sys.argv[1:] if argv is None else argv)
    token = _console.set(console)
    try:
        try:
            args = build_parser().parse_args(argv)
        except _Exit as e:
            return e.status
        except CliError as e:
            console.error(str(e))
            return e.code
    finally:
        _console.reset(token)
    if args.command == "fake-server":
        console.error("fake-server runs from the command line only")
        return ExitCode.USAGE
    ctx = Context(
        args=args,
        env=os.environ if env is None else env,
        console=console,
        stdin=stdin or sys.stdin,
        opener=opener,
    )
    # --debug: the whole story; otherwise the library's warnings, one line each.
    logs = DebugLogging(console) if args.debug else WarningLogging(console)
    with logs:
        code = await _run(ctx, args.command, args.debug)
        if isinstance(logs, WarningLogging):
            logs.finish(ok=code == ExitCode.OK)
        return code


async def _run(ctx: Context, command: str, debug: bool) -> int:
    console = ctx.console
    try:
        return await _COMMANDS[command](ctx)
    except BrokenPipeError:
        raise  # the reader of stdout went away: main() ends quietly
    except (CliError, NetrexError) as e:
        code, text = describe(e, ctx.hints)
        if debug and not isinstance(e, CliError):
            console.info(console.clean("".join(traceback.format_exception(e))), end="")
        console.error(text)
        return code
    except Exception as e:
        code, text = describe(e, ctx.hints)
        if debug:
            console.info(console.clean("".join(traceback.format_exception(e))), end="")
            console.error(text)
        else:
            console.error(f"{text} (run again with --debug for the details)")
        return code


def _fake_server(argv: list[str]) -> int:
    index = argv.index("fake-server")
    try:
        from ..testing._main import main as fake_main
    except ImportError as e:  # pragma: no cover - depends on the installation
        sys.stderr.write(f"{PROG}: error: the fake provider is not available: {e}\n")
        return ExitCode.USAGE
    try:
        return fake_main(argv[index + 1 :], prog=f"{PROG} fake-server")
    except ImportError:
        sys.stderr.write(f"{PROG}: error: the fake provider needs graphql-core: {TESTING_EXTRA}\n")
        return ExitCode.USAGE


def _stdout_gone() -> int:
    """Stdout's reader went away (``| head``): end quietly, as Unix tools do.

    Python would report the pipe again when it flushes stdout at exit: point stdout at
    /dev/null first. The status is 141 (128 + SIGPIPE), what a shell shows for a tool
    that SIGPIPE ended.
    """
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return ExitCode.BROKEN_PIPE


def main(argv: Sequence[str] | None = None) -> int:
    """The console script: run one command; return its exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if _command_of(args) == "fake-server":
        return _fake_server(args)
    try:
        return asyncio.run(amain(args))
    except KeyboardInterrupt:
        sys.stderr.write(f"\n{PROG}: interrupted\n")
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        return _stdout_gone()
