"""What every command starts from: its context, its settings, and the stored grant's binding.

:class:`Context` is what a command gets; :func:`load_setup` resolves where the token file
is and which app settings are in force; :func:`load_token` reads the stored grant and
:func:`check_binding` refuses to send it anywhere but where it belongs (see
:mod:`netrex_async._cli._config` for the binding itself).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

import attrs

from .._redact import safe_text
from .._stores._file import FileTokenStore
from .._token import Token
from ._config import (
    ENV_CLIENT_SECRET,
    AppConfig,
    Binding,
    build_app,
    client_secret,
    config_path,
    load_config,
    provider_of,
    resolve_config,
    save_config,
    setting_source,
    token_path,
)
from ._exits import CliError, ExitCode, Hints
from ._login import Opener
from ._output import Console

__all__ = ["Context", "Setup", "check_binding", "load_setup", "load_token"]

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
    #: Where settings came from, for advice in the CLI's words (filled in as known).
    hints: Hints = attrs.field(factory=Hints)


@attrs.frozen
class Setup:
    """The settings a command works with: the token file, its config file, the app."""

    token_file: Path
    config_file: Path
    config: AppConfig
    secret: str | None


def load_setup(ctx: Context) -> Setup:
    """The token file and the app settings in force (flags, environment, ``config.json``).

    The client secret is registered with the console, so that no output shows it.

    Raises:
        CliError: The config file or the client secret file is unusable.
    """
    path = token_path(ctx.args, ctx.env)
    cfg_path = config_path(path)
    config = resolve_config(ctx.args, ctx.env, load_config(cfg_path))
    secret = client_secret(ctx.args, ctx.env)
    ctx.console.add_secret(secret)
    secret_file = getattr(ctx.args, "client_secret_file", None)
    ctx.hints.secret_from = (
        f"the file given to --client-secret-file ({secret_file})"
        if secret_file
        else ENV_CLIENT_SECRET
    )
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
    return Setup(path, cfg_path, config, secret)


async def load_token(store: FileTokenStore, console: Console, *, or_else: str = "") -> Token:
    """The stored token (registered with the console as a secret).

    ``or_else`` ends the message when none is stored: another way the command can work.

    Raises:
        CliError: No token is stored (exit code 3).
        TokenStoreError: The token file is unusable (corrupt, unreadable, locked).
    """
    token = await store.load()
    if token is None:
        raise CliError(
            f"no token is stored in {store.path}: run `netrex-async login` first "
            f"(or pass --token-file / set NETREX_TOKEN_FILE){or_else}",
            ExitCode.AUTH,
        )
    console.add_secret(token)
    return token


# -- the binding of the stored grant -------------------------------------------------------


def _wanted(setup: Setup) -> Binding:
    """Where this command would send the grant (the settings in force)."""
    provider_of(setup.config)  # refuses a URL with a path, or plain http off loopback
    if not setup.config.client_id:
        build_app(setup.config, setup.secret)  # says what to pass
    assert setup.config.client_id is not None
    return Binding(setup.config.provider, setup.config.client_id)


def check_binding(ctx: Context, setup: Setup) -> None:
    """Refuse to send the stored grant anywhere but to the provider and app it belongs to.

    Called after the token is loaded and before anything is sent. With ``--bind``, an
    unbound grant (a token file written without ``netrex-async login``) is recorded as
    belonging to the settings in force.

    Raises:
        CliError: The settings name another provider or client id (exit code 2, nothing
            was sent), or the grant is unbound and ``--bind`` was not given.
    """
    want = _wanted(setup)
    bound = setup.config.bound
    if bound is None:
        if not getattr(ctx.args, "bind", False):
            raise CliError(
                f"the token file {setup.token_file} does not record which provider and app "
                "its grant belongs to (it was not written by `netrex-async login`, or "
                f"{setup.config_file.name} was removed), so it is sent nowhere: if it belongs "
                f"to {want.provider} (app {safe_text(want.client_id)}), pass --bind once to "
                "record that; otherwise run `netrex-async login`"
            )
        save_config(setup.config_file, attrs.evolve(setup.config, bound=want))
        ctx.console.info(
            f"Recorded: the stored grant belongs to {want.provider} "
            f"(app {safe_text(want.client_id)})."
        )
        return
    if bound == want:
        return
    differs = []
    if bound.provider != want.provider:
        differs.append(setting_source(ctx.args, ctx.env, "provider"))
    if bound.client_id != want.client_id:
        differs.append(setting_source(ctx.args, ctx.env, "client_id"))
    raise CliError(
        f"the stored grant belongs to {bound.provider} (app {safe_text(bound.client_id)}), "
        f"but {' and '.join(differs)} name{'s' if len(differs) == 1 else ''} "
        f"{want.provider} (app {safe_text(want.client_id)}); nothing was sent. Drop that "
        "setting (e.g. unset NETREX_PROVIDER) to use this grant, or use another --token-file "
        "and `netrex-async login` for the other provider"
    )
