"""Placement on real Redis: a consult is placed once, on the least loaded live worker (a
preferred node first), stays there while that worker's heartbeat holds, and moves only when
it lapsed. Forged placements and entries are replaced, never followed."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from server.cluster.entry import ClusterKeys
from server.cluster.placement import Placement, WrongWorker
from server.errors import ErrorCode, TriadError
from server.ids import ConsultId
from tests.cluster.helpers import workers
from tests.cluster.test_registry import genuine
from tests.ports import free_port

NODES = [("node-a", 0), ("node-a", 1), ("node-b", 0), ("node-b", 1)]


def consult(n: int) -> ConsultId:
    return ConsultId(f"c_test{n:04d}")


async def test_racing_placements_of_one_consult_agree(redis: Redis, keys: ClusterKeys) -> None:
    async with workers(redis, keys, NODES) as started:
        owners = await asyncio.gather(*(w.placement.owner(consult(1)) for w in started * 3))
        assert len({o.worker_id for o in owners}) == 1
        assert await redis.get(keys.placement(consult(1))) == owners[0].worker_id.encode()


async def test_consults_spread_over_the_least_loaded_workers_and_stay(
    redis: Redis, keys: ClusterKeys
) -> None:
    async with workers(redis, keys, NODES) as started:
        placed = {n: (await started[n % 2].placement.owner(consult(n))).worker_id for n in range(8)}
        assert Counter(placed.values()) == {w.id: 2 for w in started}
        # Asked again, anywhere: the same worker, whatever the load says now.
        started[0].load.rooms = 50
        for n, owner in placed.items():
            assert (await started[3].placement.owner(consult(n))).worker_id == owner


async def test_the_heartbeats_load_steers_new_placements(redis: Redis, keys: ClusterKeys) -> None:
    async with workers(redis, keys, NODES[:2], interval=0.1, ttl=1.0) as (a0, a1):
        a0.load.rooms = 5
        await a0.registry.start()  # a beat now (start is idempotent for the loop)
        assert (await a0.placement.owner(consult(1))).worker_id == a1.id


async def test_a_preferred_node_takes_consults_while_it_is_live(
    redis: Redis, keys: ClusterKeys
) -> None:
    async with workers(redis, keys, NODES, prefer_node="node-b") as started:
        owners = {(await started[0].placement.owner(consult(n))).node_id for n in range(4)}
        assert owners == {"node-b"}
        for worker in started[2:]:
            await worker.registry.close()
        assert (await started[0].placement.owner(consult(9))).node_id == "node-a"


async def test_a_consult_moves_only_when_its_workers_heartbeat_is_gone(
    redis: Redis, keys: ClusterKeys
) -> None:
    async with workers(redis, keys, NODES[:2]) as (a0, a1):
        first = await a0.placement.owner(consult(1))
        owner, other = (a0, a1) if first.worker_id == a0.id else (a1, a0)
        await owner.registry.close()
        assert (await other.placement.owner(consult(1))).worker_id == other.id
        await owner.registry.start()  # back: the consult stays where it moved
        assert (await owner.placement.owner(consult(1))).worker_id == other.id


async def test_a_draining_worker_keeps_its_consults_and_is_placed_no_new_one(
    redis: Redis, keys: ClusterKeys
) -> None:
    async with workers(redis, keys, NODES[:2]) as (a0, a1):
        kept = await a0.placement.owner(consult(1))
        stopping, other = (a0, a1) if kept.worker_id == a0.id else (a1, a0)
        other.load.rooms = 50  # placement would choose the stopping worker, were it serving
        await other.registry.start()
        await stopping.registry.drain()
        for n in range(2, 6):
            assert (await stopping.placement.owner(consult(n))).worker_id == other.id
        await stopping.placement.require_here(consult(1))  # its own consult stays
        assert (await other.placement.owner(consult(1))).draining


async def test_a_join_here_passes_and_elsewhere_names_the_owner(
    redis: Redis, keys: ClusterKeys
) -> None:
    async with workers(redis, keys, NODES[:2]) as (a0, a1):
        owner = await a0.placement.owner(consult(1))
        here, there = (a0, a1) if owner.worker_id == a0.id else (a1, a0)
        await here.placement.require_here(consult(1))
        with pytest.raises(WrongWorker) as refused:
            await there.placement.require_here(consult(1))
        assert refused.value.code is ErrorCode.WRONG_WORKER
        assert refused.value.owner == owner
        assert refused.value.owner.url == here.registry.me.url


@pytest.mark.parametrize(
    "forged",
    [
        b"node-gone-0",  # names an unknown worker
        b"x" * (4 * 1024 * 1024),  # oversized
        b"\xff\xfe\x00",  # not text
        b"",
    ],
    ids=["unknown-worker", "oversized", "binary", "empty"],
)
async def test_a_forged_placement_is_replaced_by_a_live_worker(
    redis: Redis, keys: ClusterKeys, forged: bytes
) -> None:
    async with workers(redis, keys, NODES[:2]) as started:
        await redis.set(keys.placement(consult(1)), forged)
        owner = await started[0].placement.owner(consult(1))
        assert owner.worker_id in {w.id for w in started}
        assert await redis.get(keys.placement(consult(1))) == owner.worker_id.encode()


async def test_a_placement_key_of_the_wrong_type_is_replaced(
    redis: Redis, keys: ClusterKeys
) -> None:
    async with workers(redis, keys, NODES[:1]) as (a0,):
        await redis.rpush(keys.placement(consult(1)), "node-a-0")
        assert (await a0.placement.owner(consult(1))).worker_id == a0.id


async def test_a_placement_on_a_forged_entry_is_not_followed(
    redis: Redis, keys: ClusterKeys
) -> None:
    """A worker id with an entry that is not one of ours (here: naming another worker) is
    treated as gone: sockets are never sent to a URL the registry did not vouch for."""
    async with workers(redis, keys, NODES[:1]) as (a0,):
        forged = genuine("node-z", 0, url="http://evil.example.test").encode()
        await redis.set(keys.worker("node-z-1"), forged, px=60_000)
        await redis.set(keys.placement(consult(1)), "node-z-1")
        owner = await a0.placement.owner(consult(1))
        assert owner.worker_id == a0.id


async def test_with_no_live_worker_placement_is_refused_coded(
    redis: Redis, keys: ClusterKeys
) -> None:
    async with workers(redis, keys, NODES[:1]) as (a0,):
        await a0.registry.close()
        with pytest.raises(TriadError) as refused:
            await a0.placement.owner(consult(1))
        assert refused.value.code is ErrorCode.PLACEMENT_UNAVAILABLE
        assert not await redis.exists(keys.placement(consult(1)))


async def test_redis_out_of_reach_refuses_coded(redis: Redis, keys: ClusterKeys) -> None:
    async with (
        workers(redis, keys, NODES[:1]) as (a0,),
        Redis(host="127.0.0.1", port=free_port(), retry=Retry(NoBackoff(), 0)) as unreachable,
    ):
        cut = Placement(unreachable, keys, a0.registry, ttl_seconds=60)
        with pytest.raises(TriadError) as refused:
            await cut.owner(consult(1))
        assert refused.value.code is ErrorCode.PLACEMENT_UNAVAILABLE
