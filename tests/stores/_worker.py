"""Child processes for the multi-process store tests (run as a script, not collected).

Usage::

    _worker.py save-loop PATH        save fresh tokens forever; "ready" after the first
    _worker.py zygote                import once, then fork one save-loop child per PATH
                                     line read from stdin; each says "ready PID"
    _worker.py hold-lock PATH        take the file lock, say "locked", sleep forever
    _worker.py count PATH COUNTER N  N times, under the lock: read COUNTER, add 1, write it
    _worker.py redis-hold URL KEY PREFIX EXPIRY
                                     take the Redis lock, say "locked", sleep forever
"""

from __future__ import annotations

import asyncio
import os
import sys
import time


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def save_loop(path: str, ready: str = "ready") -> None:
    from netrex_async import Token
    from netrex_async._stores._file import FileTokenStore

    store = FileTokenStore(path)
    n = 0
    while True:
        now = time.time()
        # Long values make each write span more than one page and take a little time.
        pad = "x" * (4096 + n % 997)
        token = Token(
            access_token=f"at-{n}-{pad}",
            refresh_token=f"rt-{n}",
            issued_at=now,
            expires_at=now + 3600,
        )
        await store.save(token)
        if n == 0:
            say(ready)
        n += 1


def zygote() -> None:
    """Fork save-loop children from a process that has imported everything already.

    Starting a fresh interpreter per crash costs far more than the crash itself; a fork
    of a process without threads or event loop is a clean new process.
    """
    import signal

    import netrex_async._stores._file  # noqa: F401  (imported once, before any fork)

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps killed children
    say("zygote")
    for line in sys.stdin:
        path = line.strip()
        if os.fork() == 0:
            asyncio.run(save_loop(path, ready=f"ready {os.getpid()}"))
            os._exit(0)


async def hold_lock(path: str) -> None:
    from netrex_async._stores._file import FileTokenStore

    async with FileTokenStore(path).lock():
        say("locked")
        await asyncio.sleep(3600)


async def count(path: str, counter: str, n: int) -> None:
    """Two tasks share the process's n increments, so both lock layers are exercised."""
    from netrex_async._stores._file import FileTokenStore

    store = FileTokenStore(path, lock_timeout=60)

    async def one(times: int) -> None:
        for _ in range(times):
            async with store.lock():
                # A read-modify-write with a pause: lost updates if the lock leaked.
                with open(counter) as f:
                    value = int(f.read() or 0)
                await asyncio.sleep(0.0005)
                with open(counter, "w") as f:
                    f.write(str(value + 1))

    await asyncio.gather(one(n // 2), one(n - n // 2))
    say("done")


async def redis_hold(url: str, key: str, prefix: str, expiry: float) -> None:
    from netrex_async.stores.redis import RedisTokenStore

    async with (
        RedisTokenStore(url, key=key, prefix=prefix, lock_expiry=expiry) as store,
        store.lock(),
    ):
        say("locked")
        await asyncio.sleep(3600)


def main(argv: list[str]) -> None:
    command, *args = argv
    if command == "save-loop":
        asyncio.run(save_loop(args[0]))
    elif command == "zygote":
        zygote()
    elif command == "hold-lock":
        asyncio.run(hold_lock(args[0]))
    elif command == "count":
        asyncio.run(count(args[0], args[1], int(args[2])))
    elif command == "redis-hold":
        asyncio.run(redis_hold(args[0], args[1], args[2], float(args[3])))
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    os.umask(0o022)  # a typical umask: the store must not depend on a strict one
    main(sys.argv[1:])
