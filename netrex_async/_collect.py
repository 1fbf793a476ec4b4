"""The collector loop behind :meth:`NetrexClient.collect`: a cursor-paged feed, at least once.

The loop holds the checkpoint's lock for its whole life (a second collector on the same
checkpoint waits as a standby), reads the committed cursor once, then asks for the items
after it, page after page: at once while pages come back full, every ``every`` seconds
once they do not. Each page is one batch. A batch's cursor (its last item's ``key``) is
committed when the caller asks for the next batch, never earlier: leaving the loop in any
way (``break``, an exception, cancellation, a crash) commits nothing more, so the batch
in hand comes again next time. Memory is one page, whatever the backlog.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, Self

from ._checkpoints import Checkpoint, CheckpointLost, check_cursor
from ._errors import ApiError, ClosedError, NetrexError, ReauthorizationRequired, TokenStoreError
from ._lifecycle import AsyncClosing
from ._operation import declared_variables
from ._redact import safe_text

if TYPE_CHECKING:
    from ._client import NetrexClient

__all__ = ["Collection", "check_variables", "collect"]

log = logging.getLogger("netrex_async.collect")


class _BadShape(ApiError):
    """The answer holds no list of items with a usable key where the caller said.

    Attributes:
        detail: What is wrong, without the argument's name.
        argument: The argument of :meth:`NetrexClient.collect` to look at (``items``,
            ``key``): the CLI names its own option instead.
    """

    def __init__(self, detail: str, *, argument: str) -> None:
        super().__init__(f"{detail} ({argument}=)", status=200)
        self.detail = detail
        self.argument = argument


class _Undeclared(NetrexError, ValueError):
    """The query does not declare the cursor (or page-size) variable it is to be sent.

    The provider ignores a variable the query does not declare, so every page would be
    the first one again: a collector that delivers the same items for ever.

    Attributes:
        detail: What is wrong and what fixes it, without the argument's name.
        argument: ``cursor`` or ``page_size_variable``.
    """

    def __init__(self, detail: str, *, argument: str) -> None:
        super().__init__(f"{detail} ({argument}=)")
        self.detail = detail
        self.argument = argument


def check_variables(
    query: str, *, cursor: str, page_size_variable: str | None, operation_name: str | None
) -> None:
    """Refuse a query that does not declare ``$cursor`` (or ``$page_size_variable``).

    A query this module cannot read (see :func:`declared_variables`) is left to the
    provider, whose answer says what is wrong with it.

    Raises:
        ValueError: The variable is not declared (a :class:`NetrexError` too).
    """
    declared = declared_variables(query, operation_name)
    if declared is None:
        return
    if cursor not in declared:
        raise _Undeclared(
            f"collect: the query does not declare the cursor variable ${cursor}, so the "
            "provider would ignore it and answer the first page again and again; declare "
            f"it and pass it to the list (query(${cursor}: ID) {{ events(afterId: "
            f"${cursor}) {{ ... }} }}), or name the variable the query declares"
            + _declared(declared),
            argument="cursor",
        )
    if page_size_variable is not None and page_size_variable not in declared:
        raise _Undeclared(
            "collect: the query does not declare the page-size variable "
            f"${page_size_variable}, so the provider would ignore it and pages would not "
            "hold the page size asked for; declare it and pass it to the list's limit "
            f"(query(${page_size_variable}: Int) {{ events(limit: ${page_size_variable}) "
            "{ ... } }), or name the variable the query declares" + _declared(declared),
            argument="page_size_variable",
        )


def _declared(declared: frozenset[str]) -> str:
    if not declared:
        return "; it declares no variable"
    return "; it declares " + ", ".join(f"${name}" for name in sorted(declared))


def _backoff(failures: int, base: float, cap: float) -> float:
    """Capped exponential back-off from ``base``, jittered over its upper half."""
    pause = min(cap, base * 2 ** min(failures - 1, 16))
    return random.uniform(pause / 2, pause)


def _items_at(data: Any, path: tuple[str, ...], dotted: str) -> list[Any]:
    value = data
    for part in path:
        if not isinstance(value, dict) or part not in value:
            raise _BadShape(
                f"collect: the answer's data has nothing at {dotted!r}",
                argument="items",
            )
        value = value[part]
    if not isinstance(value, list):
        raise _BadShape(
            f"collect: data.{dotted} is a {type(value).__name__}, not a list",
            argument="items",
        )
    return value


def _cursor_of(page: list[Any], key: str) -> str | int | float:
    last = page[-1]
    if not isinstance(last, dict) or key not in last:
        raise _BadShape(f"collect: the last item has no field {key!r}", argument="key")
    value = last[key]
    try:
        check_cursor(value)
    except TypeError as e:
        raise _BadShape(f"collect: field {key!r} of the last item: {e}", argument="key") from None
    cursor: str | int | float = value
    return cursor


async def collect(
    client: NetrexClient,
    query: str,
    *,
    items: str,
    cursor: str,
    key: str,
    checkpoint: Checkpoint,
    every: float,
    variables: Mapping[str, Any] | None = None,
    operation_name: str | None = None,
    page_size: int | None = None,
    page_size_variable: str | None = None,
    max_backoff: float = 60.0,
    pending: _Pending,
) -> AsyncGenerator[list[Any], None]:
    """The loop of :meth:`NetrexClient.collect` (see there); arguments checked there.

    ``pending`` holds the cursor of the batch in hand until it is committed (here, when
    the next batch is asked for, or by :meth:`Collection.commit`).
    """
    loop = asyncio.get_running_loop()
    path = tuple(items.split("."))
    base = dict(variables or {})
    base.pop(cursor, None)
    if page_size_variable is not None:
        base[page_size_variable] = page_size
    where = checkpoint.description
    check_lease: Callable[[], Awaitable[None]] | None = getattr(checkpoint, "check_lease", None)
    async with checkpoint.lock():
        position = await checkpoint.load()
        log.info(
            "collect: %s",
            "starting at the beginning" if position is None else f"resuming after {position!r}",
            extra={"event": "collect_started", "store": where},
        )
        failures = 0
        while True:
            started = loop.time()
            sent = dict(base)
            if position is not None:
                sent[cursor] = position
            try:
                data = await client.graphql(query, sent, operation_name=operation_name)
                page = _items_at(data, path, items)
                last = _cursor_of(page, key) if page else None
            except (ReauthorizationRequired, ClosedError, _BadShape):
                raise
            except NetrexError as e:
                failures += 1
                pause = _backoff(failures, every, max_backoff)
                log.warning(
                    "collect: query failed (%s: %s); trying again in %.1f s",
                    type(e).__name__,
                    safe_text(e, limit=200),
                    pause,
                    extra={"event": "collect_failed", "attempt": failures, "sleep": pause},
                )
                await asyncio.sleep(pause)
                continue
            if failures:
                log.info(
                    "collect: the query works again after %d failures",
                    failures,
                    extra={"event": "collect_recovered", "attempt": failures},
                )
                failures = 0
            if last is not None:
                if check_lease is not None:
                    # A lease lost during the query (this process paused, Redis cut off
                    # longer than the lease): the collector that took over may be
                    # delivering this very page. End instead of delivering it again.
                    await _retrying(check_lease, checkpoint, _CONFIRM, every, max_backoff)
                pending.cursor = last
                yield page
                # The caller asked for the next batch: it is done with this one.
                if pending.cursor is not None:
                    await _commit(checkpoint, last, every, max_backoff)
                    pending.cursor = None
                position = last
            full = bool(page) if page_size is None else len(page) >= page_size
            if not full:
                await asyncio.sleep(max(0.0, every - (loop.time() - started)))


class _Step(NamedTuple):
    """What :func:`_retrying` does, in the words of its log records."""

    doing: str
    until: str
    event: str


_COMMIT = _Step(
    "committing the cursor to", "the batch is not acknowledged until it lands", "collect_commit"
)
_CONFIRM = _Step(
    "confirming the lock's lease on",
    "the batch is not delivered until it is confirmed or known lost",
    "collect_lease",
)


async def _commit(
    checkpoint: Checkpoint, cursor: str | int | float, every: float, max_backoff: float
) -> None:
    """Save ``cursor``, retrying a failed save (a full disk, Redis away) until it lands.

    A lost lock or a closed checkpoint ends the loop instead: another collector may have
    taken over, and this one must not write (a Redis checkpoint's save is fenced: it
    writes only while the lock is this holder's).
    """
    await _retrying(lambda: checkpoint.save(cursor), checkpoint, _COMMIT, every, max_backoff)


async def _retrying(
    step: Callable[[], Awaitable[None]],
    checkpoint: Checkpoint,
    what: _Step,
    every: float,
    max_backoff: float,
) -> None:
    """Run ``step`` until it succeeds, retrying a :class:`TokenStoreError` with back-off.

    :class:`CheckpointLost` and :class:`ClosedError` end the loop instead.
    """
    failures = 0
    while True:
        try:
            await step()
        except (CheckpointLost, ClosedError):
            raise
        except TokenStoreError as e:
            failures += 1
            pause = _backoff(failures, min(every, 1.0), max_backoff)
            log.warning(
                "collect: %s %s failed (%s); trying again in %.1f s (%s)",
                what.doing,
                checkpoint.description,
                safe_text(e, limit=200),
                pause,
                what.until,
                extra={"event": f"{what.event}_failed", "attempt": failures, "sleep": pause},
            )
            await asyncio.sleep(pause)
            continue
        if failures:
            log.info(
                "collect: %s %s worked after %d failures",
                what.doing,
                checkpoint.description,
                failures,
                extra={"event": f"{what.event}_recovered", "attempt": failures},
            )
        return


class _Pending:
    """The cursor of the batch in hand, until it is committed."""

    __slots__ = ("cursor",)

    def __init__(self) -> None:
        self.cursor: str | int | float | None = None


class Collection(AsyncClosing, AsyncIterator[list[Any]]):
    """The batches of :meth:`NetrexClient.collect`: an async iterator, and an async
    context manager that stops the collector (and releases the checkpoint) on the way out.

    ``async for batch in collection`` yields each batch, a list of items, oldest first.
    Asking for the next batch commits the cursor of the one before; so does
    :meth:`commit`, at once. :meth:`aclose` (or leaving ``async with``) commits nothing.
    """

    def __init__(
        self, client: NetrexClient, query: str, *, checkpoint: Checkpoint, **options: Any
    ) -> None:
        check_variables(
            query,
            cursor=options["cursor"],
            page_size_variable=options["page_size_variable"],
            operation_name=options["operation_name"],
        )
        self._checkpoint = checkpoint
        self._every: float = options["every"]
        self._max_backoff: float = options["max_backoff"]
        self._pending = _Pending()
        self._generator = collect(
            client, query, checkpoint=checkpoint, pending=self._pending, **options
        )

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> list[Any]:
        return await self._generator.__anext__()

    async def commit(self) -> None:
        """Commit the batch in hand now, before asking for the next one (which then
        commits nothing more): for a caller that stops after this batch.

        Not to be called while a batch is being asked for. Retries a failed save like
        the loop does.

        Raises:
            CheckpointLost: Another collector took the checkpoint over.
            ClosedError: The checkpoint was closed.
        """
        cursor = self._pending.cursor
        if cursor is None:
            return
        await _commit(self._checkpoint, cursor, self._every, self._max_backoff)
        self._pending.cursor = None

    async def aclose(self) -> None:
        """Stop the collector without committing the batch in hand; release the lock."""
        await self._generator.aclose()
