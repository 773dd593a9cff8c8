"""The node registry on real Redis: heartbeats with load, a lapsed worker is gone, a closed one
leaves at once, and whatever else is in Redis is read bounded and never trusted."""

from __future__ import annotations

import math
from typing import Any

import pytest
from redis.asyncio import Redis

from server.cluster.entry import ClusterKeys, WorkerEntry
from server.cluster.registry import NodeRegistry
from tests.cluster.helpers import FakeLoad, address, workers
from tests.redisproxy import RedisProxy
from tests.waiting import wait_for

DEADLINE = 10.0


def genuine(node: str = "node-z", index: int = 0, **changes: Any) -> WorkerEntry:
    me = address(node, index)
    values: dict[str, Any] = {
        "worker_id": me.worker_id,
        "node_id": me.node_id,
        "url": me.url,
        "base_url": me.base_url,
        "rooms": 0,
        "participants": 0,
        "cpu": 0.0,
        **changes,
    }
    return WorkerEntry(**values)


async def live_ids(registry: NodeRegistry) -> set[str]:
    return {w.entry.worker_id for w in await registry.live()}


async def test_each_worker_heartbeats_its_url_and_load(redis: Redis, keys: ClusterKeys) -> None:
    async with workers(redis, keys, [("node-a", 0), ("node-a", 1), ("node-b", 0)]) as started:
        a0, a1, b0 = started
        assert await live_ids(b0.registry) == {"node-a-0", "node-a-1", "node-b-0"}
        a1.load.rooms, a1.load.participants = 3, 7

        async def reported() -> bool:
            entries = {w.entry.worker_id: w.entry for w in await a0.registry.live()}
            return (entries["node-a-1"].rooms, entries["node-a-1"].participants) == (3, 7)

        await wait_for(reported, DEADLINE, "the new load in the next heartbeat")
        entry = {w.entry.worker_id: w.entry for w in await a0.registry.live()}["node-a-1"]
        assert entry.url == "http://127.0.0.1:9001"
        assert entry.base_url == "http://node-a.example.test"
        assert math.isfinite(entry.cpu)
        assert entry.cpu >= 0
        # Every worker knows every live worker's browser origins (CORS and CSP).
        await wait_for(
            lambda: "http://node-b.example.test" in a0.registry.origins,
            DEADLINE,
            "the other node's origin",
        )
        assert {"http://127.0.0.1:9000", "http://127.0.0.1:9001"} <= b0.registry.origins


async def test_a_worker_whose_heartbeat_lapses_is_gone(redis: Redis, keys: ClusterKeys) -> None:
    async with workers(redis, keys, [("node-a", 0)]) as (a0,):
        # A worker killed mid-beat: its last entry, with the TTL it wrote, and no more beats.
        dead = genuine("node-b", 0)
        await redis.set(keys.worker(dead.worker_id), dead.encode(), px=500)
        await redis.sadd(keys.workers, dead.worker_id)
        assert await live_ids(a0.registry) == {"node-a-0", "node-b-0"}
        await wait_for(
            lambda: live_ids_are(a0.registry, {"node-a-0"}), DEADLINE, "the lapsed entry gone"
        )
        assert await redis.smembers(keys.workers) == {b"node-a-0"}  # its id pruned


async def live_ids_are(registry: NodeRegistry, expected: set[str]) -> bool:
    return await live_ids(registry) == expected


async def test_a_closed_worker_leaves_at_once_and_closing_twice_is_safe(
    redis: Redis, keys: ClusterKeys
) -> None:
    async with workers(redis, keys, [("node-a", 0), ("node-a", 1)]) as (a0, a1):
        await a1.registry.close()
        assert await live_ids(a0.registry) == {"node-a-0"}
        assert not await redis.exists(keys.worker(a1.id))
        await a1.registry.close()  # and again when the stack closes it
    never_started = NodeRegistry(
        redis, keys, address("node-c", 0), FakeLoad(), interval=0.2, ttl=2.0
    )
    await never_started.close()


def test_the_heartbeat_ttl_must_outlast_two_beats(redis: Redis, keys: ClusterKeys) -> None:
    with pytest.raises(ValueError, match="twice"):
        NodeRegistry(redis, keys, address("node-a", 0), FakeLoad(), interval=1.0, ttl=1.5)


FORGED_ENTRIES: list[bytes] = [
    b"",
    b"{",
    b"[]",
    b"null",
    b'{"version":1}',
    genuine().encode().replace(b'"rooms":0', b'"rooms":-1'),
    genuine().encode().replace(b'"cpu":0.0', b'"cpu":NaN'),
    genuine().encode().replace(b'"rooms":0', b'"rooms":true'),
    genuine().encode().replace(b'"version":1', b'"version":2'),
    genuine().encode().replace(b"http://127.0.0.1:9000", b"javascript:alert(1)"),
    genuine().encode().replace(b"http://127.0.0.1:9000", b"http://u:p@evil.example/"),
    genuine().encode().replace(b'"cpu":0.0', b'"cpu":0.0,"extra":1'),
    # `draining` is written only while true.
    genuine().encode().replace(b'"cpu":0.0', b'"cpu":0.0,"draining":false'),
    genuine().encode().replace(b'"cpu":0.0', b'"cpu":0.0,"draining":1'),
    genuine().encode()[:-1] + b" " * 4096 + b"}",  # valid JSON, too long
    b"\xff\xfe" * 100,
]


def test_a_serving_workers_entry_says_nothing_of_draining() -> None:
    """A serving worker's entry is what a reader of the first version parses; a draining one's
    names it (such a reader refuses it, and so places nothing there either)."""
    serving = genuine()
    assert b"draining" not in serving.encode()
    assert WorkerEntry.decode(serving.encode()) == serving
    stopping = genuine(draining=True)
    assert b'"draining":true' in stopping.encode()
    assert WorkerEntry.decode(stopping.encode()).draining is True


@pytest.mark.parametrize("forged", FORGED_ENTRIES, ids=range(len(FORGED_ENTRIES)))
async def test_a_forged_entry_is_skipped_and_the_registry_keeps_working(
    redis: Redis, keys: ClusterKeys, forged: bytes
) -> None:
    async with workers(redis, keys, [("node-a", 0)]) as (a0,):
        await redis.set(keys.worker("node-z-0"), forged, px=60_000)
        await redis.sadd(keys.workers, "node-z-0")
        assert await live_ids(a0.registry) == {"node-a-0"}


async def test_an_entry_under_another_workers_id_is_not_that_worker(
    redis: Redis, keys: ClusterKeys
) -> None:
    async with workers(redis, keys, [("node-a", 0)]) as (a0,):
        await redis.set(keys.worker("node-z-1"), genuine("node-z", 0).encode(), px=60_000)
        await redis.sadd(keys.workers, "node-z-1")
        assert await live_ids(a0.registry) == {"node-a-0"}


async def test_huge_and_mistyped_keys_are_read_bounded(
    redis: Redis, keys: ClusterKeys, redis_url: str
) -> None:
    """8 MB under an entry, an 8 MB id in the set, entries and sets of the wrong type: the
    listing reads a few KiB and answers with the genuine worker."""
    huge = b"x" * (8 * 1024 * 1024)
    await redis.set(keys.worker("node-z-0"), huge)
    await redis.sadd(keys.workers, "node-z-0", huge, "node-z-1", "node-z-2")
    await redis.hset(keys.worker("node-z-1"), "a", "b")
    await redis.set(keys.worker("node-z-2"), genuine("node-z", 2).encode())
    await redis.rpush(keys.recent_prefix + "node-z-2", "not a sorted set")
    async with (
        RedisProxy.running(redis_url, record=False) as proxy,
        Redis.from_url(proxy.url) as through_proxy,
        workers(redis, keys, [("node-a", 0)]),
    ):
        reader = NodeRegistry(
            through_proxy, keys, address("node-r", 0), FakeLoad(), interval=0.2, ttl=2.0
        )
        before = proxy.received
        assert await live_ids(reader) == {"node-a-0", "node-z-2"}
        assert proxy.received - before < 16 * 1024
    assert not await redis.sismember(keys.workers, huge)  # pruned


async def test_a_workers_set_of_the_wrong_type_is_replaced_by_the_next_beat(
    redis: Redis, keys: ClusterKeys
) -> None:
    async with workers(redis, keys, [("node-a", 0)]) as (a0,):
        await redis.delete(keys.workers)
        await redis.set(keys.workers, "forged")
        assert await a0.registry.live() == []
        await wait_for(
            lambda: live_ids_are(a0.registry, {"node-a-0"}), DEADLINE, "the worker listed again"
        )
