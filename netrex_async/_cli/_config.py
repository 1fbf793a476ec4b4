"""Where the CLI's settings come from: flags, then the environment, then ``config.json``.

``login`` writes the app's non-secret settings (provider, client id, redirect URI, grant
options) next to the token file, so that ``refresh``, ``status``, ``revoke`` and ``query``
work later with only ``NETREX_CLIENT_SECRET`` in the environment. The client secret is
never written anywhere by the CLI.

The same file records the stored grant's **binding**: the provider origin and client id
it was issued for (``"grant": {"provider": ..., "client_id": ...}``). A command that would
send the grant elsewhere (another ``--provider``, a ``NETREX_PROVIDER`` left exported)
refuses before anything is sent. A config file written by 0.1.0 has no ``grant`` key;
only ``login`` wrote it, so its ``provider`` and ``client_id`` are taken as the binding.
``"grant": null`` (or no config file at all) means unbound: the grant is not sent
anywhere until ``--bind`` records where it belongs, or ``login`` replaces it.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any, Literal, cast

import attrs
import platformdirs
from yarl import URL

from .._oauth_protocol import OAuth2App
from .._provider import DEFAULT_BASE_URL, Provider
from .._redact import safe_text
from ._exits import CliError, ExitCode

__all__ = [
    "ENV_CLIENT_ID",
    "ENV_CLIENT_SECRET",
    "ENV_PROVIDER",
    "ENV_REDIRECT_URI",
    "ENV_TOKEN",
    "ENV_TOKEN_FILE",
    "AppConfig",
    "Binding",
    "build_app",
    "check_provider_url",
    "client_secret",
    "config_path",
    "load_config",
    "origin_of",
    "resolve_config",
    "save_config",
    "setting_source",
    "token_path",
]

ENV_PROVIDER = "NETREX_PROVIDER"
ENV_CLIENT_ID = "NETREX_CLIENT_ID"
ENV_CLIENT_SECRET = "NETREX_CLIENT_SECRET"
ENV_REDIRECT_URI = "NETREX_REDIRECT_URI"
ENV_TOKEN_FILE = "NETREX_TOKEN_FILE"
ENV_TOKEN = "NETREX_TOKEN"

CONFIG_VERSION = 1
_MAX_CONFIG_SIZE = 64 * 1024
_GRANT_TYPE_NAMES = ("authorization_code", "auth_code")
_CREDENTIALS_IN = ("query", "body")


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url`` (normalized), or ``url`` itself if it has none."""
    try:
        parsed = URL(str(url).strip())
        if parsed.is_absolute() and parsed.host:
            return str(parsed.origin())
    except (TypeError, ValueError):
        pass
    return str(url)


@attrs.frozen
class Binding:
    """Where a stored grant belongs: the provider origin and client id it was issued for."""

    provider: str = attrs.field(converter=origin_of)
    client_id: str

    def to_dict(self) -> dict[str, str]:
        """The JSON form (the ``grant`` object of ``config.json``)."""
        return {"provider": self.provider, "client_id": self.client_id}

    @classmethod
    def from_dict(cls, data: Any) -> Binding:
        """Read the JSON form back.

        Raises:
            ValueError: It is not an object with the two strings.
        """
        if not isinstance(data, dict):
            raise ValueError("grant must be an object or null")
        provider, client_id = data.get("provider"), data.get("client_id")
        if not isinstance(provider, str) or not isinstance(client_id, str):
            raise ValueError("grant must have the provider and client_id strings")
        return cls(provider, client_id)


@attrs.frozen(kw_only=True)
class AppConfig:
    """The registered app's settings that are not secret (what ``config.json`` holds).

    ``bound`` is where the stored grant belongs (see the module docstring); it comes only
    from ``config.json``, never from a flag or the environment.
    """

    provider: str = DEFAULT_BASE_URL
    client_id: str | None = None
    redirect_uri: str | None = None
    grant_type_name: str = "authorization_code"
    credentials_in: str = "query"
    use_pkce: bool = False
    bound: Binding | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written to ``config.json``."""
        data: dict[str, Any] = {"version": CONFIG_VERSION, **attrs.asdict(self)}
        data["grant"] = data.pop("bound")
        return data

    @classmethod
    def from_dict(cls, data: Any) -> AppConfig:
        """Read the JSON form back.

        Raises:
            ValueError: A field is missing or has the wrong type (the message names it).
        """
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        if data.get("version", CONFIG_VERSION) != CONFIG_VERSION:
            raise ValueError("unsupported version")
        kwargs: dict[str, Any] = {}
        for name in ("provider", "client_id", "redirect_uri"):
            value = data.get(name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name} must be a string")
            if value is not None:
                kwargs[name] = value
        if data.get("grant_type_name", "authorization_code") not in _GRANT_TYPE_NAMES:
            raise ValueError("grant_type_name must be authorization_code or auth_code")
        if data.get("credentials_in", "query") not in _CREDENTIALS_IN:
            raise ValueError("credentials_in must be query or body")
        if not isinstance(data.get("use_pkce", False), bool):
            raise ValueError("use_pkce must be true or false")
        kwargs["grant_type_name"] = data.get("grant_type_name", "authorization_code")
        kwargs["credentials_in"] = data.get("credentials_in", "query")
        kwargs["use_pkce"] = data.get("use_pkce", False)
        if "grant" in data:
            grant = data["grant"]
            kwargs["bound"] = None if grant is None else Binding.from_dict(grant)
        elif isinstance(kwargs.get("client_id"), str):
            # Written by 0.1.0, whose login alone wrote this file: the grant's settings.
            kwargs["bound"] = Binding(kwargs.get("provider", DEFAULT_BASE_URL), kwargs["client_id"])
        return cls(**kwargs)


def _path(value: str) -> Path:
    return Path(value).expanduser().absolute()


def token_path(args: argparse.Namespace, env: Mapping[str, str]) -> Path:
    """``--token-file``, else ``NETREX_TOKEN_FILE``, else the user data dir's token.json."""
    value = getattr(args, "token_file", None) or env.get(ENV_TOKEN_FILE)
    if value:
        return _path(value)
    return Path(platformdirs.user_data_dir("netrex-async", appauthor=False)) / "token.json"


def config_path(token_file: Path) -> Path:
    """Where the app's settings live for a token file: ``token.json`` -> ``token.config.json``."""
    stem = token_file.name[:-5] if token_file.name.endswith(".json") else token_file.name
    return token_file.with_name(stem + ".config.json")


def load_config(path: Path) -> AppConfig | None:
    """The settings saved by ``login``, or ``None`` when there are none.

    Raises:
        CliError: The file exists but is unreadable or not a config (exit code 5).
    """
    try:
        with open(path, "rb") as f:
            raw = f.read(_MAX_CONFIG_SIZE + 1)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise CliError(
            f"cannot read config file {path}: {e.strerror or type(e).__name__}",
            ExitCode.LOCAL_FILE,
        ) from None
    try:
        if len(raw) > _MAX_CONFIG_SIZE:
            raise ValueError("too large")
        return AppConfig.from_dict(json.loads(raw.decode("utf-8")))
    except (ValueError, UnicodeDecodeError) as e:
        reason = safe_text(e, limit=120) if not isinstance(e, json.JSONDecodeError) else "not JSON"
        raise CliError(
            f"config file {path} is corrupt ({reason}): fix it or remove it and log in again",
            ExitCode.LOCAL_FILE,
        ) from None


def save_config(path: Path, config: AppConfig) -> None:
    """Write ``config`` atomically, 0600 (its folder exists: the token was saved first).

    Raises:
        CliError: Writing failed (exit code 5).
    """
    data = (json.dumps(config.to_dict(), indent=2) + "\n").encode("utf-8")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600
        )
        try:
            if os.name == "posix":
                os.fchmod(fd, 0o600)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as e:
        with suppress(OSError):
            os.unlink(tmp)
        raise CliError(
            f"cannot write config file {path}: {e.strerror or type(e).__name__}",
            ExitCode.LOCAL_FILE,
        ) from None


def resolve_config(
    args: argparse.Namespace, env: Mapping[str, str], stored: AppConfig | None
) -> AppConfig:
    """Each setting from its flag, else the environment, else ``config.json``, else default."""
    base = stored or AppConfig()

    def pick(flag: str, env_name: str | None, current: Any) -> Any:
        value = getattr(args, flag, None)
        if value is not None:
            return value
        if env_name is not None and env.get(env_name):
            return env[env_name]
        return current

    return AppConfig(
        provider=pick("provider", ENV_PROVIDER, base.provider),
        client_id=pick("client_id", ENV_CLIENT_ID, base.client_id),
        redirect_uri=pick("redirect_uri", ENV_REDIRECT_URI, base.redirect_uri),
        grant_type_name=pick("grant_type_name", None, base.grant_type_name),
        credentials_in=pick("credentials_in", None, base.credentials_in),
        use_pkce=pick("pkce", None, base.use_pkce),
        bound=base.bound,
    )


def setting_source(args: argparse.Namespace, env: Mapping[str, str], name: str) -> str:
    """Where the effective ``provider`` or ``client_id`` came from, in the CLI's words."""
    flag, env_name = {
        "provider": ("--provider", ENV_PROVIDER),
        "client_id": ("--client-id", ENV_CLIENT_ID),
    }[name]
    if getattr(args, name, None) is not None:
        return flag
    if env.get(env_name):
        return env_name
    return "the saved settings"


def client_secret(args: argparse.Namespace, env: Mapping[str, str]) -> str | None:
    """``--client-secret-file``'s content, else ``NETREX_CLIENT_SECRET``, else ``None``.

    There is no ``--client-secret`` flag: a command line is visible to every user of the
    machine (``ps``) and stays in shell history.

    Raises:
        CliError: The secret file cannot be read or is empty.
    """
    path = getattr(args, "client_secret_file", None)
    if path:
        try:
            with open(_path(path), encoding="utf-8") as f:
                value = f.read(4096).strip()
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
            raise CliError(f"cannot read the client secret file {path}: {reason}") from None
        if not value:
            raise CliError(f"the client secret file {path} is empty")
        return value
    return env.get(ENV_CLIENT_SECRET) or None


def check_provider_url(url: str) -> None:
    """Refuse a provider URL with a path (the endpoint paths are added to the base URL), or
    without a scheme (``system2.netrex.cz``, as the provider's pages write it).

    Raises:
        CliError: ``url`` has a path, like ``https://system2.netrex.cz/api/graphql.php``,
            or no scheme (exit code 2).
    """
    text = str(url).strip()
    if text and "://" not in text:
        try:
            guess = URL(f"https://{text}")
            like = str(guess.origin()) if guess.host and " " not in text else DEFAULT_BASE_URL
        except ValueError:
            like = DEFAULT_BASE_URL
        shown, like = safe_text(url, limit=200), safe_text(like, limit=200)
        raise CliError(
            f"the provider URL {shown} has no scheme: give the whole base URL, like {like} "
            f"(--provider, {ENV_PROVIDER})"
        )
    try:
        parsed = URL(text)
    except (TypeError, ValueError):
        return  # Provider() says what is wrong with it
    if parsed.path not in ("", "/"):
        shown, path, base = (safe_text(v, limit=200) for v in (url, parsed.path, origin_of(url)))
        raise CliError(
            f"the provider URL {shown} has a path ({path}); give the base URL only, like "
            f"{base} (--provider, {ENV_PROVIDER}): the endpoint paths /oauth2/... and "
            "/api/graphql.php are added to it"
        )


def provider_of(config: AppConfig) -> Provider:
    """The configured provider.

    Raises:
        CliError: The URL is not acceptable (exit code 2).
    """
    check_provider_url(config.provider)
    try:
        return Provider(config.provider)
    except ValueError as e:
        raise CliError(f"invalid provider URL: {safe_text(e)}") from None


#: The redirect URI of an app that only refreshes and revokes, which send none (OAuth2App
#: wants one): a token file written by the library and bound with --bind has no saved one.
_NOT_SENT_REDIRECT_URI = "http://127.0.0.1/"


def build_app(config: AppConfig, secret: str | None, *, login: bool = True) -> OAuth2App:
    """The :class:`OAuth2App` for these settings.

    ``login=False``: for refreshing and revoking only, which need no redirect URI.

    Raises:
        CliError: The client id or redirect URI is missing or invalid (exit code 2).
    """
    if not config.client_id:
        raise CliError(
            f"no client id: pass --client-id or set {ENV_CLIENT_ID} "
            "(later commands reuse what login saved)"
        )
    redirect_uri = config.redirect_uri or (None if login else _NOT_SENT_REDIRECT_URI)
    if not redirect_uri:
        raise CliError(
            "no redirect URI: pass --redirect-uri or set "
            f"{ENV_REDIRECT_URI} to one registered for the app"
        )
    provider = provider_of(config)
    try:
        return OAuth2App(
            client_id=config.client_id,
            client_secret=secret,
            redirect_uri=redirect_uri,
            provider=provider,
            grant_type_name=cast(
                Literal["authorization_code", "auth_code"], config.grant_type_name
            ),
            credentials_in=cast(Literal["query", "body"], config.credentials_in),
            use_pkce=config.use_pkce,
        )
    except ValueError as e:
        raise CliError(f"invalid app settings: {safe_text(e)}") from None
