"""The installed package's metadata: its project URLs are there, true and https (#14)."""

from __future__ import annotations

import tomllib
from importlib.metadata import metadata
from pathlib import Path

from yarl import URL

from netrex_async import Provider

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def installed_urls() -> dict[str, str]:
    """``Project-URL`` of the installed distribution, label -> URL."""
    urls = {}
    for entry in metadata("netrex-async").get_all("Project-URL") or []:
        label, _, url = entry.partition(", ")
        urls[label] = url
    return urls


def test_the_project_urls_are_in_the_built_metadata() -> None:
    urls = installed_urls()
    declared = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["urls"]
    # A stale editable install has the metadata of an older pyproject.toml: reinstall.
    assert urls == declared, "reinstall the package (pip install -e .) to rebuild its metadata"
    assert urls["Provider (Netrex)"] == Provider().base_url
    assert urls["Provider (CamStreamer Cloud)"] == "https://cloud.camstreamer.com"


def test_every_project_url_is_https_with_a_host() -> None:
    urls = installed_urls()
    assert urls
    for label, url in urls.items():
        parsed = URL(url)
        assert parsed.scheme == "https", (label, url)
        assert parsed.host and "." in parsed.host, (label, url)
        assert not parsed.user and not parsed.password and not parsed.query_string
