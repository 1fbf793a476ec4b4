"""The API client of the commands that call the API: ``query``, ``schema`` and ``collect``.

Each takes a user token (``--user-token``, ``-`` reads it from stdin, else
``NETREX_TOKEN``) or, without one, the stored grant, which goes only to the provider and
app it belongs to (:func:`~netrex_async._cli._context.check_binding`). :func:`api_client`
builds the client either way, once everything is checked and before anything is sent.
"""

from __future__ import annotations

import argparse
from types import TracebackType

import attrs

from .._client import NetrexClient
from .._manager import StaticToken
from .._redact import safe_text
from .._stores._file import FileTokenStore
from ._config import ENV_TOKEN, build_app, provider_of
from ._context import Context, check_binding, load_setup, load_token
from ._exits import CliError

__all__ = ["ApiClient", "add_user_token_option", "api_client", "read_query", "user_token"]

#: The other way, for a command that can use a user token instead of the stored grant.
_OR_A_USER_TOKEN = (
    f"; or use a user token (created in the web UI, </> API): set {ENV_TOKEN}, or pipe "
    "it to --user-token -"
)


def add_user_token_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--user-token`` to a command that calls the API."""
    parser.add_argument(
        "--user-token",
        metavar="TOKEN",
        help="use this user token (web UI, </> API) instead of the stored grant; - reads it "
        "from stdin. Prefer $NETREX_TOKEN: a command line is visible to other users",
    )


def read_query(ctx: Context, value: str) -> str:
    """The GraphQL document given as ``value`` (``-`` reads all of stdin).

    Raises:
        CliError: It is empty, or both it and ``--user-token -`` would be read from stdin.
    """
    if value == "-" and getattr(ctx.args, "user_token", None) == "-":
        raise CliError(
            "the query (GRAPHQL -) and --user-token - cannot both be read from stdin: put "
            f"the token in {ENV_TOKEN}, or pass the query as an argument"
        )
    if value == "-":
        value = ctx.stdin.read()
    if not value.strip():
        raise CliError("the GraphQL query is empty")
    return value


def user_token(ctx: Context) -> str | None:
    """The user token given (``--user-token``, ``-`` reads a line of stdin, else
    ``NETREX_TOKEN``), or ``None`` to use the stored grant.

    The token is registered with the console as a secret, and where it came from with the
    hints (a rejected token's advice names that place).

    Raises:
        CliError: ``--user-token -`` and stdin gave nothing.
    """
    value = getattr(ctx.args, "user_token", None)
    source = "--user-token"
    if value == "-":
        value = ctx.stdin.readline().strip()
        if not value:
            raise CliError("--user-token -: nothing was read from stdin (pipe the token in)")
    if value is None:
        value = ctx.env.get(ENV_TOKEN) or None
        source = ENV_TOKEN
    ctx.console.add_secret(value)
    if value is None:
        return None
    ctx.hints.user_token_from = source
    return str(value)


@attrs.define
class ApiClient:
    """A command's :class:`NetrexClient`, with the token store it borrows (if any).

    ``async with api as client`` enters the client; leaving closes the client, then the
    store. :meth:`aclose` does the same for a client that was never entered.
    """

    client: NetrexClient
    store: FileTokenStore | None = None

    async def __aenter__(self) -> NetrexClient:
        try:
            return await self.client.__aenter__()
        except BaseException:
            await self.aclose()
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client, then the store (each once; safe to call again)."""
        try:
            await self.client.aclose()
        finally:
            if self.store is not None:
                await self.store.aclose()


async def api_client(ctx: Context, *, background: bool = False) -> ApiClient:
    """The client of a command that calls the API, checked before anything is sent.

    With a user token (:func:`user_token`), a client that sends it to the provider in
    force. Otherwise the stored grant's: its token is loaded, and its binding checked
    (with ``--bind``, an unbound grant is bound); its refreshes are saved to the token
    file. ``background`` refreshes the grant ahead of time (a long-running command).

    Raises:
        CliError: The user token or the settings are unusable, no token is stored, or
            the settings name another provider or app than the grant's (nothing sent).
        TokenStoreError: The token file is unusable.
    """
    token = user_token(ctx)
    setup = load_setup(ctx)
    if token is not None:
        try:
            source = StaticToken(token)
        except ValueError as e:
            raise CliError(f"the user token is not usable: {safe_text(e)}") from None
        return ApiClient(NetrexClient(source, provider=provider_of(setup.config)))
    provider_of(setup.config)  # a bad URL given is the first thing to fix
    store = FileTokenStore(setup.token_file)
    try:
        # Then the token: with none stored, that is what to fix, not a missing client id.
        await load_token(store, ctx.console, or_else=_OR_A_USER_TOKEN)
        app = build_app(setup.config, setup.secret, login=False)
        check_binding(ctx, setup)
    except BaseException:
        await store.aclose()
        raise
    return ApiClient(NetrexClient.from_app(app, store, background=background), store)
