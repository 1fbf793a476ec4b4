"""A leak checker: fails when a secret shows up where a person or a log could see it.

Reusable by every suite::

    from unit._leaks import assert_no_leaks

    assert_no_leaks({client_secret, token.access_token}, caplog.records, exc, objects=[app])

It looks at log records (the formatted message, ``msg``, every argument, every ``extra``
field, exception info and stack info), at exceptions (``str`` and ``repr``, their ``args``
and attributes, the formatted traceback, and every exception chained through
``__cause__``, ``__context__`` (suppressed or not) and exception groups), and at the
``repr`` and ``str`` of any object. A secret counts as leaked in its raw form and in each
form a URL or form body would give it (percent-encoded, ``+`` for space).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterable, Iterator, Mapping
from urllib.parse import quote, quote_plus

from yarl import URL

__all__ = [
    "MIN_SECRET_LENGTH",
    "assert_no_leaks",
    "exception_texts",
    "find_leaks",
    "record_texts",
    "secret_forms",
]

#: Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("x", logging.DEBUG, __file__, 0, "x", (), None))
) | {"message", "asctime", "taskName"}

#: Secrets shorter than this would match by accident; tests must use longer ones.
MIN_SECRET_LENGTH = 8


def secret_forms(secret: str) -> set[str]:
    """The raw secret and every encoded form it takes in a URL or a form body."""
    forms = {
        secret,
        quote(secret, safe=""),
        quote(secret, safe="/"),
        quote_plus(secret),
        quote_plus(secret, safe="/"),
        # Exactly what yarl writes in a query string (space as "+", "/" kept, ...).
        URL("http://x/").with_query({"k": secret}).raw_query_string[2:],
        secret.encode("unicode_escape").decode("ascii"),
    }
    return {f for f in forms if f}


def exception_texts(exc: BaseException, seen: set[int] | None = None) -> Iterator[tuple[str, str]]:
    """``(place, text)`` for an exception: str, repr, args, attributes, chained ones."""
    seen = set() if seen is None else seen
    if id(exc) in seen:
        return
    seen.add(id(exc))
    name = type(exc).__name__
    yield f"str({name})", str(exc)
    yield f"repr({name})", repr(exc)
    for i, arg in enumerate(exc.args):
        yield f"{name}.args[{i}]", repr(arg)
    for key, value in vars(exc).items():
        if key.startswith("__"):
            continue
        yield f"{name}.{key}", repr(value)
        if isinstance(value, BaseException):
            yield from exception_texts(value, seen)
    for note in getattr(exc, "__notes__", ()) or ():
        yield f"{name}.__notes__", str(note)
    # Every link, whether or not ``raise ... from None`` hides it from tracebacks: a
    # logging handler, an error tracker or a debugger may still walk it.
    for link in ("__cause__", "__context__"):
        chained = getattr(exc, link)
        if chained is not None:
            yield from exception_texts(chained, seen)
    if isinstance(exc, BaseExceptionGroup):
        for sub in exc.exceptions:
            yield from exception_texts(sub, seen)


def record_texts(record: logging.LogRecord, index: int = 0) -> Iterator[tuple[str, str]]:
    """``(place, text)`` for everything a log handler or formatter could show."""
    where = f"log record #{index} ({record.name}: {record.msg!r:.60})"
    yield f"{where} message", record.getMessage()
    yield f"{where} msg", str(record.msg)
    args = record.args
    if isinstance(args, dict):
        items: Iterable[object] = args.values()
    elif isinstance(args, tuple):
        items = args
    else:
        items = () if args is None else (args,)
    seen: set[int] = set()
    for i, arg in enumerate(items):
        yield f"{where} arg {i} str", str(arg)
        yield f"{where} arg {i} repr", repr(arg)
        if isinstance(arg, BaseException):
            for place, text in exception_texts(arg, seen):
                yield f"{where} arg {i} {place}", text
    for key, value in vars(record).items():
        if key in _STANDARD_RECORD_ATTRS:
            continue
        yield f"{where} extra {key!r}", repr(value)
        yield f"{where} extra {key!r} str", str(value)
    if record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        yield f"{where} exc_info", "".join(traceback.format_exception(exc))
        for place, text in exception_texts(exc, seen):
            yield f"{where} exc_info {place}", text
    if record.exc_text:
        yield f"{where} exc_text", record.exc_text
    if record.stack_info:
        yield f"{where} stack_info", record.stack_info


def find_leaks(
    secrets: Mapping[str, str | None] | Iterable[str | None],
    records: Iterable[logging.LogRecord] = (),
    exc: BaseException | Iterable[BaseException] | None = None,
    *,
    objects: Iterable[object] = (),
) -> list[str]:
    """Every place where one of ``secrets`` (in any encoded form) can be read.

    Args:
        secrets: The secrets, or a mapping of a label (shown in failures) to each secret.
        records: Captured log records, e.g. ``caplog.records``.
        exc: An exception, or several, raised by the code under test.
        objects: Values whose ``repr`` and ``str`` must hide every secret.

    Returns descriptions like ``"str(TransportError): client_secret"``, never the secret.
    """
    if isinstance(secrets, Mapping):
        labelled = [(str(k), v) for k, v in secrets.items()]
    else:
        labelled = [(f"secret #{i}", v) for i, v in enumerate(secrets)]
    named: dict[str, str] = {}
    for label, secret in labelled:
        if secret is None:
            continue
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"a test secret must have at least {MIN_SECRET_LENGTH} characters "
                "so that it cannot match by accident"
            )
        for form in secret_forms(secret):
            named.setdefault(form, label)

    texts: list[tuple[str, str]] = []
    for i, record in enumerate(records):
        texts.extend(record_texts(record, i))
    if isinstance(exc, BaseException):
        excs: Iterable[BaseException] = (exc,)
    else:
        excs = () if exc is None else exc
    seen: set[int] = set()
    for e in excs:
        texts.append((f"traceback of {type(e).__name__}", "".join(traceback.format_exception(e))))
        texts.extend(exception_texts(e, seen))
    for obj in objects:
        texts.append((f"repr({type(obj).__name__})", repr(obj)))
        texts.append((f"str({type(obj).__name__})", str(obj)))

    found: list[str] = []
    for place, text in texts:
        for form, name in named.items():
            if form in text:
                found.append(f"{place}: {name}")
    return sorted(set(found))


def assert_no_leaks(
    secrets: Mapping[str, str | None] | Iterable[str | None],
    records: Iterable[logging.LogRecord] = (),
    exc: BaseException | Iterable[BaseException] | None = None,
    *,
    objects: Iterable[object] = (),
) -> None:
    """Fail the test if any secret can be read in ``records``, ``exc`` or ``objects``."""
    leaks = find_leaks(secrets, records, exc, objects=objects)
    assert not leaks, "secrets leaked:\n  " + "\n  ".join(leaks)
