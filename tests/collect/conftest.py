"""Fixtures of the collector tests."""

from _redis_server import redis_server  # noqa: F401  (a fixture: a Redis of the test's own)
from _tmpfs import small_disk  # noqa: F401  (a fixture: a tiny tmpfs to fill)
from cli.conftest import reap_cli  # noqa: F401  (kills the CLI processes a test left)
