"""Server processes for the benchmarks (run by :class:`_common.ServerProcess`).

Two servers, each printing one JSON line (``base_url`` and friends) once it listens,
then reading commands from stdin, one per line, and answering each with one JSON line.
The server exits when stdin closes, so it never outlives the benchmark.

``lean``: an aiohttp.web app that checks ``Authorization: Bearer <token>`` and answers a
    fixed GraphQL document. For the overhead benchmark: cheap per request, so the
    client process, not the server, is what limits throughput.
``fake``: :class:`netrex_async.testing.FakeNetrex` (OAuth2 with rotation and reuse
    detection, GraphQL through graphql-core with its answer cache on, so repeated
    queries cost a bearer check and a dict lookup), without its request log.

Commands: ``counters`` (both), ``reset`` (both), ``expire_all``, ``revoke_all`` (fake).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import attrs
from aiohttp import web

ANSWER = b'{"data":{"cameraList":[{"name":"Entrance"},{"name":"Yard"},{"name":"Garage"}]}}'


def event(i: int) -> dict[str, Any]:
    """One camera event, shaped like what a collector pages through."""
    return {
        "id": f"evt-{i:08d}",
        "camera": {"id": f"cam-{i % 17}", "name": f"Camera {i % 17} \u2013 Entrance"},
        "type": "motion" if i % 3 else "line_crossing",
        "startedAt": f"2026-12-01T10:{i % 60:02d}:{(i * 7) % 60:02d}Z",
        "duration": round(1.5 + (i % 40) * 0.25, 2),
        "score": (i * 37 % 100) / 100,
        "tags": ["person", "outdoor"] if i % 2 else ["vehicle"],
        "thumbnail": f"https://cdn.example.com/thumbs/{i:08d}.jpg",
        "acknowledged": bool(i % 5 == 0),
        "note": None,
    }


def answer_of(size: int) -> bytes:
    """A GraphQL answer of about ``size`` bytes (a page of events); 0: :data:`ANSWER`."""
    if size <= len(ANSWER):
        return ANSWER
    events: list[dict[str, Any]] = []
    while len(json.dumps({"data": {"events": events}}).encode()) < size:
        events.append(event(len(events)))
    return json.dumps({"data": {"events": events}}, ensure_ascii=False).encode()


class LeanServer:
    """Bearer check plus a fixed answer: about as little as an HTTP server can do."""

    def __init__(self, token: str, answer: bytes = ANSWER) -> None:
        self.expected = "Bearer " + token
        self.answer = answer
        self.calls = 0
        self.unauthorized = 0

    async def graphql(self, request: web.Request) -> web.Response:
        await request.read()
        if request.headers.get("Authorization") != self.expected:
            self.unauthorized += 1
            return web.json_response({"error": "invalid_token"}, status=401)
        self.calls += 1
        return web.Response(body=self.answer, content_type="application/json")

    def command(self, cmd: str) -> dict[str, Any]:
        if cmd == "reset":
            self.calls = self.unauthorized = 0
        return {"api_calls": self.calls, "unauthorized": self.unauthorized}


async def run_lean(args: argparse.Namespace) -> None:
    lean = LeanServer(args.token, answer_of(args.answer_bytes))
    app = web.Application()
    app.router.add_post("/api/graphql.php", lean.graphql)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    port = runner.addresses[0][1]
    info = {"base_url": f"http://127.0.0.1:{port}", "token": args.token}
    try:
        await serve_commands(info, lean.command)
    finally:
        await runner.cleanup()


def fake_counters(fake: Any) -> dict[str, Any]:
    c = fake.counters
    return {
        "api_calls": c.api_calls,
        "unauthorized": c.unauthorized,
        "token_requests": dict(c.token_requests),
        "refreshes": c.refreshes,
        "code_exchanges": c.code_exchanges,
        "tokens_issued": c.tokens_issued,
        "reuse_detected": c.reuse_detected,
    }


async def run_fake(args: argparse.Namespace) -> None:
    from netrex_async.testing import FakeNetrex

    settings: dict[str, Any] = {
        "expires_in": args.expires_in,
        "rotate_refresh_tokens": not args.no_rotate,
        "reuse_detection": not args.no_reuse_detection,
        "record_requests": False,
        "log_size": 1,
    }
    if "cache_results" in attrs.fields_dict(FakeNetrex):
        # Answers of repeated queries come from a cache (the bearer is still checked for
        # every call), so graphql-core does not make the server the bottleneck.
        settings["cache_results"] = not args.no_cache
    fake = FakeNetrex(**settings)

    def command(cmd: str) -> dict[str, Any]:
        if cmd == "reset":
            fake.reset_stats()
        elif cmd == "expire_all":
            fake.expire_all()
        elif cmd == "revoke_all":
            fake.revoke_all()
        return fake_counters(fake)

    async with fake:
        info = {
            "base_url": fake.base_url,
            "client_id": fake.client_id,
            "client_secret": fake.client_secret,
            "redirect_uri": fake.redirect_uri,
            "expires_in": args.expires_in,
        }
        await serve_commands(info, command)


async def serve_commands(info: dict[str, Any], handle: Any) -> None:
    """Print ``info``, then answer stdin commands until stdin closes."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    sys.stdout.write(json.dumps(info) + "\n")
    sys.stdout.flush()
    while line := await reader.readline():
        cmd = line.decode().strip()
        if cmd == "quit":
            break
        try:
            answer = handle(cmd)
        except Exception as e:
            answer = {"error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    sub = p.add_subparsers(dest="kind", required=True)
    lean = sub.add_parser("lean")
    lean.add_argument("--token", default="bench-token")
    lean.add_argument(
        "--answer-bytes", type=int, default=0, help="size of the answer (0: the tiny one)"
    )
    fake = sub.add_parser("fake")
    fake.add_argument("--expires-in", type=float, default=3600.0)
    fake.add_argument("--no-rotate", action="store_true")
    fake.add_argument("--no-reuse-detection", action="store_true")
    fake.add_argument("--no-cache", action="store_true", help="run graphql-core for every call")
    args = p.parse_args()
    asyncio.run(run_lean(args) if args.kind == "lean" else run_fake(args))


if __name__ == "__main__":
    main()
