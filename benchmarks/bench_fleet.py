"""Fleet: processes sharing one grant on a rotating provider, with and without a shared store.

A fake provider (FakeNetrex in its own process: refresh tokens rotate on every refresh,
and a rotated-out refresh token coming back revokes the whole grant) issues short-lived
tokens. For each scenario a new grant is obtained over HTTP, then ``--processes``
worker processes (this script with ``--worker``) call the API for ``--lifetimes`` token
lifetimes, each with ``--concurrency`` tasks pausing ``--pause`` s between calls. All
workers start together (they wait for a "go" after loading their token).

Scenarios:
  single       1 process, FileTokenStore: the reference rate of token requests.
  file         N processes, one FileTokenStore (one host).
  redis        N processes, one RedisTokenStore (a fleet; skipped without Redis).
  memory       N processes, each with its own MemoryTokenStore holding a copy of the
               grant: no shared store (contrast).
  authlib      N processes, each an Authlib httpx AsyncOAuth2Client refreshing on its
               own (contrast; skipped without authlib).

Reported: calls, failed calls (target 0), token requests, token requests per lifetime
(target 1.0 means the fleet asks for tokens exactly as often as one process would; the
table gives it relative to the ``single`` scenario, and absolute per token lifetime and
per refresh cycle, the ``lifetime - margin`` a token is used before the manager renews
it), refresh-token reuse detected at the provider, and the errors callers saw.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import _common as c

QUERY = "{cameraList{name}}"
REDIS_URL = os.environ.get("NETREX_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")


# -- the worker process ----------------------------------------------------------------


async def worker(args: Any) -> None:
    # Contrast scenarios fail by design; their log lines would drown the table.
    logging.getLogger("netrex_async").setLevel(logging.CRITICAL)
    info = json.loads(args.info)
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    if args.scenario == "authlib":
        result = await authlib_worker(args, info, reader)
    else:
        result = await netrex_worker(args, info, reader)
    print(json.dumps(result), flush=True)


async def netrex_worker(args: Any, info: dict[str, Any], go: asyncio.StreamReader) -> Any:
    from netrex_async import (
        FileTokenStore,
        MemoryTokenStore,
        NetrexClient,
        OAuth2Client,
        Token,
        TokenManager,
    )

    if args.scenario == "redis":
        from netrex_async.stores.redis import RedisTokenStore
    await ready(go)  # the grant is in the store (or the file) from here on
    store: Any
    if args.scenario in ("file", "single"):
        store = FileTokenStore(args.path)
    elif args.scenario == "redis":
        store = RedisTokenStore(REDIS_URL, key=args.key)
    else:
        store = MemoryTokenStore(Token.from_dict(c.read_json(args.path)))
    app = c.oauth_app(info)
    margin = args.margin if args.margin > 0 else None
    async with (
        store,
        OAuth2Client(app) as oauth,
        TokenManager(oauth, store, margin=margin) as tm,
        NetrexClient(tm, provider=app.provider) as client,
    ):

        async def call() -> Any:
            return await client.graphql(QUERY)

        result = await run_load(call, args)
        s = tm.stats
        result["manager"] = {
            "refreshes": s.refreshes,
            "adoptions": s.adoptions,
            "failures": s.failures,
            "invalidations": s.invalidations,
        }
        return result


async def authlib_worker(args: Any, info: dict[str, Any], go: asyncio.StreamReader) -> Any:
    AsyncOAuth2Client = c.authlib_client()
    await ready(go)
    saved = c.read_json(args.path)
    token = {
        "access_token": saved["access_token"],
        "refresh_token": saved["refresh_token"],
        "token_type": "Bearer",
        "expires_at": saved["expires_at"],
    }
    client = AsyncOAuth2Client(
        client_id=info["client_id"],
        client_secret=info["client_secret"],
        token=token,
        token_endpoint=info["base_url"] + "/oauth2/token",
        token_endpoint_auth_method="client_secret_post",
        leeway=args.margin if args.margin > 0 else args.lifetime / 2,
    )
    url = info["base_url"] + "/api/graphql.php"
    headers = {"Content-Type": "application/json"}
    body = json.dumps({"query": QUERY}).encode()

    async def call() -> Any:
        resp = await client.post(url, content=body, headers=headers)
        if resp.status_code != 200:
            raise RuntimeError(f"HTTP {resp.status_code}")
        return resp.json()["data"]

    try:
        return await run_load(call, args)
    finally:
        await client.aclose()


async def ready(go: asyncio.StreamReader) -> None:
    """Say "ready" (everything imported), then wait for "go" (the grant is stored)."""
    print("ready", flush=True)
    await go.readline()


async def run_load(call: Any, args: Any) -> dict[str, Any]:
    deadline = time.monotonic() + args.duration
    ok = 0
    errors: Counter[str] = Counter()
    first_error = ""

    async def task() -> None:
        nonlocal ok, first_error
        while time.monotonic() < deadline:
            try:
                await call()
                ok += 1
            except Exception as e:
                errors[type(e).__name__] += 1
                if not first_error:
                    first_error = f"{type(e).__name__}: {str(e)[:160]}"
            await asyncio.sleep(args.pause)

    await asyncio.gather(*(task() for _ in range(args.concurrency)))
    return {"ok": ok, "errors": dict(errors), "first_error": first_error}


# -- the orchestrator ------------------------------------------------------------------


async def redis_available() -> bool:
    try:
        import redis.asyncio as aioredis
    except ImportError:
        return False
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        return bool(await asyncio.wait_for(client.ping(), 2))
    except Exception:
        return False
    finally:
        await client.aclose()


async def store_grant(name: str, grant: Any, path: Path, key: str) -> None:
    if name in ("file", "single"):
        from netrex_async import FileTokenStore

        async with FileTokenStore(path) as store, store.lock():
            await store.save(grant)
    elif name == "redis":
        from netrex_async.stores.redis import RedisTokenStore

        async with RedisTokenStore(REDIS_URL, key=key) as store, store.lock():
            await store.save(grant)
    else:
        c.write_json(path, grant.to_dict())


async def scenario(
    name: str, processes: int, args: Any, server: c.ServerProcess, tmp: Path
) -> dict[str, Any]:
    info = server.info
    path = tmp / f"{name}-{uuid.uuid4().hex[:8]}.json"
    key = f"bench-fleet-{uuid.uuid4().hex[:12]}"
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        "--scenario",
        name,
        "--path",
        str(path),
        "--key",
        key,
        "--info",
        json.dumps(info),
        "--duration",
        str(args.duration),
        "--concurrency",
        str(args.concurrency),
        "--pause",
        str(args.pause),
        "--margin",
        str(args.margin),
        "--lifetime",
        str(args.lifetime),
    ]
    procs = [
        await asyncio.create_subprocess_exec(
            *cmd, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        for _ in range(processes)
    ]
    try:
        for p in procs:
            assert p.stdout is not None
            line = await asyncio.wait_for(p.stdout.readline(), 60)
            if line.strip() != b"ready":
                raise RuntimeError(f"a {name} worker did not start: {line!r}")
        # Every worker is up: now the grant, so none of its lifetime is spent starting.
        await store_grant(name, await c.obtain_grant(info), path, key)
        await server.command("reset")
        t0 = time.monotonic()
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(b"go\n")
            await p.stdin.drain()
        outs = [json.loads((await p.communicate())[0]) for p in procs]
        elapsed = time.monotonic() - t0
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
                await p.wait()
    counters = await server.command("counters")
    if name == "redis":
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(REDIS_URL)
        await client.delete(f"netrex_async:{key}", f"netrex_async:{key}:lock")
        await client.aclose()
    errors: Counter[str] = Counter()
    for o in outs:
        errors.update(o["errors"])
    lifetimes = args.duration / args.lifetime
    margin = args.margin if args.margin > 0 else args.lifetime / 2
    cycles = args.duration / (args.lifetime - margin)
    token_requests = counters["refreshes"] + counters["code_exchanges"]
    return {
        "scenario": name,
        "processes": processes,
        "elapsed": elapsed,
        "calls": sum(o["ok"] for o in outs) + sum(errors.values()),
        "failures": sum(errors.values()),
        "errors": dict(errors),
        "first_error": next((o["first_error"] for o in outs if o["first_error"]), ""),
        "token_requests": token_requests,
        "per_lifetime": token_requests / lifetimes,
        "per_cycle": token_requests / cycles,
        "reuse_detected": counters["reuse_detected"],
        "unauthorized": counters["unauthorized"],
        "adoptions": sum(o.get("manager", {}).get("adoptions", 0) for o in outs),
    }


async def main() -> None:
    p = c.parser(__doc__)
    p.add_argument("--processes", type=int, default=8)
    p.add_argument("--lifetime", type=float, default=2.0, help="token lifetime, seconds")
    p.add_argument("--lifetimes", type=float, default=10.0, help="how many lifetimes to run")
    p.add_argument("--concurrency", type=int, default=4, help="tasks per process")
    p.add_argument("--pause", type=float, default=0.05, help="pause after each call, s")
    p.add_argument(
        "--margin", type=float, default=0.0, help="TokenManager margin, s (0: its default)"
    )
    p.add_argument(
        "--scenarios",
        nargs="+",
        default=["single", "file", "redis", "memory", "authlib"],
        help="which scenarios to run",
    )
    # The worker's own options.
    p.add_argument("--worker", action="store_true", help=argparse_hidden())
    p.add_argument("--scenario", help=argparse_hidden())
    p.add_argument("--path", help=argparse_hidden())
    p.add_argument("--key", help=argparse_hidden())
    p.add_argument("--info", help=argparse_hidden())
    p.add_argument("--duration", type=float, default=0.0, help=argparse_hidden())
    args = p.parse_args()
    if args.worker:
        await worker(args)
        return
    if args.quick:
        args.processes, args.lifetime, args.lifetimes = 3, 1.0, 3.0
        args.scenarios = [s for s in args.scenarios if s in ("file", "memory")]
    args.duration = args.lifetime * args.lifetimes
    names = list(args.scenarios)
    if "redis" in names and not await redis_available():
        print(f"(no Redis at {REDIS_URL}: skipping the redis scenario)", file=sys.stderr)
        names.remove("redis")
    if "authlib" in names:
        try:
            import authlib  # noqa: F401
        except ImportError:
            names.remove("authlib")

    results = []
    with tempfile.TemporaryDirectory(prefix="netrex-fleet-") as tmp:
        async with c.ServerProcess("fake", "--expires-in", str(args.lifetime)) as server:
            for name in names:
                n = 1 if name == "single" else args.processes
                results.append(await scenario(name, n, args, server, Path(tmp)))
    ref = next((r for r in results if r["scenario"] == "single"), None)
    for r in results:
        r["vs_single"] = r["token_requests"] / ref["token_requests"] if ref else None
    rows = [
        (
            r["scenario"],
            r["processes"],
            r["calls"],
            r["failures"],
            r["token_requests"],
            r["vs_single"],
            r["per_lifetime"],
            r["per_cycle"],
            r["reuse_detected"],
            r["adoptions"],
            ", ".join(f"{k} {v}" for k, v in r["errors"].items()) or "-",
        )
        for r in results
    ]
    headers = [
        "scenario",
        "procs",
        "calls",
        "failures",
        "token reqs",
        "vs single",
        "per lifetime",
        "per cycle",
        "reuse",
        "adopted",
        "errors",
    ]
    notes = [
        f"{args.lifetimes:g} lifetimes of {args.lifetime:g} s; margin "
        f"{args.margin if args.margin > 0 else args.lifetime / 2:g} s "
        f"(refresh cycle {args.lifetime - (args.margin or args.lifetime / 2):g} s)"
    ]
    notes += [f"{r['scenario']}: first error: {r['first_error']}" for r in results if r["failures"]]
    settings = {
        k: getattr(args, k)
        for k in ("processes", "lifetime", "lifetimes", "concurrency", "pause", "margin")
    }
    c.report(
        "fleet",
        {"settings": settings, "scenarios": results},
        [c.table(headers, rows), "\n".join(notes)],
        args,
    )


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    c.run(main)
