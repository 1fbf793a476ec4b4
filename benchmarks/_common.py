"""Helpers shared by the benchmark scripts: options, statistics, tables, processes."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

HERE = Path(__file__).resolve().parent
_TICKS = os.sysconf("SC_CLK_TCK")


# -- options and output ----------------------------------------------------------------


def parser(description: str | None) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark has."""
    p = argparse.ArgumentParser(
        description=(description or "").strip().splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--json", action="store_true", help="print one JSON document, no table")
    p.add_argument("--json-out", metavar="FILE", help="also write the JSON document to FILE")
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke check of seconds")
    return p


def report(title: str, results: dict[str, Any], tables: Sequence[str], args: Any) -> None:
    """Print ``results`` as JSON (``--json``) or the environment and the tables."""
    results = {"benchmark": title, "environment": environment(), **results}
    document = json.dumps(results, indent=2, default=str)
    if getattr(args, "json_out", None):
        write_text(args.json_out, document + "\n")
    if args.json:
        print(document)
        return
    env = results["environment"]
    print(f"== {title} ==")
    print(
        f"{env['cpu']} x{env['cores']}, {env['python']}, aiohttp {env['aiohttp']}, "
        f"netrex-async {env['netrex-async']}, load average {env['loadavg']}"
    )
    for t in tables:
        print()
        print(t)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain text table, numbers right-aligned."""
    text_rows = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in text_rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in text_rows:
        cells = []
        for c, w in zip(row, widths, strict=True):
            numeric = c[:1].isdigit() or c[:2].lstrip("-+")[:1].isdigit()
            cells.append(c.rjust(w) if numeric else c.ljust(w))
        lines.append("  ".join(cells))
    return "\n".join(lines)


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if v != v:  # NaN
            return "-"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        if abs(v) >= 100:
            return f"{v:.0f}"
        if abs(v) >= 10:
            return f"{v:.1f}"
        return f"{v:.3f}" if abs(v) < 1 else f"{v:.2f}"
    return str(v)


def environment() -> dict[str, Any]:
    """The machine and the versions, for the record."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {}
    for dist in ("aiohttp", "netrex-async", "httpx", "authlib", "aiohttp-oauth2-client"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": f"{platform.system()} {platform.release()}",
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        **versions,
    }


# -- statistics --------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0..100) by the nearest-rank method."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


# -- resources ---------------------------------------------------------------------------


def cpu_seconds(pid: int | None = None) -> float:
    """User plus system CPU seconds of a process (``None``: this one)."""
    if pid is None:
        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the ")" of the command name: state is field 3, utime 14, stime 15.
    return (int(fields[11]) + int(fields[12])) / _TICKS


def rss_mib() -> float:
    """This process's resident set size in MiB (``VmRSS``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def settle() -> None:
    """Collect garbage so that one contender's litter is not timed in the next one's run."""
    gc.collect()


# -- server processes ---------------------------------------------------------------------


class ServerProcess:
    """A benchmark server (``_servers.py``) in its own process, driven over stdin/stdout.

    ``async with ServerProcess("fake", "--expires-in", "2") as server:`` starts it and
    gives ``server.info`` (its JSON line: ``base_url``...); ``await server.command(...)``.
    """

    def __init__(self, *args: str) -> None:
        self.args = args
        self.info: dict[str, Any] = {}
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    @property
    def base_url(self) -> str:
        return str(self.info["base_url"])

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    async def __aenter__(self) -> Self:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(HERE / "_servers.py"),
            *self.args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        self.info = await self._read()
        return self

    async def _read(self) -> dict[str, Any]:
        assert self._proc is not None
        assert self._proc.stdout is not None
        line = await asyncio.wait_for(self._proc.stdout.readline(), 30)
        if not line:
            raise RuntimeError(f"benchmark server {self.args} exited early")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def command(self, cmd: str) -> dict[str, Any]:
        async with self._lock:
            assert self._proc is not None
            assert self._proc.stdin is not None
            self._proc.stdin.write(cmd.encode() + b"\n")
            await self._proc.stdin.drain()
            return await self._read()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()


# -- netrex_async helpers ------------------------------------------------------------------


def oauth_app(info: dict[str, Any]) -> Any:
    """The :class:`~netrex_async.OAuth2App` of a fake server's one client."""
    from netrex_async import OAuth2App, Provider

    return OAuth2App(
        client_id=info["client_id"],
        client_secret=info["client_secret"],
        redirect_uri=info["redirect_uri"],
        provider=Provider(info["base_url"]),
    )


async def obtain_grant(info: dict[str, Any], scopes: str = "read") -> Any:
    """A new grant from a running fake, over HTTP as a user's browser and the app would."""
    import aiohttp

    from netrex_async import OAuth2Client

    async with OAuth2Client(oauth_app(info)) as oauth, aiohttp.ClientSession() as http:
        req = oauth.authorization_request(scopes)
        async with http.get(req.url, allow_redirects=False) as resp:
            location = resp.headers["Location"]
        return await oauth.exchange(location, req)


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def write_json(path: str | Path, data: Any) -> None:
    Path(path).write_text(json.dumps(data))


def write_text(path: str | Path, text: str) -> None:
    Path(path).write_text(text)


def quiet_logs() -> None:
    """Keep the library's INFO lines (one per refresh) out of the benchmark's output."""
    import logging

    logging.getLogger("netrex_async").setLevel(logging.WARNING)


def authlib_client() -> Any:
    """Authlib's ``AsyncOAuth2Client`` class, imported without its httpx2 nag."""
    import authlib.deprecate  # noqa: F401  (it installs an "always" filter: import it first)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from authlib.integrations.httpx_client import AsyncOAuth2Client
    return AsyncOAuth2Client


def run(main: Callable[[], Any]) -> None:
    """``asyncio.run(main())`` with the library's logs quieted."""
    quiet_logs()
    asyncio.run(main())
