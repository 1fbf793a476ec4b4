"""Suite-wide: no secret may reach a log record of the ``netrex_async`` logger tree.

Every test runs with a handler at DEBUG on ``logging.getLogger("netrex_async")``; at
teardown each captured record (formatted message, ``msg``, arguments, ``extra`` fields,
exception text) is scanned for every secret the test knows, and the test fails if one is
found. The secrets known to a test are:

* everything each :class:`~netrex_async.testing.FakeNetrex` alive during the test issued
  or received: its client secret, authorization codes, access and refresh tokens
  (retired ones too), and every secret parameter and bearer token in its request log
  (PKCE verifiers included);
* whatever the test adds to the ``secret_registry`` fixture (tokens made by hand, cookie
  values, a user token...).

Values shorter than :data:`MIN_SECRET_LENGTH` characters are ignored, so that a short
test value cannot match by accident: make test secrets long.

The same registry checks exception texts (``str``, ``repr``, ``args``, attributes,
every chained cause and context) and any other text, such as CLI output::

    def test_x(secret_registry):
        secret_registry.add(token)          # a Token: both of its tokens
        ...
        secret_registry.check(exc, output)  # AssertionError naming the place, not the secret
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import traceback
import weakref
from collections.abc import Iterable, Iterator

import pytest
from unit._leaks import MIN_SECRET_LENGTH, exception_texts, record_texts, secret_forms

from netrex_async import Token
from netrex_async.testing import FakeNetrex

# -- every FakeNetrex made while a test runs is known to that test ------------------------

_ALL_FAKES: weakref.WeakSet[FakeNetrex] = weakref.WeakSet()
_ACTIVE: list[SecretRegistry] = []
_original_post_init = FakeNetrex.__attrs_post_init__


def _registering_post_init(self: FakeNetrex) -> None:
    _original_post_init(self)
    _ALL_FAKES.add(self)
    for registry in _ACTIVE:
        registry.watch(self)


FakeNetrex.__attrs_post_init__ = _registering_post_init  # type: ignore[method-assign]


def fake_secrets(fake: FakeNetrex) -> Iterator[tuple[str, str]]:
    """Every secret ``fake`` issued or received, each with a label that names no secret."""
    yield from fake.secrets()


class SecretRegistry:
    """The secrets one test knows, and the scanner that looks for them."""

    def __init__(self) -> None:
        self._added: list[tuple[str, str]] = []
        self._fakes: list[FakeNetrex] = []

    def watch(self, fake: FakeNetrex) -> None:
        """Know every secret of ``fake`` (done for every fake made during the test)."""
        if all(f is not fake for f in self._fakes):
            self._fakes.append(fake)

    def add(self, *secrets: str | Token | None, label: str = "registered secret") -> None:
        """Know these secrets too; a :class:`Token` adds its access and refresh tokens."""
        for secret in secrets:
            if isinstance(secret, Token):
                self._added.append((f"{label} (access token)", secret.access_token))
                if secret.refresh_token:
                    self._added.append((f"{label} (refresh token)", secret.refresh_token))
            elif secret:
                self._added.append((label, secret))

    def known(self) -> dict[str, str]:
        """Every secret form scanned for, each with its label."""
        labelled = list(self._added)
        for fake in self._fakes:
            labelled.extend(fake_secrets(fake))
        forms: dict[str, str] = {}
        for label, secret in labelled:
            if isinstance(secret, str) and len(secret) >= MIN_SECRET_LENGTH:
                for form in secret_forms(secret):
                    if len(form) >= MIN_SECRET_LENGTH:
                        forms.setdefault(form, label)
        return forms

    def find(self, texts: Iterable[tuple[str, str]]) -> list[str]:
        """``"place: label"`` for each known secret found in ``texts`` (no secret shown)."""
        forms = self.known()
        if not forms:
            return []
        pattern = re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)))
        found: set[str] = set()
        for place, text in texts:
            for match in pattern.finditer(text):
                found.add(f"{place}: {forms[match.group()]}")
        return sorted(found)

    def texts_of(self, *things: object) -> list[tuple[str, str]]:
        """The texts to scan for ``things``: exceptions in depth, strings, other reprs."""
        texts: list[tuple[str, str]] = []
        for i, thing in enumerate(things):
            if isinstance(thing, BaseException):
                texts.append(
                    (
                        f"traceback of {type(thing).__name__}",
                        "".join(traceback.format_exception(thing)),
                    )
                )
                texts.extend(exception_texts(thing))
            elif isinstance(thing, pytest.ExceptionInfo):
                texts.extend(self.texts_of(thing.value))
            elif isinstance(thing, str | bytes):
                text = thing.decode("utf-8", "replace") if isinstance(thing, bytes) else thing
                texts.append((f"text #{i}", text))
            elif isinstance(thing, logging.LogRecord):
                texts.extend(record_texts(thing))
            else:
                texts.append((f"repr/str of {type(thing).__name__}", f"{thing!r} {thing!s}"))
        return texts

    def check(self, *things: object) -> None:
        """Fail if a known secret can be read in any of ``things``.

        ``things`` may be exceptions (or ``pytest.raises`` infos), strings (CLI output,
        a page), log records, or any object (its ``repr`` and ``str``).
        """
        leaks = self.find(self.texts_of(*things))
        assert not leaks, "secrets leaked:\n  " + "\n  ".join(leaks)


class _Capture(logging.Handler):
    """Keeps the texts of every record, taken when it is emitted."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[tuple[str, str]] = []
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        self.texts.extend(record_texts(record))


@pytest.fixture(name="secret_registry")
def _secret_registry() -> SecretRegistry:
    """The secrets this test knows; add to it, and check texts with ``check()``."""
    return SecretRegistry()


@pytest.fixture(name="_no_secret_in_logs", autouse=True)
def _no_secret_in_logs(secret_registry: SecretRegistry) -> Iterator[None]:
    """Capture the netrex_async logger tree at DEBUG; fail at teardown on a leaked secret."""
    for fake in list(_ALL_FAKES):
        if fake.running:  # made by a wider-scoped fixture, still serving this test
            secret_registry.watch(fake)
    logger = logging.getLogger("netrex_async")
    handler = _Capture()
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    _ACTIVE.append(secret_registry)
    try:
        yield
    finally:
        _ACTIVE.remove(secret_registry)
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    leaks = secret_registry.find(handler.texts)
    if leaks:
        pytest.fail(
            f"a secret reached the netrex_async logs ({handler.count} records captured):\n  "
            + "\n  ".join(leaks),
            pytrace=False,
        )


@pytest.fixture(name="no_implicit_event_loop", autouse=True)
def _no_implicit_event_loop(request: pytest.FixtureRequest) -> None:
    """A sync test runs with no event loop set.

    looptime's ``pytest_pyfunc_call`` asks the policy for the event loop in every test;
    in a sync test on Python 3.11 that makes a new loop that nobody closes, and its
    ``ResourceWarning`` then fails whichever test runs when it is collected.
    """
    if not inspect.iscoroutinefunction(request.function):
        asyncio.set_event_loop(None)
