"""This worker's membership of its deployment: its heartbeat and its placement of consults,
opened and closed with the app (`create_app`'s cleanup context), `None` for one process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from redis.asyncio import Redis

from .. import logs
from ..ids import WorkerId
from ..settings import Settings
from .entry import ClusterKeys, WorkerLoad
from .placement import Placement
from .registry import NodeRegistry, WorkerAddress

log = logs.get(__name__)


# How often a draining worker looks whether its last room has gone.
DRAIN_POLL_SECONDS = 0.25


@dataclass(frozen=True)
class Membership:
    registry: NodeRegistry
    placement: Placement

    async def drain(self, rooms: Callable[[], int], seconds: float, stop: asyncio.Event) -> bool:
        """A planned stop: take no new consult (the entry says `draining`), keep serving those
        here until their rooms are gone, for at most `seconds` or until `stop` is set (a second
        signal); then whatever is left leaves as on a fence (its sockets find the consult's
        next worker, the consults do not end). True when every room ended by itself."""
        await self.registry.drain()
        log.info("cluster.draining", rooms=rooms(), seconds=seconds)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while rooms() and loop.time() < deadline and not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DRAIN_POLL_SECONDS):
                    await stop.wait()
        left = rooms()
        if left:
            log.warning("cluster.drain_cut_short", rooms=left)
            await self.registry.leave()
        else:
            log.info("cluster.drained")
        return not left


def placement_ttl(settings: Settings) -> float:
    """How long a placement outlives its last use: longer than any room can live (a join at
    the owner, or a session read anywhere, renews it)."""
    return max(2 * (settings.consult_max_seconds + settings.consult_overrun_seconds), 3600.0)


@asynccontextmanager
async def membership(
    settings: Settings, redis: Redis | None, load: Callable[[], WorkerLoad]
) -> AsyncIterator[Membership | None]:
    if not settings.clustered or redis is None:
        yield None
        return
    keys = ClusterKeys(settings.cluster_name)
    me = WorkerAddress(
        worker_id=WorkerId(settings.worker_id),
        node_id=settings.node,
        url=settings.worker_url,
        base_url=settings.base_url,
    )
    registry = NodeRegistry(
        redis,
        keys,
        me,
        load,
        interval=settings.cluster_heartbeat_seconds,
        ttl=settings.cluster_heartbeat_ttl_seconds,
    )
    placement = Placement(
        redis,
        keys,
        registry,
        ttl_seconds=placement_ttl(settings),
        prefer_node=settings.placement_prefer_node,
    )
    await registry.start()
    try:
        yield Membership(registry, placement)
    finally:
        await registry.close()
