"""The commands that work on a stored grant: login, status, refresh, revoke, query."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

import attrs

from .._client import NetrexClient
from .._errors import GraphQLError, TokenEndpointError, TransportError
from .._manager import StaticToken, TokenManager
from .._oauth import OAuth2Client
from .._oauth_protocol import OAuth2App
from .._redact import safe_text
from .._scope import Scope
from .._stores._file import FileTokenStore
from .._token import Token
from ._config import (
    ENV_CLIENT_SECRET,
    ENV_TOKEN,
    AppConfig,
    build_app,
    client_secret,
    config_path,
    load_config,
    provider_of,
    resolve_config,
    save_config,
    token_path,
)
from ._exits import CliError, ExitCode, describe
from ._login import Opener, browser_command_opener, browser_login, paste_login, system_browser
from ._output import Console, format_expiry, json_text

__all__ = ["Context", "cmd_login", "cmd_query", "cmd_refresh", "cmd_revoke", "cmd_status"]

log = logging.getLogger("netrex_async.cli")


@attrs.define
class Context:
    """What a command gets: its arguments, environment, terminal, and test hooks."""

    args: argparse.Namespace
    env: Mapping[str, str]
    console: Console
    stdin: TextIO = sys.stdin
    #: Replaces the browser (tests script it; ``None``: decided by the options).
    opener: Opener | None = None


@attrs.frozen
class _Setup:
    token_file: Path
    config_file: Path
    config: AppConfig
    secret: str | None


def _setup(ctx: Context) -> _Setup:
    path = token_path(ctx.args, ctx.env)
    cfg_path = config_path(path)
    config = resolve_config(ctx.args, ctx.env, load_config(cfg_path))
    secret = client_secret(ctx.args, ctx.env)
    ctx.console.add_secret(secret)
    log.debug(
        "settings: token file %s, config file %s, provider %s, client id %s, redirect URI %s, "
        "grant type %s, credentials in %s, PKCE %s, client secret %s",
        path,
        cfg_path,
        config.provider,
        config.client_id,
        config.redirect_uri,
        config.grant_type_name,
        config.credentials_in,
        "on" if config.use_pkce else "off",
        "set" if secret else "not set",
        extra={"event": "cli.settings"},
    )
    return _Setup(path, cfg_path, config, secret)


async def _load_token(store: FileTokenStore, console: Console) -> Token:
    token = await store.load()
    if token is None:
        raise CliError(
            f"no token is stored in {store.path}: run `netrex-async login` first "
            "(or pass --token-file / set NETREX_TOKEN_FILE)",
            ExitCode.AUTH,
        )
    console.add_secret(token)
    return token


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


async def cmd_login(ctx: Context) -> int:
    """Authorize the app in a browser (or by pasting), and store the token."""
    args, console = ctx.args, ctx.console
    setup = _setup(ctx)
    app = build_app(setup.config, setup.secret)
    try:
        scopes = Scope.to_param(Scope.parse(args.scope))
    except ValueError as e:
        raise CliError(f"--scope: {safe_text(e)}") from None
    if not scopes:
        raise CliError("--scope: ask for at least one right, e.g. --scope read")
    if args.timeout <= 0:
        raise CliError("--timeout must be more than 0 seconds")
    async with FileTokenStore(setup.token_file) as store:
        # Before the browser: a corrupt or unusable token file fails now, not after consent.
        previous = await store.load()
        console.add_secret(previous)
        if setup.secret is None:
            console.warn(
                f"no client secret ({ENV_CLIENT_SECRET} is not set): the provider grants "
                "temporary access only, without a refresh token"
            )
        if args.paste:
            async with OAuth2Client(app) as oauth:
                token = await paste_login(
                    oauth, scopes, console=console, stdin=ctx.stdin, within=args.timeout
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
            )
        async with store.lock():
            await store.save(token)
    save_config(setup.config_file, setup.config)
    console.print(f"Logged in to {app.provider.base_url} as app {safe_text(app.client_id)}.")
    console.print(f"  scopes      {_scopes_text(token)}")
    console.print(f"  expires in  {_expiry_line(token)}")
    console.print(f"  grant       {token.fingerprint} (fingerprint)")
    console.print(f"  token file  {setup.token_file}")
    if previous is not None and previous.fingerprint != token.fingerprint:
        console.info(
            f"The token stored before (grant {previous.fingerprint}) was replaced; it is "
            "still valid at the provider until it expires or is revoked there."
        )
    return ExitCode.OK


# -- status -----------------------------------------------------------------------------


def _status_dict(setup: _Setup, token: Token | None) -> dict[str, Any]:
    now = time.time()
    out: dict[str, Any] = {
        "token_file": str(setup.token_file),
        "config_file": str(setup.config_file),
        "provider": setup.config.provider,
        "client_id": setup.config.client_id,
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
                "grant": token.fingerprint,
                "access_token": token.access_fingerprint,
            }
        )
    return out


async def cmd_status(ctx: Context) -> int:
    """Show what is stored, without any secret and without the network."""
    console = ctx.console
    setup = _setup(ctx)
    async with FileTokenStore(setup.token_file) as store:
        token = await store.load()
    console.add_secret(token)
    info = _status_dict(setup, token)
    if ctx.args.json:
        console.print(json_text(info))
        return ExitCode.OK if token is not None else ExitCode.AUTH
    if token is None:
        console.print(f"No token stored in {setup.token_file}.")
        console.print("Run `netrex-async login` to authorize.")
        return ExitCode.AUTH
    console.print(f"token file   {setup.token_file}")
    console.print(f"provider     {safe_text(setup.config.provider)}")
    console.print(f"client id    {safe_text(setup.config.client_id or '(unknown)')}")
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
    return ExitCode.OK


# -- refresh ----------------------------------------------------------------------------


async def cmd_refresh(ctx: Context) -> int:
    """Refresh the stored grant now and save the new token."""
    console = ctx.console
    setup = _setup(ctx)
    app = build_app(setup.config, setup.secret)
    async with FileTokenStore(setup.token_file) as store:
        token = await _load_token(store, console)
        if not token.can_refresh:
            raise CliError(
                "the stored grant is temporary (no refresh token): run `netrex-async login` again",
                ExitCode.AUTH,
            )
        if setup.secret is None:
            raise CliError(f"refreshing needs the client secret: set {ENV_CLIENT_SECRET}")

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
    setup = _setup(ctx)
    app = build_app(setup.config, setup.secret)
    async with FileTokenStore(setup.token_file) as store:
        token = await _load_token(store, console)
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
        async with store.lock():
            await store.clear()
    console.print(
        f"Revoked grant {token.fingerprint}; the token file {setup.token_file} was deleted."
    )
    return ExitCode.OK


# -- query ------------------------------------------------------------------------------


def _user_token(ctx: Context) -> str | None:
    value = ctx.args.user_token
    if value == "-":
        value = ctx.stdin.readline().strip()
        if not value:
            raise CliError("--user-token -: nothing was read from stdin")
    if value is None:
        value = ctx.env.get(ENV_TOKEN) or None
    ctx.console.add_secret(value)
    return str(value) if value is not None else None


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
    query = args.query
    if query == "-":
        query = ctx.stdin.read()
    if not query.strip():
        raise CliError("the GraphQL query is empty")
    variables = _variables(args.variables)
    user_token = _user_token(ctx)
    setup = _setup(ctx)
    client: NetrexClient
    store: FileTokenStore | None = None
    if user_token is not None:
        try:
            source = StaticToken(user_token)
        except ValueError as e:
            raise CliError(f"the user token is not usable: {safe_text(e)}") from None
        client = NetrexClient(source, provider=provider_of(setup.config))
    else:
        app: OAuth2App = build_app(setup.config, setup.secret)
        store = FileTokenStore(setup.token_file)
        await _load_token(store, console)
        client = NetrexClient.from_app(app, store, background=False)
    try:
        async with client:
            data = await client.graphql(query, variables, operation_name=args.operation_name)
    except GraphQLError as e:
        if e.data is not None:
            console.print(json_text(e.data, indent=None if args.compact else 2))
        for error in e.errors:
            console.error(f"GraphQL: {_graphql_error_text(error)}")
        return ExitCode.API_ERROR
    finally:
        if store is not None:
            await store.aclose()
    console.print(json_text(data, indent=None if args.compact else 2))
    return ExitCode.OK


def _graphql_error_text(error: Mapping[str, Any]) -> str:
    message = safe_text(error.get("message", "(no message)"), limit=400)
    path = error.get("path")
    if isinstance(path, list) and path:
        where = ".".join(safe_text(p, limit=40) for p in path)
        return f"{message} (at {where})"
    return message
