"""A collector process for the multi-process tests (run as a script, not collected).

Usage::

    _collector.py BASE_URL CHECKPOINT OUT PAGE_SIZE EVERY

CHECKPOINT is a file, or ``redis://HOST:PORT/DB#KEY#LEASE`` for a RedisCheckpoint on KEY
with a lease of LEASE seconds.

The user token comes in ``$NETREX_TOKEN``. Follows ``events`` with
``NetrexClient.collect`` and a :class:`FileCheckpoint`, and appends each item to OUT as
one JSON line (with this process's pid) written, flushed and fsynced before the next
batch is asked for, the point where the batch's cursor is committed. A partial last line
left by a kill is cut off on start. Says "started" once it runs, "active" once it holds
the checkpoint, and "batch N" after each batch.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

QUERY = """
query($after: ID, $limit: Int) {
  events(afterId: $after, limit: $limit) { id cameraId type }
}
"""


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def repair(path: str) -> None:
    """Cut a partial last line (a kill during a write) off the output."""
    try:
        with open(path, "rb+") as f:
            data = f.read()
            end = data.rfind(b"\n") + 1
            if end != len(data):
                f.truncate(end)
    except FileNotFoundError:
        pass


async def main(base_url: str, checkpoint: str, out: str, page_size: int, every: float) -> None:
    import logging

    from netrex_async import FileCheckpoint, NetrexClient, Provider
    from netrex_async._checkpoints import Checkpoint

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    repair(out)
    pid = os.getpid()
    say("started")
    fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    where: Checkpoint
    if checkpoint.startswith("redis://"):
        from netrex_async.stores.redis import RedisCheckpoint

        url, key, lease = checkpoint.split("#")
        where = RedisCheckpoint(url, key=key, prefix="netrex_async_test:", lock_expiry=float(lease))
    else:
        where = FileCheckpoint(checkpoint)
    async with NetrexClient(os.environ["NETREX_TOKEN"], provider=Provider(base_url)) as client:
        batches = client.collect(
            QUERY,
            items="events",
            cursor="after",
            key="id",
            checkpoint=where,
            every=every,
            page_size=page_size,
            page_size_variable="limit",
        )
        async with batches:
            n = 0
            async for batch in batches:
                if n == 0:
                    say("active")
                lines = "".join(json.dumps({**item, "pid": pid}) + "\n" for item in batch)
                data = memoryview(lines.encode())
                while data:
                    data = data[os.write(fd, data) :]
                os.fsync(fd)
                n += 1
                say(f"batch {n}")


if __name__ == "__main__":
    base, ckpt, path, size, every_s = sys.argv[1:6]
    asyncio.run(main(base, ckpt, path, int(size), float(every_s)))
