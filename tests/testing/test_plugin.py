"""The pytest plugin: its fixtures here, and in a user's strict-mode project."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from netrex_async import NetrexClient, Scope
from netrex_async.testing import FakeNetrex

pytestmark = pytest.mark.asyncio


async def test_fake_netrex_fixture(fake_netrex: FakeNetrex) -> None:
    assert fake_netrex.running
    assert fake_netrex.base_url.startswith("http://127.0.0.1:")
    assert not fake_netrex.grants


async def test_netrex_client_fixture(fake_netrex: FakeNetrex, netrex_client: NetrexClient) -> None:
    data = await netrex_client.graphql("{me{scopes}}")
    assert sorted(data["me"]["scopes"]) == sorted(s.value for s in Scope)
    renamed = await netrex_client.graphql(
        "mutation($id: ID!, $name: String!) { renameCamera(id: $id, name: $name) { name } }",
        {"id": "1", "name": "Front door"},
    )
    assert renamed == {"renameCamera": {"name": "Front door"}}
    assert len(fake_netrex.grants) == 1
    assert fake_netrex.requests[-1].bearer == fake_netrex.grants[0].access_token


async def test_the_fixtures_work_in_a_strict_mode_project(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text(
        textwrap.dedent(
            """
            [pytest]
            asyncio_mode = strict
            asyncio_default_fixture_loop_scope = function
            filterwarnings = error
            """
        )
    )
    (tmp_path / "test_user.py").write_text(
        textwrap.dedent(
            """
            import pytest

            @pytest.mark.asyncio
            async def test_fake(fake_netrex):
                assert fake_netrex.running

            @pytest.mark.asyncio
            async def test_client(netrex_client):
                data = await netrex_client.graphql("{cameraList{name}}")
                assert len(data["cameraList"]) == 3
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
