"""Redis servers of a test's own, to kill, restart, pause and reconfigure.

The shared Redis on 6379 must never be killed or reconfigured; a fault test starts its own
``redis-server`` on a free port instead (no persistence, a temporary directory) and stops
it by pid. Import by name (``tests/`` is on ``sys.path``)::

    from _redis_server import RedisServer, redis_server  # redis_server is a fixture

    async def test_restart(redis_server: RedisServer) -> None:
        store = RedisTokenStore(redis_server.url, key="k")
        ...
        redis_server.restart()          # same port, empty
        redis_server.pause()            # SIGSTOP: connections hang, nothing answers
        redis_server.resume()           # SIGCONT
        redis_server.readonly()         # writes fail with NOREPLICAS
        redis_server.kill()             # SIGKILL: connections refused

A replica and a sentinel, for failover tests::

    with RedisServer() as master, master.replica() as replica, \\
            RedisSentinel(master, service="svc") as sentinel:
        url = sentinel.url          # redis+sentinel://127.0.0.1:PORT/svc
        sentinel.wait_for_replica(replica)
        sentinel.failover()         # SENTINEL FAILOVER, then waits for the new master

Every call that waits does so with a deadline and raises ``RuntimeError`` (with the
server's log tail) when it runs out; nothing here sleeps for a fixed time.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

import pytest

__all__ = ["REDIS_SERVER", "RedisSentinel", "RedisServer", "free_port", "redis_server"]

#: The ``redis-server`` binary, or ``None`` when it is not installed.
REDIS_SERVER = shutil.which("redis-server")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _resp(*args: str) -> bytes:
    parts = [f"*{len(args)}\r\n"] + [f"${len(a.encode())}\r\n{a}\r\n" for a in args]
    return "".join(parts).encode()


def _reply(s: socket.socket) -> bytes:
    """One whole reply (simple, error, integer or bulk string; arrays of those too)."""
    data = b""
    while not _complete(data):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _complete(data: bytes) -> bool:
    try:
        return _skip(data, 0) is not None
    except ValueError:
        return False


def _skip(data: bytes, at: int) -> int | None:
    """The offset after the reply that starts at ``at``, or ``None`` if incomplete."""
    end = data.find(b"\r\n", at)
    if end < 0:
        return None
    kind, head = data[at : at + 1], data[at + 1 : end]
    if kind == b"$":
        n = int(head)
        if n < 0:
            return end + 2
        return end + 2 + n + 2 if len(data) >= end + 2 + n + 2 else None
    if kind == b"*":
        pos: int | None = end + 2
        for _ in range(max(int(head), 0)):
            assert pos is not None
            pos = _skip(data, pos)
            if pos is None:
                return None
        return pos
    return end + 2


def command(port: int, *args: str, password: str | None = None, timeout: float = 2.0) -> str:
    """Send one command to 127.0.0.1:``port``; the reply as text (``+OK``, ``$3 abc``...).

    With ``password``, ``AUTH`` goes first on the same connection.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        if password is not None:
            s.sendall(_resp("AUTH", password))
            _reply(s)
        s.sendall(_resp(*args))
        data = _reply(s)
    return data.decode(errors="replace").strip()


def _wait(what: str, check: Callable[[], bool], deadline: float, log: Path | None) -> None:
    end = time.monotonic() + deadline
    while True:
        try:
            if check():
                return
        except OSError:
            pass
        if time.monotonic() > end:
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} not within {deadline:g} s; log tail:\n{tail}")
        time.sleep(0.02)


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1, on a port of its own.

    Started by :meth:`start` (or ``with``), stopped by :meth:`stop`, which kills it by pid
    and removes its temporary directory. ``restart()`` keeps the port.

    Args:
        port: The port; a free one by default.
        args: More ``redis-server`` arguments, such as ``("--replicaof", "127.0.0.1", "7000")``.
        password: Required of clients (``--requirepass``); in :attr:`url`, and used by
            :meth:`cli`.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        args: tuple[str, ...] = (),
        password: str | None = None,
    ) -> None:
        if REDIS_SERVER is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.port = port if port is not None else free_port()
        self.password = password
        self.args = args if password is None else (*args, "--requirepass", password)
        self.dir = Path(tempfile.mkdtemp(prefix=f"redis-{self.port}-"))
        self.log = self.dir / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://[:PASSWORD@]127.0.0.1:PORT/0``."""
        auth = "" if self.password is None else f":{quote(self.password, safe='')}@"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The pid of the running server, or ``None``."""
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def _argv(self) -> list[str]:
        assert REDIS_SERVER is not None
        return [
            REDIS_SERVER,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.dir),
            "--daemonize", "no",
            "--logfile", str(self.log),
            "--repl-diskless-sync-delay", "0",
            *self.args,
        ]  # fmt: skip

    def start(self, deadline: float = 10.0) -> RedisServer:
        """Start the server and wait until it answers ``PING``; returns ``self``."""
        if self.pid is not None:
            return self
        self.proc = subprocess.Popen(
            self._argv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
        )
        _wait(f"redis-server on {self.port}", self._answers, deadline, self.log)
        return self

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"redis-server on {self.port} exited with {self.proc.returncode}: "
                + self.log.read_text(errors="replace")[-2000:]
            )
        return self.cli("PING", timeout=0.5) == "+PONG"

    def cli(self, *args: str, timeout: float = 2.0) -> str:
        """Run one command on this server; returns the reply as text (``+OK``...)."""
        return command(self.port, *args, password=self.password, timeout=timeout)

    def role(self) -> str:
        """``master`` or ``slave``, from ``ROLE``."""
        return self.cli("ROLE").split("\r\n")[2]

    def kill(self) -> None:
        """SIGKILL the server (paused or not) and reap it; new connections are refused."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def restart(self, deadline: float = 10.0) -> None:
        """Kill the server and start an empty one on the same port."""
        self.kill()
        self.start(deadline)

    def pause(self) -> None:
        """SIGSTOP: the port still accepts connections, but nothing is answered."""
        assert self.pid is not None, "not running"
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        assert self.pid is not None, "not running"
        os.kill(self.pid, signal.SIGCONT)

    def readonly(self) -> None:
        """Refuse writes as a master without its replicas does (``NOREPLICAS``)."""
        assert self.cli("CONFIG", "SET", "min-replicas-to-write", "1") == "+OK"

    def replica(self) -> RedisServer:
        """A new server (not started yet) that replicates this one."""
        args: tuple[str, ...] = ("--replicaof", "127.0.0.1", str(self.port))
        if self.password is not None:
            args = (*args, "--masterauth", self.password)
        return RedisServer(args=args, password=self.password)

    def wait_for_replication(self, replica: RedisServer, deadline: float = 10.0) -> None:
        """Wait until ``replica`` has finished its first sync from this server."""
        _wait(
            f"replica {replica.port} in sync",
            lambda: "master_link_status:up" in replica.cli("INFO", "replication"),
            deadline,
            replica.log,
        )

    def stop(self) -> None:
        """Kill the server by pid and remove its directory; idempotent."""
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class RedisSentinel(RedisServer):
    """A Redis Sentinel (``redis-server --sentinel``) monitoring ``master`` as ``service``.

    Quorum 1, ``down-after-milliseconds`` 1000 and a short failover timeout, so that a
    test's failover completes within seconds.

    Args:
        master: The monitored master (started).
        service: The service (master) name clients ask for.
    """

    def __init__(self, master: RedisServer, *, service: str = "netrex") -> None:
        super().__init__()
        self.master = master
        self.service = service

    @property
    def url(self) -> str:
        """``redis+sentinel://127.0.0.1:PORT/SERVICE``."""
        return f"redis+sentinel://127.0.0.1:{self.port}/{self.service}"

    def _argv(self) -> list[str]:
        assert REDIS_SERVER is not None
        conf = self.dir / "sentinel.conf"
        s = self.service
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\nlogfile {self.log}\n"
            f"sentinel monitor {s} 127.0.0.1 {self.master.port} 1\n"
            f"sentinel down-after-milliseconds {s} 1000\n"
            f"sentinel failover-timeout {s} 3000\n"
            f"sentinel parallel-syncs {s} 1\n"
        )
        if self.master.password is not None:
            with conf.open("a") as f:
                quoted = self.master.password.replace("\\", "\\\\").replace('"', '\\"')
                f.write(f'sentinel auth-pass {s} "{quoted}"\n')
        return [REDIS_SERVER, str(conf), "--sentinel"]

    def master_port(self) -> int:
        """The master's port as this sentinel sees it now."""
        reply = self.cli("SENTINEL", "get-master-addr-by-name", self.service)
        return int(reply.split("\r\n")[4])  # *2 $9 127.0.0.1 $4 7000

    def wait_for_replica(self, replica: RedisServer, deadline: float = 20.0) -> None:
        """Wait until the master has ``replica`` in sync and this sentinel knows it."""
        self.master.wait_for_replication(replica, deadline)

        def known() -> bool:
            data = self.cli("SENTINEL", "REPLICAS", self.service).split("\r\n")
            # *1 *42 then names and values: $4 port $5 12345 ... $5 flags $5 slave
            fields = dict(zip(data[3::4], data[5::4], strict=False))
            return fields.get("port") == str(replica.port) and fields.get("flags") == "slave"

        _wait(f"sentinel {self.port} knowing replica {replica.port}", known, deadline, self.log)

    def failover(self, deadline: float = 20.0) -> int:
        """``SENTINEL FAILOVER``, then wait until the sentinel names a new master; its port."""
        old = self.master_port()
        replies = []

        def started() -> bool:
            # NOGOODSLAVE while the sentinel's view of the replica is not fresh yet.
            replies.append(self.cli("SENTINEL", "FAILOVER", self.service))
            return replies[-1] == "+OK"

        _wait(f"SENTINEL FAILOVER (last: {replies[-1:]})", started, deadline, self.log)
        _wait("failover", lambda: self.master_port() != old, deadline, self.log)
        return self.master_port()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A started :class:`RedisServer` of this test's own; killed and removed afterwards.

    Skips when ``redis-server`` is not installed (fails under ``NETREX_REQUIRE_REDIS=1``).
    """
    if REDIS_SERVER is None:
        message = "redis-server is not installed"
        if os.environ.get("NETREX_REQUIRE_REDIS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    with RedisServer() as server:
        yield server
