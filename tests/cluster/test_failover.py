"""kill -9 of the worker that serves a consult, in the middle of it, with three aiortc peers and
a notes writer; each participant finds the consult's worker again as the browser does (it
reads the session again) and rejoins with its token. Two deployments:

- two nodes of one worker each (nothing restarts the dead one): the consult moves to the other;
- one node of `triad serve --workers 2`: the supervisor starts the dead worker again under its
  id and port, and the consult comes back on a live worker (the restarted one, or the other
  when the dead one's entry lapsed first).

Either way, within a bounded time every peer decodes both remote videos again from the worker
the placement names, every acknowledged edit is in the document, the consult was never ended,
and ending it saves exactly one plan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis.asyncio import Redis

from server.cluster.entry import ClusterKeys
from server.ids import ConsultId
from tests.cluster.processes import (
    FAST,
    notes_writer,
    peers_joining,
    plans_of,
    sees_both,
    single_worker_nodes,
    two_worker_node,
)
from tests.cluster.test_serve_workers import healthy, worker_processes
from tests.media.triadserver import TriadServer
from tests.waiting import wait_for

DEADLINE = 60.0  # each phase, on two cores shared by two servers and three peers
FRAMES = 10
EDITS_AFTER = 5


@dataclass
class Deployment:
    """Where participants may read the session (any worker), and how to kill a worker."""

    servers: list[TriadServer]
    urls: list[str]
    restarts: bool

    def kill(self, url: str) -> None:
        for server in self.servers:
            if server.worker_urls == (url,):  # a node of one worker: the process itself
                server.process.kill()
                return
            port = int(url.rsplit(":", 1)[1])
            worker = worker_processes(server.process).get(port)
            if worker is not None:
                worker.kill()
                return
        raise AssertionError(f"no worker at {url}")


@asynccontextmanager
async def deployment(
    kind: str, tmp_path: Path, database_url: str, redis_url: str, keys: ClusterKeys
) -> AsyncIterator[Deployment]:
    if kind == "nodes":
        async with single_worker_nodes(
            tmp_path, database_url, [redis_url, redis_url], keys, udp_base=47400
        ) as nodes:
            yield Deployment(nodes, [n.base_url for n in nodes], restarts=False)
        return
    async with two_worker_node(
        tmp_path,
        database_url,
        redis_url,
        keys,
        TRIAD_ICE_UDP_PORT_MIN="47440",
        TRIAD_ICE_UDP_PORT_MAX="47479",
        **FAST,
    ) as server:
        yield Deployment([server], list(server.worker_urls), restarts=True)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("kind", ["nodes", "supervisor"])
async def test_a_consult_survives_the_kill_of_its_worker(
    kind: str,
    tmp_path: Path,
    cluster_database: str,
    redis_url: str,
    keys: ClusterKeys,
    redis: Redis,
) -> None:
    async with (
        deployment(kind, tmp_path, cluster_database, redis_url, keys) as cluster,
        AsyncExitStack() as stack,
    ):
        server = cluster.servers[-1]
        consult = await server.new_consult()
        people = peers_joining(stack, consult, cluster.urls)
        writer = notes_writer(stack, people[0])  # the therapist

        await wait_for(
            lambda: all(sees_both(p, people, FRAMES) for p in people), DEADLINE, "first frames"
        )
        first = people[0].worker_url
        assert first is not None
        assert all(p.worker_url == first for p in people)
        await wait_for(lambda: len(writer.acknowledged) >= 3, DEADLINE, "edits before the kill")
        joins = [len(p.joins) for p in people]

        cluster.kill(first)
        before = len(writer.acknowledged)

        async def back_where_placed() -> bool:
            placed = await redis.get(keys.placement(ConsultId(consult.consult_id)))
            urls = {p.worker_url for p in people}
            rejoined = all(len(p.joins) > n for p, n in zip(people, joins, strict=True))
            return rejoined and len(urls) == 1 and placed is not None and None not in urls

        await wait_for(back_where_placed, DEADLINE, "everyone rejoined on one live worker")
        now = people[0].worker_url
        assert now is not None
        if not cluster.restarts:
            assert now != first  # nothing restarted the dead one: the consult moved
        await wait_for(
            lambda: all(sees_both(p, people, FRAMES) for p in people),
            DEADLINE,
            "both remote videos decoded again at every peer",
        )
        await wait_for(
            lambda: len(writer.acknowledged) >= before + EDITS_AFTER,
            DEADLINE,
            "edits acknowledged after the failover",
        )
        # REST goes to a node that is up: the survivor, or the restarted node's first worker.
        server = next(s for s in cluster.servers if first not in s.worker_urls or cluster.restarts)
        await wait_for(lambda: healthy(server.base_url), DEADLINE, "the node answers")
        view = await server.get(f"/api/v1/consults/{consult.consult_id}")
        assert view["status"] == "live"  # not ended by the failure

        await writer.close()
        acknowledged = list(writer.acknowledged)
        await server.end_consult(consult.consult_id)
        await asyncio.gather(*(p.close() for p in people))
        plan = await server.get(f"/api/v1/consults/{consult.consult_id}/plan")
        missing = [mark for mark in acknowledged if mark not in str(plan)]
        assert missing == []
        assert await plans_of(cluster_database, consult.consult_id) == 1
        # Ending again saves nothing more.
        await server.end_consult(consult.consult_id)
        assert await plans_of(cluster_database, consult.consult_id) == 1
