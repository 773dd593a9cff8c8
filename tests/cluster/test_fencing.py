"""Fencing on real Redis, reached through a proxy the test cuts: a worker that cannot renew its
entry stops serving (its leave handlers run) while its entry is still live, so no other worker
can have been placed its consults yet; it takes no join while fenced; every call to the cut
Redis returns within its bound; and when Redis is back the worker serves again, its moved
consults staying where they moved."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from server.cluster.entry import ClusterKeys
from server.cluster.placement import Placement, WrongWorker
from server.cluster.registry import NodeRegistry
from server.errors import ErrorCode, TriadError
from server.ids import ConsultId
from tests.cluster.helpers import FakeLoad, address, workers
from tests.redisproxy import RedisProxy
from tests.waiting import wait_for, within

DEADLINE = 10.0
CONSULT = ConsultId("c_fence0001")


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[RedisProxy]:
    async with RedisProxy.running(redis_url) as running:
        yield running


@pytest.fixture
async def behind(proxy: RedisProxy) -> AsyncIterator[Redis]:
    """A Redis client through the proxy, with redis-py's default retries."""
    client = Redis.from_url(proxy.url)
    try:
        yield client
    finally:
        await client.aclose()


async def test_a_worker_cut_from_redis_fences_itself_before_its_entry_lapses(
    redis: Redis, keys: ClusterKeys, proxy: RedisProxy, behind: Redis
) -> None:
    me = address("node-a", 0)
    cut_off = NodeRegistry(behind, keys, me, FakeLoad(), interval=0.2, ttl=1.0)
    placement = Placement(behind, keys, cut_off, ttl_seconds=3600)
    entry_live_at_fence: list[bool] = []

    async def left() -> None:
        entry_live_at_fence.append(bool(await redis.exists(keys.worker(me.worker_id))))

    cut_off.on_leave(left)
    await cut_off.start()
    # It hung once in CI after `cluster.wrong_worker` (the last step), its beats still going:
    # if it does again, the tasks' stacks say where.
    try:
        async with (
            within(50, "fencing, restoring and closing"),
            workers(redis, keys, [("node-b", 0)], interval=0.2, ttl=1.0) as (other,),
        ):
            assert (await placement.owner(CONSULT)).worker_id == me.worker_id  # the lower id
            await placement.require_here(CONSULT)

            proxy.cut()
            await wait_for(lambda: cut_off.fenced, DEADLINE, "the fence")
            await wait_for(lambda: bool(entry_live_at_fence), DEADLINE, "the leave handler")
            assert entry_live_at_fence == [True]  # fenced while nobody else could take over
            with pytest.raises(TriadError) as refused:
                await placement.require_here(CONSULT)
            assert refused.value.code is ErrorCode.PLACEMENT_UNAVAILABLE

            # Its entry lapses; the next join anywhere places the consult on a live worker.
            await wait_for(lambda: _gone(redis, keys, me.worker_id), DEADLINE, "the entry to lapse")
            assert (await other.placement.owner(CONSULT)).worker_id == other.id

            proxy.restore()
            await wait_for(lambda: not cut_off.fenced, DEADLINE, "the fence lifted")
            with pytest.raises(WrongWorker) as moved:
                await placement.require_here(CONSULT)
            assert moved.value.owner is not None
            assert moved.value.owner.worker_id == other.id
            assert entry_live_at_fence == [True]  # left once, for one outage
    finally:
        await cut_off.close()


async def test_a_beat_answered_late_but_before_the_fence_keeps_the_worker_serving(
    keys: ClusterKeys, proxy: RedisProxy, behind: Redis
) -> None:
    """Redis answering one renewal late (a loaded machine) is not Redis lost: beats every
    quarter of the TTL, as the tests' 0.5 s / 2 s (here 2 s / 8 s, for room on a busy
    machine), and one renewal held past the call timeout but answered before the fence. Cut
    at the call timeout, that beat was followed an interval later, at the fence itself."""
    registry = NodeRegistry(behind, keys, address("node-a", 0), FakeLoad(), interval=2, ttl=8)
    left: list[bool] = []

    async def leave() -> None:
        left.append(True)

    registry.on_leave(leave)
    renewal = b"\r\nSET\r\n"
    await registry.start()
    try:
        await wait_for(lambda: proxy.count(renewal) >= 1, DEADLINE, "the first beat")
        before = proxy.count(renewal)
        # Past the call timeout (2 s); with the beat's start 2 s after the last, before the
        # fence (6 s after the last).
        proxy.delay_next(renewal, 3.0)
        await wait_for(
            lambda: proxy.count(renewal) >= before + 2, DEADLINE, "the late beat and the next"
        )
        assert (left, registry.fenced) == ([], False)
    finally:
        await registry.close()


async def _gone(redis: Redis, keys: ClusterKeys, worker_id: str) -> bool:
    return not await redis.exists(keys.worker(worker_id))


async def test_calls_to_a_cut_redis_return_within_their_bound(
    redis: Redis, keys: ClusterKeys, proxy: RedisProxy, behind: Redis
) -> None:
    registry = NodeRegistry(behind, keys, address("node-a", 0), FakeLoad(), interval=0.5, ttl=2)
    placement = Placement(behind, keys, registry, ttl_seconds=3600)
    proxy.cut()
    await registry.start()  # its first beat fails and is logged; it does not hang
    try:
        assert registry.call_timeout == 0.5
        with pytest.raises(TimeoutError):
            await registry.live()
        with pytest.raises(TriadError) as refused:
            await placement.owner(CONSULT)
        assert refused.value.code is ErrorCode.PLACEMENT_UNAVAILABLE
        assert not await redis.exists(keys.placement(CONSULT))
    finally:
        await registry.close()  # its leave, too, gives up within the bound
