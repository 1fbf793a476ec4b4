"""Overhead: authenticated GraphQL calls per second, NetrexClient against raw aiohttp and peers.

Calls at concurrency 1, 10 and 100 (closed loop: C tasks, each making one call after
the other, for ``--seconds`` per timed run) against one lean server in its own process
(``_servers.py lean``: an aiohttp.web app that checks the bearer token and answers a
fixed GraphQL document), so that this process measures client cost only. Contenders run
interleaved, in a rotating order, for ``--rounds`` rounds; the table gives medians, and
each contender's throughput as a ratio to raw aiohttp's in the same round (the median
of the per-round ratios, with their range). Client CPU per call is reported too: on a
busy machine it is steadier than throughput.

Contenders:
  raw-aiohttp      aiohttp.ClientSession with a fixed Authorization header: the limit.
                   Same connector, timeouts and cookie jar as NetrexClient's own session,
                   and the same per-call work (JSON encode, POST, read, JSON decode,
                   check ``errors``), so the gap is what the library adds.
  netrex-manager   NetrexClient with a TokenManager on a fresh token (MemoryTokenStore).
  netrex-static    NetrexClient with a StaticToken (a user token).
  authlib-httpx    Authlib's httpx AsyncOAuth2Client (if installed).
  aiohttp-oauth2   aiohttp-oauth2-client's OAuth2Middleware (if installed).

The server process's CPU use is measured from /proc/PID/stat (fraction of one core
while a run lasts), to show it is not what limits throughput.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import _common as c
import aiohttp

QUERY = "{cameraList{name}}"
TOKEN = "bench-token"
Call = Callable[[], Awaitable[Any]]


_encode_json = json.JSONEncoder(separators=(",", ":")).encode  # as NetrexClient does


def graphql_body(query: str, variables: Any = None) -> bytes:
    payload: dict[str, Any] = {"query": query}
    if variables is not None:
        payload["variables"] = variables
    return _encode_json(payload).encode()


def graphql_data(status: int, raw: bytes) -> Any:
    if not 200 <= status < 300:
        raise RuntimeError(f"HTTP {status}")
    answer = json.loads(raw)
    if not isinstance(answer, dict) or answer.get("errors") or "data" not in answer:
        raise RuntimeError("not a GraphQL answer")
    return answer["data"]


class Contender:
    """A client under test: ``setup()`` makes ``call``, ``close()`` tears it down."""

    name = ""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.url = base_url + "/api/graphql.php"
        self.call: Call

    async def setup(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


def aiohttp_session(**kwargs: Any) -> aiohttp.ClientSession:
    """A session configured as NetrexClient configures its own."""
    from netrex_async._client import DEFAULT_TIMEOUT

    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=100, ttl_dns_cache=300),
        timeout=DEFAULT_TIMEOUT,
        cookie_jar=aiohttp.DummyCookieJar(),
        **kwargs,
    )


JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


class RawAiohttp(Contender):
    name = "raw-aiohttp"

    async def setup(self) -> None:
        self.session = aiohttp_session(
            headers={"Authorization": "Bearer " + TOKEN, "User-Agent": "bench"}
        )
        session, url = self.session, self.url

        async def call() -> Any:
            body = graphql_body(QUERY)
            async with session.post(url, data=body, headers=JSON_HEADERS) as resp:
                raw = await resp.read()
                return graphql_data(resp.status, raw)

        self.call = call

    async def close(self) -> None:
        await self.session.close()


class NetrexManager(Contender):
    name = "netrex-manager"

    async def setup(self) -> None:
        from netrex_async import (
            MemoryTokenStore,
            NetrexClient,
            OAuth2App,
            OAuth2Client,
            Provider,
            Token,
            TokenManager,
        )

        provider = Provider(self.base_url)
        app = OAuth2App(
            client_id="bench",
            client_secret="bench-secret",
            redirect_uri="http://127.0.0.1/callback",
            provider=provider,
        )
        now = time.time()
        token = Token(TOKEN, "bench-refresh", issued_at=now, expires_at=now + 3600)
        self.oauth = OAuth2Client(app)
        self.manager = TokenManager(self.oauth, MemoryTokenStore(token))
        await self.manager.__aenter__()
        self.client = NetrexClient(self.manager, provider=provider)
        client = self.client

        async def call() -> Any:
            return await client.graphql(QUERY)

        self.call = call

    async def close(self) -> None:
        await self.client.aclose()
        await self.manager.aclose()
        await self.oauth.aclose()


class NetrexStatic(Contender):
    name = "netrex-static"

    async def setup(self) -> None:
        from netrex_async import NetrexClient, Provider

        self.client = NetrexClient(TOKEN, provider=Provider(self.base_url))
        client = self.client

        async def call() -> Any:
            return await client.graphql(QUERY)

        self.call = call

    async def close(self) -> None:
        await self.client.aclose()


class AuthlibHttpx(Contender):
    name = "authlib-httpx"

    async def setup(self) -> None:
        import httpx

        AsyncOAuth2Client = c.authlib_client()
        self.client = AsyncOAuth2Client(
            client_id="bench",
            client_secret="bench-secret",
            token={"access_token": TOKEN, "token_type": "Bearer", "expires_in": 3600},
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
            timeout=60,
        )
        client, url = self.client, self.url

        async def call() -> Any:
            body = graphql_body(QUERY)
            resp = await client.post(url, content=body, headers=JSON_HEADERS)
            return graphql_data(resp.status_code, resp.content)

        self.call = call

    async def close(self) -> None:
        await self.client.aclose()


class AiohttpOAuth2Client(Contender):
    name = "aiohttp-oauth2"

    async def setup(self) -> None:
        from aiohttp_oauth2_client.grant.authorization_code import AuthorizationCodeGrant
        from aiohttp_oauth2_client.middleware import OAuth2Middleware

        self.grant = AuthorizationCodeGrant(
            token_url=self.base_url + "/oauth2/token",
            authorization_url=self.base_url + "/oauth2/auth",
            client_id="bench",
            token={"access_token": TOKEN, "token_type": "Bearer", "expires_in": 3600},
        )
        self.session = aiohttp_session(
            middlewares=(OAuth2Middleware(self.grant),), headers={"User-Agent": "bench"}
        )
        session, url = self.session, self.url

        async def call() -> Any:
            body = graphql_body(QUERY)
            async with session.post(url, data=body, headers=JSON_HEADERS) as resp:
                raw = await resp.read()
                return graphql_data(resp.status, raw)

        self.call = call

    async def close(self) -> None:
        await self.session.close()
        await self.grant.close()


def available(skip: set[str]) -> list[type[Contender]]:
    found: list[type[Contender]] = [RawAiohttp, NetrexManager, NetrexStatic]
    try:
        import authlib  # noqa: F401
        import httpx  # noqa: F401

        found.append(AuthlibHttpx)
    except ImportError:
        pass
    try:
        import aiohttp_oauth2_client  # noqa: F401

        found.append(AiohttpOAuth2Client)
    except ImportError:
        pass
    return [k for k in found if k.name not in skip]


async def drive(call: Call, calls: int, concurrency: int) -> None:
    """``calls`` calls by ``concurrency`` tasks, each making its share one after another."""
    share, extra = divmod(calls, concurrency)

    async def worker(n: int) -> None:
        for _ in range(n):
            await call()

    await asyncio.gather(*(worker(share + (i < extra)) for i in range(concurrency)))


async def drive_for(call: Call, seconds: float, concurrency: int) -> int:
    """Calls by ``concurrency`` tasks, one after another, until ``seconds`` have passed."""
    deadline = time.perf_counter() + seconds
    clock = time.perf_counter

    async def worker() -> int:
        n = 0
        while clock() < deadline:
            await call()
            n += 1
        return n

    return sum(await asyncio.gather(*(worker() for _ in range(concurrency))))


async def measure(
    contender: Contender, server: c.ServerProcess, seconds: float, concurrency: int
) -> dict[str, float]:
    await drive(contender.call, max(2 * concurrency, 50), concurrency)  # warm connections
    c.settle()
    s0, p0, t0 = server.cpu_seconds(), c.cpu_seconds(), time.perf_counter()
    calls = await drive_for(contender.call, seconds, concurrency)
    t1, p1, s1 = time.perf_counter(), c.cpu_seconds(), server.cpu_seconds()
    wall = t1 - t0
    return {
        "calls": calls,
        "throughput": calls / wall,
        "client_cpu_us_per_call": (p1 - p0) / calls * 1e6,
        "client_cpu_load": (p1 - p0) / wall,
        "server_cpu_load": (s1 - s0) / wall,
    }


async def main() -> None:
    p = c.parser(__doc__)
    p.add_argument("--seconds", type=float, default=0.4, help="length of each timed run")
    p.add_argument("--rounds", type=int, default=15, help="rounds per concurrency")
    p.add_argument(
        "--concurrency", type=int, nargs="+", default=[1, 10, 100], help="concurrency levels"
    )
    p.add_argument("--skip", nargs="*", default=[], help="contenders to leave out")
    p.add_argument(
        "--only", nargs="*", default=None, help="run only these contenders (raw is kept)"
    )
    p.add_argument(
        "--profile",
        metavar="CONTENDER",
        help="instead of the table: pyinstrument profile of one contender at the "
        "largest concurrency (for example netrex-manager)",
    )
    p.add_argument(
        "--hold",
        metavar="CONTENDER",
        help="instead of the table: run one contender for 20 x --seconds at the largest "
        "concurrency and print nothing else (to profile from outside, e.g. with py-spy)",
    )
    args = p.parse_args()
    if args.quick:
        args.seconds, args.rounds = 0.1, 2
    kinds = available(set(args.skip))
    if args.only is not None:
        kinds = [k for k in kinds if k.name in {*args.only, "raw-aiohttp"}]

    async with c.ServerProcess("lean", "--token", TOKEN) as server:
        contenders = [k(server.base_url) for k in kinds]
        for k in contenders:
            await k.setup()
        try:
            if args.profile or args.hold:
                await profile(args, contenders, server)
                return
            results = await compare(args, contenders, server)
        finally:
            for k in contenders:
                await k.close()
        counters = await server.command("counters")
    if counters["unauthorized"]:
        raise SystemExit(f"the server refused {counters['unauthorized']} calls")
    render(args, results, kinds)


async def compare(
    args: Any, contenders: list[Contender], server: c.ServerProcess
) -> dict[int, dict[str, list[dict[str, float]]]]:
    results: dict[int, dict[str, list[dict[str, float]]]] = {}
    for conc in args.concurrency:
        per: dict[str, list[dict[str, float]]] = {k.name: [] for k in contenders}
        for r in range(args.rounds):
            shift = r % len(contenders)
            for k in contenders[shift:] + contenders[:shift]:
                per[k.name].append(await measure(k, server, args.seconds, conc))
        results[conc] = per
    return results


def summarize(runs: list[dict[str, float]], raw: list[dict[str, float]]) -> dict[str, float]:
    ratios = [a["throughput"] / b["throughput"] for a, b in zip(runs, raw, strict=True)]
    cpu_ratios = [
        b["client_cpu_us_per_call"] / a["client_cpu_us_per_call"]
        for a, b in zip(runs, raw, strict=True)
    ]
    return {
        "throughput": c.median([x["throughput"] for x in runs]),
        "ratio_vs_raw": c.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "client_cpu_us_per_call": c.median([x["client_cpu_us_per_call"] for x in runs]),
        "cpu_efficiency_vs_raw": c.median(cpu_ratios),
        # Best run against best run: the least disturbed runs on a shared machine.
        "cpu_efficiency_best": min(x["client_cpu_us_per_call"] for x in raw)
        / min(x["client_cpu_us_per_call"] for x in runs),
        "client_cpu_load": c.median([x["client_cpu_load"] for x in runs]),
        "server_cpu_load": c.median([x["server_cpu_load"] for x in runs]),
        "server_cpu_load_max": max(x["server_cpu_load"] for x in runs),
    }


def render(args: Any, results: dict[int, dict[str, list[dict[str, float]]]], kinds: Any) -> None:
    summary = {
        conc: {name: summarize(runs, per["raw-aiohttp"]) for name, runs in per.items()}
        for conc, per in results.items()
    }
    rows = []
    for conc, per in summary.items():
        for name, s in per.items():
            rows.append(
                [
                    conc,
                    name,
                    s["throughput"],
                    f"{s['ratio_vs_raw']:.3f} ({s['ratio_min']:.2f}-{s['ratio_max']:.2f})",
                    s["client_cpu_us_per_call"],
                    f"{s['cpu_efficiency_vs_raw']:.3f} (best {s['cpu_efficiency_best']:.3f})",
                    f"{s['client_cpu_load']:.2f}",
                    f"{s['server_cpu_load']:.2f} (max {s['server_cpu_load_max']:.2f})",
                ]
            )
    headers = [
        "conc",
        "contender",
        "calls/s",
        "vs raw (range)",
        "client CPU us/call",
        "raw CPU/this CPU",
        "client cores",
        "server cores",
    ]
    c.report(
        "overhead",
        {
            "settings": {
                "seconds_per_run": args.seconds,
                "rounds": args.rounds,
                "concurrency": args.concurrency,
                "server": "lean aiohttp.web (bearer check, fixed answer), own process",
            },
            "summary": summary,
            "runs": results,
        },
        [c.table(headers, rows)],
        args,
    )


async def profile(args: Any, contenders: list[Contender], server: c.ServerProcess) -> None:
    target = next(k for k in contenders if k.name == (args.profile or args.hold))
    conc = max(args.concurrency)
    await drive(target.call, 2 * conc, conc)
    if args.hold:
        t0, p0 = time.perf_counter(), c.cpu_seconds()
        n = await drive_for(target.call, args.seconds * 20, conc)
        wall, cpu = time.perf_counter() - t0, c.cpu_seconds() - p0
        print(f"{target.name}: {n / wall:.0f} calls/s, {cpu / n * 1e6:.1f} us CPU per call")
        return
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0002, async_mode="disabled")
    profiler.start()
    await drive_for(target.call, args.seconds * 10, conc)
    profiler.stop()
    print(profiler.output_text(unicode=False, color=False, show_all=False))


if __name__ == "__main__":
    c.run(main)
