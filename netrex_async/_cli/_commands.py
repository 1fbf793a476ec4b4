"""The commands that work on a stored grant: login, status, refresh, revoke, query."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import attrs

from .._errors import GraphQLError, OAuthError, TokenEndpointError, TransportError
from .._manager import TokenManager
from .._oauth import OAuth2Client
from .._oauth_protocol import OAuth2App
from .._provider import Provider
from .._redact import safe_text
from .._scope import Scope
from .._stores._file import FileTokenStore, _CorruptFile
from .._token import Token
from ._api_client import api_client, read_query
from ._config import (
    ENV_CLIENT_SECRET,
    Binding,
    build_app,
    origin_of,
    provider_of,
    save_config,
    setting_source,
)
from ._context import Context, Setup, check_binding, load_setup, load_token
from ._exits import CliError, ExitCode, corrupt_file_advice, describe
from ._login import (
    browser_command_opener,
    browser_login,
    paste_login,
    probe_provider,
    system_browser,
)
from ._output import format_expiry, json_text

__all__ = [
    "Context",
    "cmd_login",
    "cmd_query",
    "cmd_refresh",
    "cmd_revoke",
    "cmd_status",
]


def _expiry_line(token: Token) -> str:
    refresh = (
        "refreshable: the grant has a refresh token"
        if token.can_refresh
        else "temporary grant: no refresh token, log in again when it expires"
    )
    return f"{format_expiry(token)} ({refresh})"


def _scopes_text(token: Token) -> str:
    return ", ".join(safe_text(s, limit=64) for s in token.scopes) or "(not reported)"


# -- login ------------------------------------------------------------------------------


def _parse_scopes(value: str, *, allow_unknown: bool) -> str:
    """``--scope`` as the provider's parameter, with errors in the CLI's words."""
    known = ", ".join(s.value for s in Scope)
    names = [n for n in value.replace(" ", ",").split(",") if n.strip()]
    for name in names:
        try:
            Scope.parse(name, allow_unknown=allow_unknown)
        except ValueError as e:
            if "unknown" not in str(e):
                raise CliError(f"--scope: {safe_text(e)}") from None
            raise CliError(
                f"--scope: unknown scope {safe_text(name.strip(), limit=64)!r} (known: {known}); "
                "check the spelling, or pass --allow-unknown-scope to ask for it anyway"
            ) from None
    scopes = Scope.to_param(Scope.parse(value, allow_unknown=allow_unknown))
    if not scopes:
        raise CliError("--scope: ask for at least one right, e.g. --scope read")
    return scopes


def _is_live(token: Token) -> bool:
    left = token.expires_in()
    return token.can_refresh or left is None or left > 0


async def _load_previous(ctx: Context, store: FileTokenStore) -> Token | None:
    """The token stored before this login (a corrupt file only with --overwrite-corrupt)."""
    try:
        previous = await store.load()
    except _CorruptFile as e:
        if not ctx.args.overwrite_corrupt:
            raise
        ctx.console.warn(
            corrupt_file_advice(e).split(". It was left", 1)[0]
            + "; it will be replaced (--overwrite-corrupt)"
        )
        return None
    ctx.console.add_secret(previous)
    return previous


async def _revoke_previous(
    ctx: Context, previous: Token, bound: Binding | None, app: OAuth2App
) -> None:
    """--revoke-old: revoke the replaced grant at the provider it belongs to."""
    console = ctx.console
    if bound is None:
        console.warn(
            f"the grant stored before ({previous.fingerprint}) was not revoked: the token file "
            "did not record its provider"
        )
        return
    # Only its own provider gets it, and only the access token (no client secret).
    old_app = OAuth2App(
        client_id=bound.client_id,
        client_secret=None,
        redirect_uri=app.redirect_uri,
        provider=Provider(bound.provider),
    )
    try:
        async with OAuth2Client(old_app) as oauth:
            await oauth.revoke(previous)
    except (OAuthError, TransportError) as e:
        console.warn(
            f"the grant stored before ({previous.fingerprint}) could not be revoked at "
            f"{bound.provider}: {safe_text(e, limit=300)}"
        )
        return
    console.info(f"Revoked the grant stored before ({previous.fingerprint}) at {bound.provider}.")


async def cmd_login(ctx: Context) -> int:
    """Authorize the app in a browser (or by pasting), and store the token."""
    args, console = ctx.args, ctx.console
    setup = load_setup(ctx)
    app = build_app(setup.config, setup.secret)
    scopes = _parse_scopes(args.scope, allow_unknown=args.allow_unknown_scope)
    if args.timeout <= 0:
        raise CliError("--timeout must be more than 0 seconds")
    async with FileTokenStore(setup.token_file) as store:
        # Before the browser: a corrupt or unusable token file fails now, not after consent.
        previous = await _load_previous(ctx, store)
        # And a mistyped provider host fails in seconds, not after the whole timeout.
        await probe_provider(app.provider)
        live = previous if previous is not None and _is_live(previous) else None
        if live is not None and not args.revoke_old:
            console.info(
                f"A grant is stored already ({live.fingerprint}); this login replaces it in "
                f"{setup.token_file.name}, but it stays valid at the provider. Pass "
                "--revoke-old to revoke it once the new one is stored (or Ctrl-C and run "
                "`netrex-async revoke`)."
            )
        if setup.secret is None:
            console.warn(
                f"no client secret ({ENV_CLIENT_SECRET} is not set): the provider grants "
                "temporary access only, without a refresh token"
            )
        if args.paste:
            async with OAuth2Client(app) as oauth:
                token = await paste_login(
                    oauth,
                    scopes,
                    console=console,
                    stdin=ctx.stdin,
                    within=args.timeout,
                    allow_unknown_scopes=args.allow_unknown_scope,
                )
        else:
            opener = ctx.opener
            if opener is None and not args.no_browser:
                opener = (
                    browser_command_opener(args.browser_command)
                    if args.browser_command
                    else system_browser
                )
            token, app = await browser_login(
                app,
                scopes,
                console=console,
                opener=opener,
                within=args.timeout,
                any_port=args.any_port,
                allow_unknown_scopes=args.allow_unknown_scope,
            )
        # Unbound while the token file changes: a crash in between leaves a grant that is
        # sent nowhere, never one bound to the wrong provider.
        _unbind(setup)
        async with store.lock():
            await store.save(token, overwrite_corrupt=args.overwrite_corrupt)
    binding = Binding(app.provider.base_url, app.client_id)
    save_config(setup.config_file, attrs.evolve(setup.config, bound=binding))
    console.print(f"Logged in to {app.provider.base_url} as app {safe_text(app.client_id)}.")
    console.print(f"  scopes      {_scopes_text(token)}")
    console.print(f"  expires in  {_expiry_line(token)}")
    console.print(f"  grant       {token.fingerprint} (fingerprint)")
    console.print(f"  token file  {setup.token_file}")
    if live is not None and live.fingerprint != token.fingerprint:
        if args.revoke_old:
            await _revoke_previous(ctx, live, setup.config.bound, app)
        else:
            console.info(
                f"The grant stored before ({live.fingerprint}) was replaced; it is still "
                "valid at the provider until it expires or is revoked there (next time, "
                "`login --revoke-old` revokes it)."
            )
    return ExitCode.OK


# -- status -----------------------------------------------------------------------------


#: The commands that send the stored grant to its provider.
_USERS = "query, schema, collect, refresh and revoke"


def _mismatch(ctx: Context, setup: Setup) -> str | None:
    """Why the commands that send the stored grant would refuse it with these settings."""
    bound = setup.config.bound
    if bound is None:
        return f"the token file does not record its provider: {_USERS} need --bind"
    want_provider = origin_of(setup.config.provider)
    if bound.provider != want_provider:
        return (
            f"{setting_source(ctx.args, ctx.env, 'provider')} names {safe_text(want_provider)}: "
            f"{_USERS} refuse to send this grant there"
        )
    if setup.config.client_id and bound.client_id != setup.config.client_id:
        return (
            f"{setting_source(ctx.args, ctx.env, 'client_id')} names app "
            f"{safe_text(setup.config.client_id)}: {_USERS} refuse this grant"
        )
    return None


def _status_dict(ctx: Context, setup: Setup, token: Token | None) -> dict[str, Any]:
    now = time.time()
    bound = setup.config.bound if token is not None else None
    out: dict[str, Any] = {
        "token_file": str(setup.token_file),
        "config_file": str(setup.config_file),
        "provider": bound.provider if bound else setup.config.provider,
        "client_id": bound.client_id if bound else setup.config.client_id,
        "redirect_uri": setup.config.redirect_uri,
        "grant_type_name": setup.config.grant_type_name,
        "credentials_in": setup.config.credentials_in,
        "pkce": setup.config.use_pkce,
        "client_secret_set": setup.secret is not None,
        "stored": token is not None,
    }
    if token is not None:
        left = token.expires_in(now)
        out.update(
            {
                "scopes": list(token.scopes),
                "issued_at": token.issued_at,
                "expires_at": token.expires_at,
                "expires_in": None if left is None else round(left, 3),
                "expired": left is not None and left <= 0,
                "can_refresh": token.can_refresh,
                "bound": bound is not None,
                "refused": _mismatch(ctx, setup),
                "grant_fingerprint": token.fingerprint,
                "access_token_fingerprint": token.access_fingerprint,
            }
        )
    return out


async def cmd_status(ctx: Context) -> int:
    """Show what is stored, without any secret and without the network."""
    console = ctx.console
    setup = load_setup(ctx)
    async with FileTokenStore(setup.token_file) as store:
        token = await store.load()
    console.add_secret(token)
    info = _status_dict(ctx, setup, token)
    if ctx.args.json:
        console.print(json_text(info))
        return ExitCode.OK if token is not None else ExitCode.AUTH
    if token is None:
        console.print(f"No token stored in {setup.token_file}.")
        console.print("Run `netrex-async login` to authorize.")
        return ExitCode.AUTH
    console.print(f"token file   {setup.token_file}")
    provider = safe_text(info["provider"])
    console.print(f"provider     {provider}" + ("" if info["bound"] else " (not recorded)"))
    console.print(f"client id    {safe_text(info['client_id'] or '(unknown)')}")
    console.print(f"scopes       {_scopes_text(token)}")
    console.print(f"expires in   {format_expiry(token)}")
    if token.can_refresh:
        refresh = "possible (the grant has a refresh token)"
        if setup.secret is None:
            refresh += f"; needs {ENV_CLIENT_SECRET}, which is not set"
    else:
        refresh = "not possible (temporary grant: log in again when it expires)"
    console.print(f"refresh      {refresh}")
    console.print(f"grant        {token.fingerprint} (fingerprint)")
    if info["refused"]:
        console.warn(info["refused"])
    return ExitCode.OK


# -- refresh ----------------------------------------------------------------------------


async def cmd_refresh(ctx: Context) -> int:
    """Refresh the stored grant now and save the new token."""
    console = ctx.console
    setup = load_setup(ctx)
    provider_of(setup.config)  # a bad URL given is the first thing to fix
    async with FileTokenStore(setup.token_file) as store:
        # Then the token: with none stored, that is what to fix, not a missing client id.
        token = await load_token(store, console)
        app = build_app(setup.config, setup.secret, login=False)
        check_binding(ctx, setup)
        if not token.can_refresh:
            raise CliError(
                "the stored grant is temporary (no refresh token): run `netrex-async login` again",
                ExitCode.AUTH,
            )
        if setup.secret is None:
            raise CliError(
                f"refreshing needs the client secret: set {ENV_CLIENT_SECRET} or pass "
                "--client-secret-file"
            )

        async with (
            OAuth2Client(app) as oauth,
            TokenManager(oauth, store, background=False) as manager,
        ):
            new = await manager.refresh()
    console.add_secret(new)
    console.print(f"Refreshed. Expires in {_expiry_line(new)}.")
    console.print(f"  grant       {new.fingerprint} (fingerprint)")
    console.print(f"  token file  {setup.token_file}")
    return ExitCode.OK


# -- revoke -----------------------------------------------------------------------------


async def cmd_revoke(ctx: Context) -> int:
    """Revoke the stored grant at the provider, then delete the stored token."""
    console = ctx.console
    setup = load_setup(ctx)
    provider_of(setup.config)  # a bad URL given is the first thing to fix
    async with FileTokenStore(setup.token_file) as store:
        try:
            # Then the token: with none stored, that is what to fix, not a missing client id.
            token = await load_token(store, console)
        except _CorruptFile as e:
            if not ctx.args.force:
                raise
            # Nothing in it can be revoked; --force deletes it (the CLI's fix for it).
            console.warn(
                f"{corrupt_file_advice(e).split('. It was left', 1)[0]}; deleting it (--force)"
            )
            await _clear(ctx, setup, store)
            console.print(f"Deleted the corrupt token file {setup.token_file}.")
            return ExitCode.OK
        app = build_app(setup.config, setup.secret, login=False)
        check_binding(ctx, setup)
        try:
            async with OAuth2Client(app) as oauth:
                await oauth.revoke(token)
        except (TokenEndpointError, TransportError) as e:
            if not ctx.args.force:
                code, text = describe(e)
                raise CliError(
                    f"{text}; the token file was kept (--force deletes it anyway)", code
                ) from None
            console.warn(f"{safe_text(e)}; deleting the stored token anyway (--force)")
        await _clear(ctx, setup, store)
    console.print(
        f"Revoked grant {token.fingerprint}; the token file {setup.token_file} was deleted."
    )
    return ExitCode.OK


async def _clear(ctx: Context, setup: Setup, store: FileTokenStore) -> None:
    """Delete the stored token, and its binding (a later token file is bound by its login)."""
    async with store.lock():
        await store.clear()
    _unbind(setup)


def _unbind(setup: Setup) -> None:
    """Forget where the stored grant belongs (before the token file changes)."""
    if setup.config_file.exists():  # without one, nothing is bound
        save_config(setup.config_file, attrs.evolve(setup.config, bound=None))


# -- query ------------------------------------------------------------------------------


def _variables(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as e:
        raise CliError(f"--variables is not valid JSON: {safe_text(e, limit=120)}") from None
    if not isinstance(value, dict):
        raise CliError('--variables must be a JSON object, like \'{"id": "1"}\'')
    return value


async def cmd_query(ctx: Context) -> int:
    """Run a GraphQL operation; print its data as JSON."""
    args, console = ctx.args, ctx.console
    query = read_query(ctx, args.query)
    variables = _variables(args.variables)
    api = await api_client(ctx)
    try:
        async with api as client:
            data = await client.graphql(query, variables, operation_name=args.operation_name)
    except GraphQLError as e:
        if e.data is not None:
            console.print(json_text(e.data, indent=None if args.compact else 2))
        for error in e.errors:
            console.error(f"GraphQL: {_graphql_error_text(error)}")
        return ExitCode.API_ERROR
    console.print(json_text(data, indent=None if args.compact else 2))
    return ExitCode.OK


def _graphql_error_text(error: Mapping[str, Any]) -> str:
    message = safe_text(error.get("message", "(no message)"), limit=400)
    path = error.get("path")
    if isinstance(path, list) and path:
        where = ".".join(safe_text(p, limit=40) for p in path)
        return f"{message} (at {where})"
    return message
