"""Provider: https only (plain http for loopback), normalised base URL, endpoints."""

from __future__ import annotations

import pytest
from yarl import URL

from netrex_async import Provider
from netrex_async._provider import DEFAULT_BASE_URL, is_loopback_host


def test_default_is_system2() -> None:
    p = Provider()
    assert p.base_url == DEFAULT_BASE_URL == "https://system2.netrex.cz"
    assert p.token_url == URL("https://system2.netrex.cz/oauth2/token")
    assert p.auth_url == URL("https://system2.netrex.cz/oauth2/auth")
    assert p.revoke_url == URL("https://system2.netrex.cz/oauth2/revoke")
    assert p.graphql_url == URL("https://system2.netrex.cz/api/graphql.php")


@pytest.mark.parametrize(
    "url",
    [
        "https://cloud.camstreamer.com",
        "https://cloud.camstreamer.com/",
        "https://cloud.camstreamer.com///",
        "  https://cloud.camstreamer.com/ ",
    ],
)
def test_trailing_slash_and_blanks_normalised(url: str) -> None:
    p = Provider(url)
    assert p.base_url == "https://cloud.camstreamer.com"
    assert str(p.token_url) == "https://cloud.camstreamer.com/oauth2/token"


def test_base_path_kept() -> None:
    p = Provider("https://example.com/netrex/")
    assert str(p.token_url) == "https://example.com/netrex/oauth2/token"
    assert str(p.graphql_url) == "https://example.com/netrex/api/graphql.php"
    assert p.origin == URL("https://example.com")


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://cloud.camstreamer.com/x/y", "https://cloud.camstreamer.com"),
        ("https://h.example:8443/", "https://h.example:8443"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://[::1]:9000/base", "http://[::1]:9000"),
    ],
)
def test_origin(url: str, origin: str) -> None:
    assert Provider(url).origin == URL(origin)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1",
        "http://127.0.0.1:8080",
        "http://127.5.6.7:1/",
        "http://[::1]",
        "http://[::1]:8080",
        "http://localhost",
        "http://localhost:9999",
        "http://LOCALHOST:9999",
        "http://fake.localhost:1234",
    ],
)
def test_plain_http_allowed_for_loopback(url: str) -> None:
    assert Provider(url).base_url.startswith("http://")


@pytest.mark.parametrize(
    "url",
    [
        "http://system2.netrex.cz",
        "http://example.com:8080/",
        "http://10.0.0.1",
        "http://192.168.1.1",
        "http://0.0.0.0:8080",
        "http://[::]:8080",
        "http://localhost.evil.example",
        "http://127.0.0.1.nip.io",
        "ftp://system2.netrex.cz",
        "ws://127.0.0.1",
        "system2.netrex.cz",
        "/oauth2",
        "",
    ],
)
def test_non_https_refused_naming_the_url(url: str) -> None:
    with pytest.raises(ValueError) as info:
        Provider(url)
    assert repr(url.strip().rstrip("/")) in str(info.value)


@pytest.mark.parametrize(
    "url", ["https://h.example/?a=1", "https://h.example/#frag", "http://127.0.0.1/?x=y"]
)
def test_query_or_fragment_refused(url: str) -> None:
    with pytest.raises(ValueError, match="query or fragment"):
        Provider(url)


def test_userinfo_refused_without_echoing_password() -> None:
    with pytest.raises(ValueError) as info:
        Provider("https://user:pa55word-xyz@h.example")
    assert "pa55word-xyz" not in str(info.value)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.255.255.254", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("localhost.", True),
        ("a.localhost", True),
        ("128.0.0.1", False),
        ("::2", False),
        ("localhost.com", False),
        ("mylocalhost", False),
        ("", False),
        (None, False),
    ],
)
def test_is_loopback_host(host: str | None, expected: bool) -> None:
    assert is_loopback_host(host) is expected


def test_frozen() -> None:
    p = Provider()
    with pytest.raises(AttributeError):
        p.base_url = "https://other.example"  # type: ignore[misc]
