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
  raw-control      raw aiohttp again, an A/A control: its ratio to raw aiohttp is the
                   noise floor of the run; a gap smaller than its distance from 1.000
                   is not a measured difference.
  raw-unbounded    raw aiohttp without aiohttp's total timeout: no bound on a call at
                   all, so cheaper than any bounded client; the floor, not a peer.
  raw-idiomatic    raw aiohttp as usually written: a default ClientSession (cookie jar,
                   default timeouts) with the header, ``json=``, ``await resp.json()``.
  netrex-manager   NetrexClient with a TokenManager on a fresh token (MemoryTokenStore).
  netrex-static    NetrexClient with a StaticToken (a user token), with the ``speed``
                   extra's codec when it is installed.
  netrex-nospeed   netrex-static with the standard library's json (as without the
                   ``speed`` extra), in the same run.
  authlib-httpx    Authlib's httpx AsyncOAuth2Client (if installed).
  aiohttp-oauth2   aiohttp-oauth2-client's OAuth2Middleware (if installed).

The server process's CPU use is measured from /proc/PID/stat (fraction of one core
while a run lasts), to show it is not what limits throughput.

The raw contenders keep aiohttp's ``total=60`` timeout: the same one-minute bound every
NetrexClient call has (whose own deadline replaces aiohttp's per-attempt ``total``).

``--answer-bytes 60000`` makes the answer a 60 KB page of events instead of three names.

``--transport memory`` replaces the network and the server by an in-memory transport
under aiohttp (its connector hands out connections whose transport answers each
complete request with a canned response on the next turn of the event loop). Every
line of aiohttp's client and of the library still runs; the kernel, the loopback and
the server do not. What is left is pure client CPU per call, far steadier on a busy
machine than a network run, and the upper bound of the library's share of a call.
aiohttp-based contenders only (httpx has a transport layer of its own).
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


def _servers_answer(size: int = 0) -> bytes:
    from _servers import answer_of

    return answer_of(size)


def speed_codec(on: bool) -> None:
    """Switch the library's fast JSON codec (the ``speed`` extra) on or off."""
    from netrex_async import _json

    if not hasattr(_json, "_fast_loads"):
        return
    if not hasattr(speed_codec, "saved"):
        speed_codec.saved = (_json._fast_loads, _json._fast_dumps)  # type: ignore[attr-defined]
    fast_loads, fast_dumps = speed_codec.saved  # type: ignore[attr-defined]
    _json._fast_loads = fast_loads if on else None
    _json._fast_dumps = fast_dumps if on else None


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

    #: Whether the library's fast codec is on while this contender runs.
    speed = True

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.url = base_url + "/api/graphql.php"
        self.call: Call

    async def setup(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class MemoryTransport(asyncio.Transport):
    """Answers each complete HTTP request written to it, on the next turn of the loop."""

    def __init__(self, protocol: Any, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._protocol = protocol
        self._loop = loop
        self._buf = bytearray()
        self._closing = False

    def write(self, data: Any) -> None:
        self._buf += data
        while (end := self._buf.find(b"\r\n\r\n")) >= 0:
            head = bytes(self._buf[:end])
            at = head.lower().find(b"\r\ncontent-length:")
            length = int(head[at + 17 : head.find(b"\r\n", at + 2)]) if at >= 0 else 0
            if len(self._buf) < end + 4 + length:
                return
            del self._buf[: end + 4 + length]
            answer = OK if b"Bearer " + TOKEN.encode() in head else UNAUTHORIZED
            self._loop.call_soon(self._protocol.data_received, answer)

    def writelines(self, chunks: Any) -> None:
        self.write(b"".join(chunks))

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self._loop.call_soon(self._protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def is_reading(self) -> bool:
        return True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def can_write_eof(self) -> bool:
        return False


def _http_answer(status: str, body: bytes) -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


OK = _http_answer("200 OK", _servers_answer())
UNAUTHORIZED = _http_answer("401 Unauthorized", b'{"error":"invalid_token"}')


class MemoryConnector(aiohttp.BaseConnector):
    """Connections whose transport is a :class:`MemoryTransport`: no socket, no server."""

    allowed_protocol_schema_set = frozenset({"", "http", "https"})

    async def _create_connection(self, req: Any, traces: Any, timeout: Any) -> Any:  # noqa: ASYNC109
        from aiohttp.client_proto import ResponseHandler

        protocol = ResponseHandler(self._loop)
        protocol.connection_made(MemoryTransport(protocol, self._loop))
        return protocol


#: "tcp" (a server process) or "memory" (MemoryConnector); set from --transport.
TRANSPORT = "tcp"


#: The raw contenders' timeout: a call ends within a minute, as a NetrexClient call does.
RAW_TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=10)


def aiohttp_session(timeout: Any = RAW_TIMEOUT, **kwargs: Any) -> aiohttp.ClientSession:
    """A session configured as NetrexClient configures its own (with ``timeout``)."""
    connector: aiohttp.BaseConnector
    if TRANSPORT == "memory":
        connector = MemoryConnector(limit=100)
    else:
        connector = aiohttp.TCPConnector(limit=100, ttl_dns_cache=300)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        cookie_jar=aiohttp.DummyCookieJar(),
        **kwargs,
    )


JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


class RawAiohttp(Contender):
    name = "raw-aiohttp"
    timeout = RAW_TIMEOUT

    async def setup(self) -> None:
        self.session = aiohttp_session(
            timeout=self.timeout,
            headers={"Authorization": "Bearer " + TOKEN, "User-Agent": "bench"},
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


class RawAiohttpControl(RawAiohttp):
    """raw aiohttp again: its ratio to raw aiohttp shows the noise of the machine."""

    name = "raw-control"


class RawUnbounded(RawAiohttp):
    """raw aiohttp with no total timeout: a call may then wait forever (the floor)."""

    name = "raw-unbounded"
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)


class RawIdiomatic(Contender):
    """raw aiohttp as it is usually written: default session, ``json=``, ``resp.json()``."""

    name = "raw-idiomatic"

    async def setup(self) -> None:
        connector = MemoryConnector() if TRANSPORT == "memory" else None
        self.session = aiohttp.ClientSession(
            connector=connector, headers={"Authorization": "Bearer " + TOKEN}
        )
        session, url = self.session, self.url

        async def call() -> Any:
            async with session.post(url, json={"query": QUERY}) as resp:
                resp.raise_for_status()
                answer = await resp.json()
                if answer.get("errors"):
                    raise RuntimeError("GraphQL errors")
                return answer["data"]

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
        self.session = netrex_session() if TRANSPORT == "memory" else None
        self.client = NetrexClient(self.manager, provider=provider, session=self.session)
        client = self.client

        async def call() -> Any:
            return await client.graphql(QUERY)

        self.call = call

    async def close(self) -> None:
        await self.client.aclose()
        await self.manager.aclose()
        await self.oauth.aclose()
        if self.session is not None:
            await self.session.close()


class NetrexStatic(Contender):
    name = "netrex-static"

    async def setup(self) -> None:
        from netrex_async import NetrexClient, Provider

        self.session = netrex_session() if TRANSPORT == "memory" else None
        self.client = NetrexClient(TOKEN, provider=Provider(self.base_url), session=self.session)
        client = self.client

        async def call() -> Any:
            return await client.graphql(QUERY)

        self.call = call

    async def close(self) -> None:
        await self.client.aclose()
        if self.session is not None:
            await self.session.close()


class NetrexNoSpeed(NetrexStatic):
    """netrex-static with the standard library's json, as without the ``speed`` extra."""

    name = "netrex-nospeed"
    speed = False


def netrex_session() -> aiohttp.ClientSession:
    """A memory-transport session with NetrexClient's own timeouts."""
    from netrex_async._client import DEFAULT_TIMEOUT

    return aiohttp_session(timeout=DEFAULT_TIMEOUT)


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
    found: list[type[Contender]] = [
        RawAiohttp,
        RawAiohttpControl,
        RawUnbounded,
        RawIdiomatic,
        NetrexManager,
        NetrexStatic,
        NetrexNoSpeed,
    ]
    try:
        if TRANSPORT == "memory":
            raise ImportError("httpx brings a transport layer of its own")
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
        while True:  # at least one call each, however busy the machine
            await call()
            n += 1
            if clock() >= deadline:
                return n

    return sum(await asyncio.gather(*(worker() for _ in range(concurrency))))


class NoServer:
    """Stands in for the server process with ``--transport memory``."""

    base_url = "http://127.0.0.1:9"

    def cpu_seconds(self) -> float:
        return float("nan")

    async def command(self, cmd: str) -> dict[str, Any]:
        return {"unauthorized": 0}

    async def __aenter__(self) -> NoServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass


async def measure(
    contender: Contender, server: Any, seconds: float, concurrency: int, warm: bool = True
) -> dict[str, float]:
    speed_codec(contender.speed)
    if warm:
        await drive(contender.call, max(2 * concurrency, 50), concurrency)  # open connections
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
        "server_cpu_us_per_call": (s1 - s0) / calls * 1e6,
    }


async def main() -> None:
    p = c.parser(__doc__)
    p.add_argument("--seconds", type=float, default=0.1, help="length of each timed run")
    p.add_argument(
        "--rounds",
        type=int,
        default=35,
        help="rounds per concurrency (a multiple of the number of contenders puts each "
        "one in each position of the rotating order equally often)",
    )
    p.add_argument(
        "--concurrency", type=int, nargs="+", default=[1, 10, 100], help="concurrency levels"
    )
    p.add_argument("--skip", nargs="*", default=[], help="contenders to leave out")
    p.add_argument(
        "--only",
        nargs="*",
        default=None,
        help="run only these contenders (raw-aiohttp and raw-control are kept)",
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
    p.add_argument(
        "--answer-bytes",
        type=int,
        default=0,
        help="size of the server's answer (0: three camera names, about 80 bytes)",
    )
    p.add_argument(
        "--transport",
        choices=("tcp", "memory"),
        default="tcp",
        help="tcp: a server process on loopback; memory: no network, client CPU only",
    )
    args = p.parse_args()
    if args.quick:
        args.seconds, args.rounds = 0.1, 2
    global TRANSPORT, OK
    TRANSPORT = args.transport
    OK = _http_answer("200 OK", _servers_answer(args.answer_bytes))
    kinds = available(set(args.skip))
    if args.only is not None:
        kinds = [k for k in kinds if k.name in {*args.only, "raw-aiohttp", "raw-control"}]

    server_cm: Any = (
        NoServer()
        if TRANSPORT == "memory"
        else c.ServerProcess("lean", "--token", TOKEN, "--answer-bytes", str(args.answer_bytes))
    )
    async with server_cm as server:
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
    args: Any, contenders: list[Contender], server: Any
) -> dict[int, dict[str, list[dict[str, float]]]]:
    results: dict[int, dict[str, list[dict[str, float]]]] = {}
    for conc in args.concurrency:
        per: dict[str, list[dict[str, float]]] = {k.name: [] for k in contenders}
        for r in range(args.rounds):
            shift = r % len(contenders)
            # Connections stay open between rounds (keep-alive outlasts a round), so only
            # the first round warms up: short runs then follow each other closely, and
            # each contender meets the same weather as its neighbours.
            for k in contenders[shift:] + contenders[:shift]:
                per[k.name].append(await measure(k, server, args.seconds, conc, warm=r == 0))
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
        "server_cpu_us_per_call": c.median([x["server_cpu_us_per_call"] for x in runs]),
    }


def render(args: Any, results: dict[int, dict[str, list[dict[str, float]]]], kinds: Any) -> None:
    summary = {
        conc: {name: summarize(runs, per["raw-aiohttp"]) for name, runs in per.items()}
        for conc, per in results.items()
    }
    idiomatic = {
        conc: {
            name: summarize(runs, per["raw-idiomatic"])
            for name, runs in per.items()
            if "raw-idiomatic" in per
        }
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
                    (
                        f"{s['server_cpu_load']:.2f} (max {s['server_cpu_load_max']:.2f})"
                        if s["server_cpu_load"] == s["server_cpu_load"]  # not NaN
                        else "-"
                    ),
                    s["server_cpu_us_per_call"],
                    (
                        f"{idiomatic[conc][name]['ratio_vs_raw']:.3f} / "
                        f"{idiomatic[conc][name]['cpu_efficiency_vs_raw']:.3f}"
                        if name in idiomatic[conc]
                        else "-"
                    ),
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
        "server CPU us/call",
        "vs idiomatic (calls / CPU)",
    ]
    c.report(
        "overhead",
        {
            "settings": {
                "seconds_per_run": args.seconds,
                "rounds": args.rounds,
                "concurrency": args.concurrency,
                "transport": args.transport,
                "answer_bytes": len(OK) - OK.find(b"\r\n\r\n") - 4,
                "server": "lean aiohttp.web (bearer check, fixed answer), own process"
                if args.transport == "tcp"
                else "none: in-memory transport under aiohttp",
            },
            "summary": summary,
            "summary_vs_idiomatic": idiomatic,
            "runs": results,
        },
        [c.table(headers, rows)],
        args,
    )


async def profile(args: Any, contenders: list[Contender], server: Any) -> None:
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
