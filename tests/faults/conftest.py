"""Fixtures of the fault suite."""

from _tmpfs import small_disk  # noqa: F401  (a fixture: a tiny tmpfs to fill)
