"""Every code block of README.md and docs/ runs, in order, against a FakeNetrex.

How blocks run, how one is skipped and what is substituted: tests/docs/README.md.
"""

from __future__ import annotations

import functools
import gc
import os
from pathlib import Path

import pytest

from netrex_async import set_testing

from ._snippets import PageRun, extract_blocks

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted(
    [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")], key=lambda p: str(p.relative_to(ROOT))
)
REDIS_URL = os.environ.get("NETREX_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REQUIRE_REDIS = os.environ.get("NETREX_REQUIRE_REDIS") == "1"


@functools.cache
def _redis_url() -> str | None:
    """The test Redis if it answers; ``None`` otherwise (a failure under NETREX_REQUIRE_REDIS)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except redis.RedisError:
        if REQUIRE_REDIS:
            raise
        return None
    finally:
        client.close()
    return REDIS_URL


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_page(page: Path, tmp_path: Path) -> None:
    blocks = extract_blocks(page.read_text(), str(page.relative_to(ROOT)))
    needs_redis = any(b.needs == "redis" and not b.skip for b in blocks)
    run = PageRun(str(page), tmp_path, redis_url=_redis_url() if needs_redis else None)
    old = set_testing(True)
    try:
        run.run(blocks)
    finally:
        set_testing(old)
    gc.collect()  # whatever the page left unclosed warns here, in this page's test
    assert run.ran or run.skipped or not blocks
