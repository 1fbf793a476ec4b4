"""The two-level lock every shared store uses: tasks of this process, then processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from .._errors import TokenStoreError
from .._log import stores as log

H = TypeVar("H")


@asynccontextmanager
async def layered_lock(
    task_lock: asyncio.Lock,
    wait: float,
    acquire: Callable[[float], Awaitable[H]],
    release: Callable[[H], Awaitable[None]],
    timeout_error: Callable[[], TokenStoreError],
    *,
    message: str,
    description: str,
) -> AsyncIterator[None]:
    """Hold ``task_lock`` (the tasks of this process queue there, first come first
    served), then the cross-process lock, within ``timeout`` seconds in all.

    Args:
        task_lock: The store instance's in-process lock.
        wait: Seconds to wait for both.
        acquire: Takes the cross-process lock within the seconds given; returns a handle.
        release: Releases it, given the handle (must finish even if cancelled).
        timeout_error: The error to raise when the time runs out.
        message: The DEBUG log message once both are held.
        description: The store, for the log record.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        async with asyncio.timeout(wait):
            await task_lock.acquire()
    except TimeoutError:
        raise timeout_error() from None
    try:
        remaining = max(wait - (loop.time() - started), 0.0)
        held = await acquire(remaining)
    except BaseException:
        task_lock.release()
        raise
    log.debug(
        message,
        extra={"event": "store.locked", "store": description, "waited": loop.time() - started},
    )
    try:
        yield
    finally:
        try:
            await release(held)
        finally:
            task_lock.release()
