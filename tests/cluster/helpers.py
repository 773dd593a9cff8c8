"""Registries of workers that are not servers: each its own NodeRegistry on real Redis, with a
load the test sets, for the registry's and placement's own tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

from redis.asyncio import Redis

from server.cluster.entry import ClusterKeys, WorkerLoad
from server.cluster.placement import Placement
from server.cluster.registry import NodeRegistry, WorkerAddress
from server.ids import WorkerId


@dataclass
class FakeLoad:
    rooms: int = 0
    participants: int = 0

    def __call__(self) -> WorkerLoad:
        return WorkerLoad(self.rooms, self.participants)


@dataclass
class Worker:
    registry: NodeRegistry
    placement: Placement
    load: FakeLoad = field(default_factory=FakeLoad)

    @property
    def id(self) -> WorkerId:
        return self.registry.me.worker_id


def address(node: str, index: int) -> WorkerAddress:
    port = 9000 + index
    return WorkerAddress(
        worker_id=WorkerId(f"{node}-{index}"),
        node_id=node,
        url=f"http://127.0.0.1:{port}",
        base_url=f"http://{node}.example.test",
    )


@asynccontextmanager
async def workers(
    redis: Redis,
    keys: ClusterKeys,
    names: list[tuple[str, int]],
    *,
    interval: float = 0.2,
    ttl: float = 10.0,
    prefer_node: str | None = None,
) -> AsyncIterator[list[Worker]]:
    """Started registries (each heartbeating), closed on the way out. Recent placements are
    remembered for a minute, so a test's spread does not depend on how fast it ran."""
    async with AsyncExitStack() as stack:
        started = []
        for node, index in names:
            load = FakeLoad()
            registry = NodeRegistry(
                redis,
                keys,
                address(node, index),
                load,
                interval=interval,
                ttl=ttl,
                recent_placement=60.0,
            )
            await registry.start()
            stack.push_async_callback(registry.close)
            placement = Placement(redis, keys, registry, ttl_seconds=3600, prefer_node=prefer_node)
            started.append(Worker(registry, placement, load))
        yield started
