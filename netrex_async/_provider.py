"""Where the provider lives."""

from __future__ import annotations

import ipaddress

import attrs
from yarl import URL

__all__ = ["DEFAULT_BASE_URL", "Provider"]

DEFAULT_BASE_URL = "https://system2.netrex.cz"

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def is_loopback_host(host: str | None) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1 or localhost)."""
    if not host:
        return False
    host = host.strip("[]").lower().rstrip(".")
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_base_url(instance: Provider, attribute: attrs.Attribute[str], value: str) -> None:
    url = URL(value)
    if not url.is_absolute() or not url.host:
        raise ValueError(
            f"provider base URL must be absolute, like {DEFAULT_BASE_URL!r}: {value!r}"
        )
    if url.scheme == "http" and is_loopback_host(url.host):
        pass
    elif url.scheme != "https":
        raise ValueError(
            f"provider base URL must use https (plain http only for loopback hosts): {value!r}"
        )
    if url.user is not None or url.password is not None:
        raise ValueError("provider base URL must not carry a user name or password")
    if url.query_string or url.fragment:
        raise ValueError(f"provider base URL must not have a query or fragment: {value!r}")


def _normalize(value: str) -> str:
    return str(value).strip().rstrip("/")


@attrs.frozen
class Provider:
    """A Netrex / Survilla Cloud installation: its base URL and endpoint paths.

    The default is ``https://system2.netrex.cz``; other providers run the same software,
    e.g. ``Provider("https://cloud.camstreamer.com")``.

    Raises:
        ValueError: The base URL is not absolute, not https (plain http is accepted for
            loopback hosts only: tests and the local fake provider), or carries credentials,
            a query or a fragment.
    """

    base_url: str = attrs.field(
        default=DEFAULT_BASE_URL, converter=_normalize, validator=_check_base_url
    )
    auth_path: str = "/oauth2/auth"
    token_path: str = "/oauth2/token"
    revoke_path: str = "/oauth2/revoke"
    graphql_path: str = "/api/graphql.php"

    def url(self, path: str) -> URL:
        """The absolute URL of ``path`` (relative to the base URL) at this provider."""
        return URL(self.base_url + "/" + path.lstrip("/"))

    @property
    def origin(self) -> URL:
        """Scheme, host and port: where bearer tokens may be sent, and nowhere else."""
        return URL(self.base_url).origin()

    @property
    def auth_url(self) -> URL:
        """The authorization endpoint the user's browser opens."""
        return self.url(self.auth_path)

    @property
    def token_url(self) -> URL:
        """The token endpoint (code exchange and refresh)."""
        return self.url(self.token_path)

    @property
    def revoke_url(self) -> URL:
        """The revocation endpoint."""
        return self.url(self.revoke_path)

    @property
    def graphql_url(self) -> URL:
        """The GraphQL API endpoint."""
        return self.url(self.graphql_path)
