"""collect() holds one page, whatever the backlog: the peak of traced memory while a real
NetrexClient pages through 50,000 events is no more than a small constant above its peak
through 5,000. A server of the test's own on loopback answers the cursor-paged query
(no GraphQL engine, and its answers made before memory is traced: a second or two)."""

from __future__ import annotations

import gc
import json
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from netrex_async import MemoryCheckpoint, NetrexClient, Provider

QUERY = "query($after: ID, $limit: Int) { events(afterId: $after, limit: $limit) { id } }"
PAGE = 500
SMALL, LARGE = 5_000, 50_000
#: What the large backlog may hold above the small one: allocator and cache noise, a
#: fraction of one page (a page of 500 events is ~250 KiB parsed; the 45,000 more events
#: the large backlog has, kept, would be ~20 MiB).
SLACK = 128 * 1024


def event(n: int) -> dict[str, Any]:
    return {
        "id": str(n),
        "cameraId": f"cam-{n % 7}",
        "type": "motion" if n % 3 else "line-crossing",
        "time": f"2026-12-01T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z",
    }


@pytest.fixture(name="provider")
async def _provider() -> AsyncIterator[Provider]:
    """A GraphQL endpoint over events 1..LARGE, paged by afterId in pages of PAGE; the
    answers made before memory is traced, so that what is traced is the client's."""
    pages = {
        after: json.dumps(
            {"data": {"events": [event(n) for n in range(after + 1, min(after + PAGE, LARGE) + 1)]}}
        ).encode()
        for after in range(0, LARGE + 1, PAGE)
    }

    async def graphql(request: web.Request) -> web.Response:
        variables = (await request.json())["variables"]
        assert variables["limit"] == PAGE
        body = pages[int(variables.get("after") or 0)]
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_post("/api/graphql.php", graphql)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield Provider(str(server.make_url("/")).rstrip("/"))
    finally:
        await server.close()


async def peak_through(client: NetrexClient, backlog: int, keep: list[Any] | None = None) -> int:
    """Bytes of traced memory at the peak while collecting ``backlog`` events, above
    what was traced when it started (``keep``: a caller that keeps every batch)."""
    gc.collect()
    start, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    seen = 0
    async with client.collect(
        QUERY,
        items="events",
        cursor="after",
        key="id",
        checkpoint=MemoryCheckpoint(),
        every=60.0,
        page_size=PAGE,
        page_size_variable="limit",
    ) as batches:
        async for batch in batches:
            assert int(batch[0]["id"]) == seen + 1
            seen += len(batch)
            if keep is not None:
                keep.append(batch)
            if seen >= backlog:
                break
    _, peak = tracemalloc.get_traced_memory()
    return peak - start


async def test_memory_is_one_page_whatever_the_backlog(provider: Provider) -> None:
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    try:
        async with NetrexClient("a-user-token-of-the-memory-test", provider=provider) as client:
            await peak_through(client, PAGE)  # a warm-up: connection, caches
            small = await peak_through(client, SMALL)
            large = await peak_through(client, LARGE)
            kept: list[Any] = []
            keeping = await peak_through(client, LARGE, keep=kept)
    finally:
        if not tracing:
            tracemalloc.stop()
    assert large <= small + SLACK, f"{small=} {large=}"
    # The measure sees memory that grows with the backlog: a caller keeping every batch.
    assert keeping > small + 50 * SLACK, f"{small=} {keeping=}"
