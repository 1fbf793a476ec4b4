"""The real program in its own process: the console script, ``python -m``, the demo."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from pathlib import Path

import aiohttp
import pytest

from netrex_async import FileTokenStore
from netrex_async.testing import FakeNetrex

from .conftest import clean_env

HERE = Path(__file__).parent


def _program() -> list[str]:
    script = Path(sys.executable).with_name("netrex-async")
    if script.exists():
        return [str(script)]
    found = shutil.which("netrex-async")
    return [found] if found else [sys.executable, "-m", "netrex_async"]


async def _run(*argv: str, env: dict[str, str], stdin: bytes | None = None, timeout: float = 60):
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    return proc.returncode, out.decode(), err.decode()


def _env(fake: FakeNetrex, tmp_path: Path) -> dict[str, str]:
    return clean_env(
        NETREX_PROVIDER=fake.base_url,
        NETREX_CLIENT_ID=fake.client_id,
        NETREX_CLIENT_SECRET=fake.client_secret,
        NETREX_REDIRECT_URI=fake.redirect_uri,
        NETREX_TOKEN_FILE=str(tmp_path / "token.json"),
    )


async def test_python_dash_m_and_the_console_script(tmp_path: Path) -> None:
    env = clean_env()
    code, out, _ = await _run(sys.executable, "-m", "netrex_async", "--help", env=env)
    assert code == 0
    assert "login" in out
    assert "exit codes" in out
    code, out, err = await _run(
        *_program(), "status", "--token-file", str(tmp_path / "t.json"), env=env
    )
    assert code == 3
    assert "No token stored" in out


async def test_login_with_a_browser_command_then_query(
    fake: FakeNetrex, tmp_path: Path, secret_registry
) -> None:
    env = _env(fake, tmp_path)
    browser = f"{sys.executable} {HERE / 'scripted_browser.py'}"
    code, out, err = await _run(
        *_program(),
        "login",
        "--scope",
        "read,events",
        "--browser-command",
        browser,
        "--timeout",
        "30",
        env=env,
    )
    assert code == 0, err
    assert "Logged in" in out
    secret_registry.check(out, err)
    token = await FileTokenStore(tmp_path / "token.json").load()
    assert token is not None
    assert fake.is_valid(token)

    del env["NETREX_CLIENT_ID"], env["NETREX_REDIRECT_URI"], env["NETREX_PROVIDER"]
    code, out, err = await _run(*_program(), "query", "{cameraList{name}}", env=env)
    assert code == 0, err
    assert json.loads(out)["cameraList"]
    secret_registry.check(out, err)


async def test_paste_mode_in_a_real_process(
    fake: FakeNetrex, tmp_path: Path, secret_registry
) -> None:
    proc = await asyncio.create_subprocess_exec(
        *_program(),
        "login",
        "--paste",
        env=_env(fake, tmp_path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    assert proc.stdin is not None
    seen = b""
    url = None
    while url is None:
        line = await asyncio.wait_for(proc.stderr.readline(), 30)
        assert line, seen.decode()
        seen += line
        if b"/oauth2/auth?" in line:
            url = line.decode().strip()
    callback = await fake.authorize(url)
    out, err = await asyncio.wait_for(proc.communicate((callback + "\n").encode()), 30)
    assert proc.returncode == 0, err.decode()
    assert b"Logged in" in out
    secret_registry.check(out, seen + err)


async def test_fake_server(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        *_program(),
        "fake-server",
        "--json",
        "--expires-in",
        "5",
        env=clean_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        info = json.loads(line)
        async with aiohttp.ClientSession() as session:
            async with session.post(
                info["base_url"] + "/api/graphql.php", json={"query": "{me{name}}"}
            ) as r:
                assert r.status == 401
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)


@pytest.mark.slow
async def test_the_demo(secret_registry) -> None:
    code, out, err = await _run(
        *_program(),
        "demo",
        "--tasks",
        "200",
        "--duration",
        "4",
        "--json",
        env=clean_env(),
        timeout=120,
    )
    assert code == 0, err + out
    summary = json.loads(out)
    assert summary["ok"] is True, summary
    assert summary["failures"] == 0
    assert summary["requests"] > 200
    assert summary["lifetimes_crossed"] >= 1
    assert summary["refreshes"] == summary["lifetimes_crossed"]
    assert summary["revoked_token_refused"] is True
    assert "4. Summary" in err
    assert "Result: every check passed." in err


async def test_ctrl_c_while_waiting_for_the_browser(fake: FakeNetrex, tmp_path: Path) -> None:
    import signal
    import socket

    from yarl import URL

    proc = await asyncio.create_subprocess_exec(
        *_program(),
        "login",
        "--no-browser",
        env=_env(fake, tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    while True:
        line = await asyncio.wait_for(proc.stderr.readline(), 30)
        assert line
        if b"Waiting for the callback" in line:
            break
    proc.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 130
    assert b"interrupted" in err
    assert b"Traceback" not in err
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", URL(fake.redirect_uri).port or 0)) != 0


async def test_a_closed_stdout_ends_quietly(tmp_path: Path) -> None:
    """`netrex-async status | head -1`: the reader is gone; no traceback, no message."""
    read, write = os.pipe()
    os.close(read)  # the reader went away before the first line
    try:
        proc = await asyncio.create_subprocess_exec(
            *_program(),
            "status",
            "--token-file",
            str(tmp_path / "token.json"),
            env=clean_env(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=write,
            stderr=asyncio.subprocess.PIPE,
        )
    finally:
        os.close(write)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert err.decode() == ""
    assert proc.returncode == 141


async def test_a_missing_testing_extra_says_how_to_install_it(tmp_path: Path) -> None:
    # graphql-core made unimportable: the demo says how to get it, from a clone too.
    code = (
        "import sys; sys.modules['graphql'] = None; "
        "from netrex_async._cli import main; sys.exit(main(['demo']))"
    )
    returncode, out, err = await _run(sys.executable, "-c", code, env=clean_env())
    assert returncode == 2
    assert "pip install -e '.[testing]'" in err
    assert "netrex-async[testing]" in err
