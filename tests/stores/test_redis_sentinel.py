"""RedisTokenStore through Redis Sentinel: a real master, replica and sentinel.

Each test starts its own ``redis-server`` master and replica and a ``redis-server
--sentinel`` on free ports (tests/_redis_server.py), then fails the master over, by
``SENTINEL FAILOVER`` or by killing it, and checks that the store writes to the new
master within a bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from _redis_server import REDIS_SERVER, RedisSentinel, RedisServer
from store_helpers import SECRET_MARK, make_token

from netrex_async import Token, TokenStoreError
from netrex_async.stores.redis import RedisTokenStore

pytestmark = [
    pytest.mark.redis,
    pytest.mark.timeout(90),
    pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed"),
]

PASSWORD = f"pw-{SECRET_MARK}-sentinel"
FAST = {"socket_timeout": 0.5, "connect_timeout": 0.5, "retries": 2}


class Cluster:
    def __init__(self, master: RedisServer, replica: RedisServer, sentinel: RedisSentinel):
        self.master = master
        self.replica = replica
        self.sentinel = sentinel


@pytest.fixture(name="cluster")
def _cluster() -> Iterator[Cluster]:
    with (
        RedisServer(password=PASSWORD) as master,
        master.replica() as replica,
        RedisSentinel(master, service="netrex") as sentinel,
    ):
        sentinel.wait_for_replica(replica)
        yield Cluster(master, replica, sentinel)


def sentinel_url(cluster: Cluster) -> str:
    return f"redis+sentinel://:{PASSWORD}@127.0.0.1:{cluster.sentinel.port}/netrex"


def stored(server: RedisServer, store: RedisTokenStore) -> str:
    return server.cli("GET", store.key)


async def test_store_works_through_the_sentinel_url(cluster: Cluster) -> None:
    async with RedisTokenStore(sentinel_url(cluster), key="grant") as store:
        assert store.description == (
            f"redis+sentinel://127.0.0.1:{cluster.sentinel.port}/netrex/0 key netrex_async:grant"
        )
        assert SECRET_MARK not in repr(store)
        token = make_token()
        await store.save(token)
        loaded = await store.load()
        assert loaded is not None
        assert loaded.to_dict() == token.to_dict()
        assert token.access_token in stored(cluster.master, store)
        async with store.lock():
            await store.check_lease()


async def test_after_sentinel_failover_the_store_writes_to_the_new_master(
    cluster: Cluster,
) -> None:
    """The pooled connection to the demoted master gets READONLY; the retry follows."""
    async with RedisTokenStore(sentinel_url(cluster), key="grant", **FAST) as store:
        await store.save(make_token(1))  # a pooled connection to the old master
        new_port = cluster.sentinel.failover()
        assert new_port == cluster.replica.port
        # What the sentinel does to the old master a little later, done at once here.
        assert cluster.master.cli("REPLICAOF", "127.0.0.1", str(new_port)) == "+OK"
        assert cluster.master.role() == "slave"
        token = make_token(2)
        await store.save(token)  # no error: READONLY -> ConnectionError -> retried
        assert token.access_token in stored(cluster.replica, store)
        loaded = await store.load()
        assert loaded is not None
        assert loaded.to_dict() == token.to_dict()


async def test_after_the_master_is_killed_the_store_writes_to_the_new_master(
    cluster: Cluster,
) -> None:
    async with RedisTokenStore(sentinel_url(cluster), key="grant", **FAST) as store:
        await store.save(make_token(1))
        cluster.master.kill()
        loop = asyncio.get_running_loop()
        started = loop.time()
        token: Token | None = None
        errors: list[str] = []
        # down-after 1 s, an election, the promotion: well within 15 s
        while loop.time() - started < 15:
            try:
                token = make_token(2)
                await store.save(token)
                break
            except TokenStoreError as e:
                errors.append(str(e))
                token = None
                await asyncio.sleep(0.1)
        assert token is not None, f"no save within 15 s: {errors[-1:]}"
        assert not [e for e in errors if SECRET_MARK in e]
        assert cluster.sentinel.master_port() == cluster.replica.port
        assert token.access_token in stored(cluster.replica, store)
