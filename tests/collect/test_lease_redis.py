"""A collector whose Redis lease was lost while it asked for a page does not deliver that
page: the collector that took over delivers it, once. A Redis server of the test's own;
the lease is lost by expiry (the lock key dropped) or by a partition (the holder cut off
from Redis longer than the lease). Wall clock, because real Redis keeps the lease: a
lease of half a second."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from _redis_server import RedisServer
from hardening._helpers import TcpProxy

from netrex_async import CheckpointLost, NetrexClient
from netrex_async.stores.redis import RedisCheckpoint

QUERY = "query($after: ID, $limit: Int) { events(afterId: $after, limit: $limit) { id } }"
LEASE = 0.5
PAGE = 10


class GatedApi:
    """``graphql()`` over events 1..n; with ``gate`` cleared, a query waits for it."""

    def __init__(self, events: int) -> None:
        self.ids = list(range(1, events + 1))
        self.gate = asyncio.Event()
        self.gate.set()
        self.waiting = asyncio.Event()

    async def graphql(
        self, query: str, variables: dict[str, Any] | None = None, *, operation_name: Any = None
    ) -> Any:
        variables = dict(variables or {})
        if not self.gate.is_set():
            self.waiting.set()
            await self.gate.wait()
        after = int(variables.get("after") or 0)
        return {"events": [{"id": str(i)} for i in self.ids if i > after][: variables["limit"]]}


def collect(api: GatedApi, checkpoint: RedisCheckpoint) -> Any:
    # collect() only needs graphql(): the bound method of a real client, given the stand-in.
    return NetrexClient.collect(
        api,  # type: ignore[arg-type]
        QUERY,
        items="events",
        cursor="after",
        key="id",
        checkpoint=checkpoint,
        every=0.05,
        page_size=PAGE,
        page_size_variable="limit",
    )


def ids(batch: list[dict[str, str]]) -> list[int]:
    return [int(item["id"]) for item in batch]


@pytest.mark.parametrize("how", ["expired", "partitioned"])
async def test_a_collector_that_lost_its_lease_does_not_deliver_the_page_in_hand(
    redis_server: RedisServer,
    how: str,
) -> None:
    quick = {"socket_timeout": 0.2, "connect_timeout": 0.2, "retries": 1}
    async with TcpProxy("127.0.0.1", redis_server.port) as proxy:
        a_api, b_api = GatedApi(40), GatedApi(40)
        a_cp = RedisCheckpoint(
            f"redis://127.0.0.1:{proxy.port}/0", key="events", lock_expiry=LEASE, **quick
        )
        b_cp = RedisCheckpoint(redis_server.url, key="events", lock_expiry=LEASE, **quick)
        delivered: list[tuple[str, list[int]]] = []
        async with a_cp, b_cp, collect(a_api, a_cp) as a:
            delivered.append(("a", ids(await anext(a))))
            a_api.gate.clear()
            asking = asyncio.create_task(anext(a))  # commits 1..10, then asks for 11..20
            await asyncio.wait_for(a_api.waiting.wait(), 5)
            if how == "expired":
                assert redis_server.cli("DEL", a_cp.lock_key) == ":1"
            else:
                await proxy.stop()  # A's renewals cannot reach Redis; its lock expires there
            async with collect(b_api, b_cp) as b:
                delivered.append(("b", ids(await asyncio.wait_for(anext(b), 5))))
                if how == "partitioned":
                    await proxy.start()  # the partition heals: A reaches Redis again
                a_api.gate.set()  # A's page comes back, with 11..20 in it
                with pytest.raises(CheckpointLost, match="lost"):
                    delivered.append(("a", ids(await asyncio.wait_for(asking, 5))))
                delivered.append(("b", ids(await asyncio.wait_for(anext(b), 5))))
        assert delivered == [
            ("a", list(range(1, 11))),
            ("b", list(range(11, 21))),
            ("b", list(range(21, 31))),
        ]
        # B committed 11..20 when it asked for 21..30; A wrote nothing after it lost.
        async with RedisCheckpoint(redis_server.url, key="events") as check:
            assert await check.load() == "20"
