"""``python -m netrex_async.testing``: standalone, as scripts and benchmarks run it."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys

import aiohttp
import pytest

from netrex_async.testing._main import build_parser, main, serve


@pytest.mark.asyncio
async def test_json_mode_in_a_subprocess() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "netrex_async.testing",
        "--json",
        "--verbose",
        "--expires-in",
        "0.5",
        "--no-rotate",
        "--client-id",
        "bench",
        "--redirect-uri",
        "http://127.0.0.1:1/a",
        "--redirect-uri",
        "http://127.0.0.1:1/b",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        info = json.loads(line)
        assert set(info) == {
            "base_url",
            "client_id",
            "client_secret",
            "redirect_uri",
            "redirect_uris",
        }
        assert info["client_id"] == "bench"
        assert info["redirect_uris"] == ["http://127.0.0.1:1/a", "http://127.0.0.1:1/b"]
        base = info["base_url"]
        async with aiohttp.ClientSession() as session:
            auth = f"{base}/oauth2/auth"
            params = {
                "response_type": "code",
                "client_id": "bench",
                "redirect_uri": "http://127.0.0.1:1/b",
                "scope": "read",
                "state": "s",
            }
            async with session.get(auth, params=params, allow_redirects=False) as r:
                code = r.headers["Location"].split("code=")[1].split("&")[0]
            token_params = {
                "client_id": "bench",
                "client_secret": info["client_secret"],
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": "http://127.0.0.1:1/b",
            }
            async with session.post(f"{base}/oauth2/token", params=token_params) as r:
                token = await r.json()
            assert token["expires_in"] == 0.5
            async with session.post(
                f"{base}/api/graphql.php",
                json={"query": "{cameraList{name}}"},
                headers={"Authorization": f"Bearer {token['access_token']}"},
            ) as r:
                assert r.status == 200
                assert len((await r.json())["data"]["cameraList"]) == 3
            refresh = {
                "client_id": "bench",
                "client_secret": info["client_secret"],
                "grant_type": "refresh_token",
                "refresh_token": token["refresh_token"],
            }
            async with session.post(f"{base}/oauth2/token", params=refresh) as r:
                assert (await r.json())["refresh_token"] == token["refresh_token"]  # --no-rotate
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    log = err.decode()
    assert log.count("RecordedRequest(") == 4
    for secret in (info["client_secret"], code, token["access_token"], token["refresh_token"]):
        assert secret not in log


@pytest.mark.asyncio
async def test_text_mode_and_custom_secret() -> None:
    args = build_parser().parse_args(["--client-secret", "s3cret-for-tests", "--port", "0"])
    out = io.StringIO()
    task = asyncio.create_task(serve(args, out))
    for _ in range(200):
        if "Press Ctrl-C" in out.getvalue():
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    text = out.getvalue()
    assert "Fake Netrex provider listening on http://127.0.0.1:" in text
    assert "client_secret: s3cret-for-tests" in text
    assert "/api/graphql.php" in text


@pytest.mark.parametrize(
    "argv",
    [
        ["--host", "0.0.0.0"],
        ["--host", "example.com"],
        ["--expires-in", "0"],
        ["--expires-in", "x"],
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


def test_a_busy_port_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["--port", str(port)]) == 1
    assert "cannot listen on 127.0.0.1" in capsys.readouterr().err
