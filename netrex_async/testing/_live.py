"""A live event source for the fake: camera events made at a steady rate while it runs."""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Sequence

from ._data import FakeData

__all__ = ["EventSource"]

#: The longest pause between two bursts of events, in seconds.
_TICK = 0.05


class EventSource:
    """Makes ``rate`` events a second on the fake's cameras, in order, until stopped.

    Events are due at a steady rate from :meth:`start`: each tick adds every event due
    by then, so a busy event loop gets bursts, never fewer events. Cameras and types take
    turns. Made by :meth:`FakeNetrex.start_events`.

    Args:
        data: The fake's data, where the events go.
        rate: Events per second (positive).
        cameras: The ids of the cameras that have events (default: every camera).
        types: The event types, in turn.

    Raises:
        ValueError: ``rate`` is not positive, no camera is given or known, or a camera
            id is unknown.
    """

    def __init__(
        self,
        data: FakeData,
        rate: float,
        *,
        cameras: Sequence[str] | None = None,
        types: Sequence[str] = ("motion", "line_crossing", "tampering"),
    ) -> None:
        if isinstance(rate, bool) or not isinstance(rate, int | float):
            raise TypeError("rate must be a number of events per second")
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError("rate must be a positive number of events per second")
        ids = list(cameras) if cameras is not None else list(data.cameras)
        if not ids:
            raise ValueError("an event source needs at least one camera")
        unknown = [c for c in ids if c not in data.cameras]
        if unknown:
            raise ValueError(f"no camera with id {unknown[0]!r}")
        if not types:
            raise ValueError("an event source needs at least one event type")
        self.data = data
        self.rate = float(rate)
        self._cameras = itertools.cycle(ids)
        self._types = itertools.cycle(list(types))
        #: Events made so far.
        self.produced = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Whether events are being made."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start making events (in a task of the running event loop)."""
        if self.running:
            raise RuntimeError("the event source is running already")
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop making events; the ones made stay in the data."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            if not task.cancelled():
                raise

    def make(self, count: int = 1) -> None:
        """Make ``count`` events now."""
        for _ in range(count):
            self.data.add_event(next(self._cameras), next(self._types))
            self.produced += 1

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        base = self.produced
        pause = min(_TICK, 1.0 / self.rate)
        while True:
            due = base + math.floor((loop.time() - started) * self.rate + 1e-9)
            if due > self.produced:
                self.make(due - self.produced)
            await asyncio.sleep(pause)
