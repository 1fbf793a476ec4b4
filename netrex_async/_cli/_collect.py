"""``netrex-async collect``: ``NetrexClient.collect()`` as a process, JSON Lines out."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import signal
import stat
import time
from pathlib import Path
from typing import Any

from .._collect import Collection, _BadShape, _Undeclared, check_variables
from ._api_client import add_user_token_option, api_client, read_query
from ._checkpoint import StandbyNotes, open_checkpoint
from ._commands import Context, _variables
from ._exits import CliError, ExitCode

__all__ = ["add_collect_parser", "cmd_collect"]


def _positive(kind: type[float] | type[int], what: str) -> Any:
    def parse(value: str) -> float | int:
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {what}: {value!r}") from None
        if not number > 0 or number != number or number == float("inf"):
            raise argparse.ArgumentTypeError(f"must be positive ({what})")
        return number

    return parse


def add_collect_parser(
    sub: argparse._SubParsersAction[Any],
    parents: list[argparse.ArgumentParser],
) -> None:
    """Add the ``collect`` command to the CLI's subparsers."""
    collect = sub.add_parser(
        "collect",
        parents=parents,
        help="follow a cursor-paged list (camera events) and append it as JSON Lines",
        description=(
            "Follow a cursor-paged list with NetrexClient.collect(): page through the "
            "backlog, then poll every --every seconds; write one item per line (JSON Lines) "
            "to stdout or append it to --out, flushed to disk before the cursor is "
            "committed to --checkpoint. At least once: after a crash, the batch in hand "
            "comes again, none is skipped. A second collector on the same checkpoint waits "
            "as a standby (on another host too, with a Redis checkpoint) and takes over "
            "when the first stops or dies. SIGINT and SIGTERM stop it cleanly (the batch "
            "in hand is written and committed; exit 0). Exit 5: the output cannot be "
            "written (a full disk: the batch in hand is taken back out of it), the "
            "checkpoint was taken over by another collector, or a stop came while its "
            "commit kept failing (waited for 5 s). Exit 65: the checkpoint is corrupt "
            "(left as it is: a restart cannot help). Exit 2: options that do not go "
            "together, a query that does not declare the --cursor variable, a Redis "
            "password refused, or a Redis checkpoint without the redis extra installed."
        ),
    )
    collect.add_argument(
        "query", metavar="GRAPHQL", help="the GraphQL query (- reads it from stdin)"
    )
    collect.add_argument("--items", required=True, metavar="PATH", help="the list in data, dotted")
    collect.add_argument(
        "--cursor", required=True, metavar="VAR", help="the variable that takes the last key"
    )
    collect.add_argument(
        "--key", required=True, metavar="FIELD", help="the item field that is the cursor"
    )
    collect.add_argument(
        "--checkpoint",
        metavar="FILE|URL",
        help="where the cursor is committed (default $NETREX_CHECKPOINT): a file, locked "
        "for one collector on this host; or a Redis URL (redis://, rediss://, unix://, "
        "redis+sentinel://, as for RedisTokenStore; needs the redis extra) with "
        "--checkpoint-key, locked with a lease for one collector in a fleet of hosts. "
        "A password in the URL is visible to other users here: prefer $NETREX_CHECKPOINT",
    )
    collect.add_argument(
        "--checkpoint-key",
        metavar="KEY",
        help="with a Redis checkpoint: the name of the stream, the same for every collector of it",
    )
    collect.add_argument(
        "--lease",
        type=_positive(float, "a number of seconds"),
        metavar="S",
        help="with a Redis checkpoint: seconds the lock outlives a collector that died or "
        "hangs, after which a standby takes over (default 15)",
    )
    collect.add_argument(
        "--every",
        type=_positive(float, "a number of seconds"),
        default=30.0,
        metavar="S",
        help="seconds between polls once caught up (default 30)",
    )
    collect.add_argument("--out", metavar="FILE", help="append to FILE instead of stdout")
    collect.add_argument(
        "--page-size",
        type=_positive(int, "a number of items"),
        metavar="N",
        help="the most items a page holds: a full page is followed at once",
    )
    collect.add_argument(
        "--page-size-variable", metavar="VAR", help="the query variable to send --page-size in"
    )
    collect.add_argument("--variables", metavar="JSON", help="other variables, a JSON object")
    collect.add_argument(
        "--summary-every",
        type=_positive(float, "a number of seconds"),
        default=60.0,
        metavar="S",
        help="seconds between one-line summaries on stderr (default 60); a terminal also "
        "gets a progress line",
    )
    collect.add_argument(
        "--time-field",
        metavar="FIELD",
        help="the item field with its time (ISO 8601 or epoch seconds): summaries then say "
        "how far behind the newest item the collector is",
    )
    add_user_token_option(collect)


class _Listening:
    """Lowers loggers to ``level`` while the collector runs (never raises one: --debug
    keeps its DEBUG), and puts them back."""

    def __init__(self, loggers: tuple[logging.Logger, ...], level: int) -> None:
        self._loggers = loggers
        self._level = level
        self._old: list[int] = []

    def start(self) -> None:
        self._old = [logger.level for logger in self._loggers]
        for logger in self._loggers:
            if logger.getEffectiveLevel() > self._level:
                logger.setLevel(self._level)

    def stop(self) -> None:
        for logger, level in zip(self._loggers, self._old, strict=False):
            logger.setLevel(level)
        self._old = []


class _Outages(logging.Handler):
    """Counts the outages the collector survived (its ``collect_recovered`` records)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "event", None) == "collect_recovered":
            self.count += 1


class _Sink:
    """JSON Lines to a file (appended, fsynced) or to stdout (flushed)."""

    def __init__(self, ctx: Context, path: str | None) -> None:
        self._console = ctx.console
        self._path = Path(path) if path is not None else None
        self._fd: int | None = None
        #: A regular file, which a failed write can be cut back in (not a pipe, a device).
        self._regular = False
        if self._path is not None:
            self._fd = self._open(self._path)

    def _open(self, path: Path) -> int:
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise self._error(e) from None
        try:
            st = os.fstat(fd)
            self._regular = stat.S_ISREG(st.st_mode)
            size = st.st_size
            if size:
                # A crash mid-write left a partial last line: cut it off (its item was
                # never committed, so it comes again).
                tail = os.pread(fd, min(size, 1 << 20), max(0, size - (1 << 20)))
                end = tail.rfind(b"\n")
                keep = size - len(tail) + end + 1 if end >= 0 else 0
                if keep != size and (end >= 0 or size <= 1 << 20):
                    os.ftruncate(fd, keep)
                    self._console.warn(
                        f"{path}: cut off a partial last line ({size - keep} bytes) left by "
                        "an interrupted write; its items come again"
                    )
        except OSError as e:
            os.close(fd)
            raise self._error(e) from None
        return fd

    def _error(self, e: OSError, *, batch: bool = False) -> CliError:
        then = " (the batch in hand is not committed: it comes again next time)" if batch else ""
        return CliError(
            f"cannot write {self._path}: {e.strerror or type(e).__name__}{then}",
            ExitCode.LOCAL_FILE,
        )

    def write(self, batch: list[Any]) -> None:
        """Write one batch, durably, before its cursor is committed.

        Raises:
            CliError: The output cannot be written (a full disk): nothing is committed.
        """
        text = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in batch)
        if self._fd is None:
            try:
                self._console.print(text, end="")
            except OSError as e:  # a closed pipe, a full disk behind a redirection
                raise CliError(
                    f"cannot write to stdout: {e.strerror or type(e).__name__}",
                    ExitCode.LOCAL_FILE,
                ) from None
            return
        data = memoryview(text.encode("utf-8"))
        try:
            start = os.fstat(self._fd).st_size if self._regular else 0
            while data:
                data = data[os.write(self._fd, data) :]
            os.fsync(self._fd)
        except OSError as e:
            if self._regular:
                # Take the batch back out (a full disk leaves part of it written): the
                # file then ends with the last committed batch, and the restart that
                # brings this batch again writes it once.
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, start)
            raise self._error(e, batch=True) from None

    @property
    def progress_line(self) -> bool:
        """Whether stderr is a terminal that gets an updating progress line (not when the
        items themselves go to that terminal)."""
        err = self._console.err
        isatty = getattr(err, "isatty", None)
        try:
            on_tty = bool(isatty and isatty())
        except ValueError:
            return False
        return on_tty and (self._fd is not None or not self._console.is_tty())

    def progress(self, line: str) -> None:
        """Rewrite the progress line on the terminal."""
        err = self._console.err
        err.write("\r" + self._console.clean(line) + "\x1b[K")
        err.flush()

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


def _epoch(value: Any) -> float | None:
    """An item's time (ISO 8601, or epoch seconds) as epoch seconds, or ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


class _Stats:
    """What the summaries and the progress line say."""

    def __init__(self, outages: _Outages, time_field: str | None = None) -> None:
        self.items = 0
        self.outages = outages
        self.started = time.monotonic()
        self.time_field = time_field
        #: Epoch seconds of the newest item collected (with ``time_field``).
        self.newest: float | None = None

    def add(self, batch: list[Any]) -> None:
        self.items += len(batch)
        if self.time_field is not None and batch and isinstance(batch[-1], dict):
            stamp = _epoch(batch[-1].get(self.time_field))
            if stamp is not None:
                self.newest = stamp if self.newest is None else max(self.newest, stamp)

    def line(self, now: float | None = None) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        text = f"collect: {self.items} items in {elapsed:.0f} s ({self.items / elapsed:.1f}/s)"
        if self.newest is not None:
            lag = max(0.0, (time.time() if now is None else now) - self.newest)
            text += f", {lag:.0f} s behind the newest item"
        return text + f", {self.outages.count} outages survived"


async def cmd_collect(ctx: Context) -> int:
    """Collect until SIGINT or SIGTERM; each batch written and flushed, then committed."""
    args, console = ctx.args, ctx.console
    query = read_query(ctx, args.query)
    variables = _variables(args.variables)
    if args.page_size_variable is not None and args.page_size is None:
        raise CliError("--page-size-variable needs --page-size")
    try:
        check_variables(
            query,
            cursor=args.cursor,
            page_size_variable=args.page_size_variable,
            operation_name=None,
        )
    except _Undeclared as e:
        raise CliError(_in_cli_terms(e)) from None
    checkpoint = open_checkpoint(ctx)
    try:
        # Checked before anything is sent or written: the grant goes to its own provider.
        api = await api_client(ctx, background=True)
    except BaseException:
        await checkpoint.aclose()
        raise
    client = api.client
    collect_log = logging.getLogger("netrex_async.collect")
    # The INFO records counted (outages survived) or told (standby, taken over) are made
    # only where these loggers let INFO through (on stderr, WARNING and above only).
    noted = _Listening((collect_log, logging.getLogger("netrex_async.stores")), logging.INFO)
    standby = StandbyNotes(ctx)
    outages = _Outages()
    stats = _Stats(outages, args.time_field)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    handled: list[signal.Signals] = []

    async def summaries() -> None:
        while True:
            await asyncio.sleep(args.summary_every)
            # Over the progress line, if there is one, and on a line of its own.
            clear = "\r\x1b[K" if sink is not None and sink.progress_line else ""
            console.info(clear + stats.line())

    reporter: asyncio.Task[None] | None = None
    sink: _Sink | None = None
    try:
        sink = _Sink(ctx, args.out)
        noted.start()
        collect_log.addHandler(outages)
        logging.getLogger("netrex_async.stores").addHandler(standby)
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, stop.set)
                handled.append(signum)
        reporter = loop.create_task(summaries())
        async with client, checkpoint:
            batches = client.collect(
                query,
                items=args.items,
                cursor=args.cursor,
                key=args.key,
                checkpoint=checkpoint,
                every=args.every,
                variables=variables,
                page_size=args.page_size,
                page_size_variable=args.page_size_variable,
            )
            async with batches:
                try:
                    await _follow(batches, sink, stop, stats, progress=sink.progress_line)
                except _BadShape as e:
                    raise CliError(_in_cli_terms(e), ExitCode.API_ERROR) from None
    finally:
        if reporter is not None:
            reporter.cancel()
        for signum in handled:
            loop.remove_signal_handler(signum)
        collect_log.removeHandler(outages)
        logging.getLogger("netrex_async.stores").removeHandler(standby)
        noted.stop()
        if sink is not None:
            sink.close()
        await api.aclose()
    if sink is not None and sink.progress_line:
        console.info("")
    console.info(stats.line() + "; stopped cleanly")
    return ExitCode.OK


def _in_cli_terms(exc: _BadShape | _Undeclared) -> str:
    """A collect() error that names a Python argument (``items=``), naming the option."""
    return f"{exc.detail} (--{exc.argument.replace('_', '-')})"


async def _follow(
    batches: Collection, sink: _Sink, stop: asyncio.Event, stats: _Stats, *, progress: bool
) -> None:
    """Write each batch durably, then commit it, until ``stop`` is set.

    A stop that comes while a batch is being written finishes it (written, committed);
    one that comes between batches ends the wait for the next.

    Raises:
        CliError: Stopped while the commit kept failing (see :func:`_commit`).
    """
    stopping = asyncio.ensure_future(stop.wait())
    try:
        while not stop.is_set():
            asking = asyncio.ensure_future(anext(batches))
            done, _ = await asyncio.wait({asking, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if asking not in done:
                asking.cancel()  # nothing in hand: the last batch is committed already
                with contextlib.suppress(asyncio.CancelledError):
                    await asking
                return
            batch = asking.result()
            sink.write(batch)  # on disk before the commit
            await _commit(batches, stopping)
            stats.add(batch)
            if progress:
                sink.progress(stats.line())
    finally:
        stopping.cancel()


#: Seconds a stop waits for the commit in hand. A commit takes milliseconds; one that is
#: being retried (a checkpoint on a full disk, Redis away) may not land for a long time.
COMMIT_GRACE = 5.0


async def _commit(batches: Collection, stopping: asyncio.Future[Any]) -> None:
    """Commit the batch in hand; a stop meanwhile waits :data:`COMMIT_GRACE` for it.

    Raises:
        CliError: The commit had not landed by then: the batch is written but not
            committed, and comes again next time (exit 5).
    """
    committing = asyncio.ensure_future(batches.commit())
    try:
        await asyncio.wait({committing, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not committing.done():
            await asyncio.wait({committing}, timeout=COMMIT_GRACE)
        if not committing.done():
            raise CliError(
                "stopped before the cursor of the batch in hand could be committed (the "
                "commit kept failing: see the warnings above); the batch is written, and "
                "comes again next time",
                ExitCode.LOCAL_FILE,
            )
        committing.result()
    finally:
        if not committing.done():
            committing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await committing
