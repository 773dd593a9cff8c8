"""SIGTERM drains a worker: two nodes of one worker each (real processes), a consult live on
the first with three aiortc peers and a notes writer. Told to stop, the worker says so in its
registry entry and is placed no new consult; its live consult keeps its media and notes on the
same sockets; once a host ends it the worker exits by itself, status 0. With a drain time
shorter than the consult, the consult moves on as on a failure (its sockets told
`worker_leaving`) and is not ended."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import NamedTuple

import aiohttp
import pytest
from redis.asyncio import Redis

from server.cluster.entry import ClusterKeys, WorkerEntry
from server.ids import WorkerId
from tests.cluster.processes import (
    FAST,
    notes_writer,
    peers_joining,
    placed_on,
    plans_of,
    sees_both,
    session_worker,
    single_worker_nodes,
    two_worker_node,
)
from tests.cluster.test_serve_workers import worker_processes
from tests.media.triadserver import ConsultSeats, TriadServer
from tests.roomclient import RoomClient
from tests.rooms.notesclient import NotesClient, insert
from tests.waiting import wait_for

DEADLINE = 60.0
FRAMES = 10
NEW_CONSULTS = 3


async def draining(redis: Redis, keys: ClusterKeys, worker_id: str) -> bool:
    raw = await redis.get(keys.worker(WorkerId(worker_id)))
    return raw is not None and WorkerEntry.decode(raw).draining


class Placed(NamedTuple):
    nodes: list[TriadServer]
    consult: ConsultSeats
    stopping: TriadServer  # the node the consult was placed on, which the test stops
    other: TriadServer


@asynccontextmanager
async def consult_on_two_nodes(
    tmp_path: Path,
    cluster_database: str,
    redis_url: str,
    keys: ClusterKeys,
    *,
    udp_base: int,
    drain_seconds: str,
) -> AsyncIterator[Placed]:
    """Two nodes of one worker each with this drain time, and a new consult placed on one."""
    async with single_worker_nodes(
        tmp_path,
        cluster_database,
        [redis_url, redis_url],
        keys,
        udp_base=udp_base,
        TRIAD_DRAIN_SECONDS=drain_seconds,
    ) as nodes:
        consult = await nodes[0].new_consult()
        stopping, other = await placed_on(nodes, consult)
        yield Placed(nodes, consult, stopping, other)


@pytest.mark.timeout(240)
async def test_a_stopping_worker_serves_its_consult_to_the_end_and_exits(
    tmp_path: Path, cluster_database: str, redis_url: str, keys: ClusterKeys, redis: Redis
) -> None:
    async with (
        consult_on_two_nodes(
            tmp_path, cluster_database, redis_url, keys, udp_base=47580, drain_seconds="600"
        ) as placed,
        AsyncExitStack() as stack,
    ):
        nodes, consult, stopping, other = placed
        people = peers_joining(stack, consult, [other.base_url])
        writer = notes_writer(stack, people[0])  # the therapist, a host
        await wait_for(
            lambda: all(sees_both(p, people, FRAMES) for p in people), DEADLINE, "first frames"
        )
        assert {p.worker_url for p in people} == {stopping.base_url}

        stopping_id = "node-a-0" if stopping is nodes[0] else "node-b-0"
        other_id = "node-b-0" if stopping is nodes[0] else "node-a-0"
        stopping.send_signal(signal.SIGTERM)
        await wait_for(
            lambda: draining(redis, keys, stopping_id), DEADLINE, "the entry says draining"
        )
        # New consults all go elsewhere, though the draining worker holds fewer.
        for _ in range(NEW_CONSULTS):
            fresh = await other.new_consult()
            assert (await session_worker(other, fresh))["id"] == other_id

        # The live consult goes on where it is, on the same sockets and peer connections (no
        # rejoin, so the counts grow on the peers that joined first).
        acknowledged = len(writer.acknowledged)
        await wait_for(
            lambda: all(sees_both(p, people, 3 * FRAMES) for p in people),
            DEADLINE,
            "media still flowing",
        )
        await wait_for(lambda: len(writer.acknowledged) >= acknowledged + 5, DEADLINE, "notes")
        assert all(len(p.joins) == 1 for p in people)
        assert all(p.closings == [] for p in people)

        await writer.close()
        marks = list(writer.acknowledged)
        therapist = await people[0].joined()
        ended = await therapist.call("end")
        assert ended["ok"], ended
        assert await stopping.exited(DEADLINE) == 0
        await asyncio.gather(*(p.close() for p in people))
        plan = await other.get(f"/api/v1/consults/{consult.consult_id}/plan")
        assert [mark for mark in marks if mark not in str(plan)] == []
        assert await plans_of(cluster_database, consult.consult_id) == 1


@pytest.mark.timeout(240)
async def test_past_its_drain_time_a_worker_hands_its_consult_on_and_exits(
    tmp_path: Path, cluster_database: str, redis_url: str, keys: ClusterKeys
) -> None:
    async with (
        consult_on_two_nodes(
            tmp_path, cluster_database, redis_url, keys, udp_base=47620, drain_seconds="2"
        ) as placed,
        AsyncExitStack() as stack,
    ):
        _, consult, stopping, other = placed
        people = peers_joining(stack, consult, [stopping.base_url, other.base_url])
        await wait_for(
            lambda: all(sees_both(p, people, FRAMES) for p in people), DEADLINE, "first frames"
        )
        assert {p.worker_url for p in people} == {stopping.base_url}

        stopping.send_signal(signal.SIGTERM)
        assert await stopping.exited(DEADLINE) == 0
        await wait_for(
            lambda: all(p.worker_url == other.base_url for p in people),
            DEADLINE,
            "everyone rejoined on the other worker",
        )
        assert all(p.closings == ["worker_leaving"] for p in people)
        await wait_for(
            lambda: all(sees_both(p, people, FRAMES) for p in people),
            DEADLINE,
            "both remote videos decoded again at every peer",
        )
        view = await other.get(f"/api/v1/consults/{consult.consult_id}")
        assert view["status"] == "live"
        await other.end_consult(consult.consult_id)
        assert await plans_of(cluster_database, consult.consult_id) == 1


@pytest.mark.timeout(180)
async def test_the_supervisor_drains_its_workers_and_exits_when_the_last_consult_ends(
    tmp_path: Path, cluster_database: str, redis_url: str, keys: ClusterKeys
) -> None:
    """SIGTERM to `triad serve --workers 2`: it is forwarded; the idle worker exits at once,
    the busy one serves its consult (notes still acknowledged) and places no new one, and
    everything exits, status 0, once a host ends the consult."""
    async with two_worker_node(
        tmp_path, cluster_database, redis_url, keys, TRIAD_DRAIN_SECONDS="600", **FAST
    ) as server:
        consult = await server.new_consult()
        fresh = await server.new_consult()  # placed only when its session is first read
        worker = await session_worker(server, consult)
        therapist = RoomClient(worker["url"], consult.seat("therapist").token, "therapist")
        await therapist.connect()
        await therapist.join()
        notes = NotesClient(therapist)
        assert (await notes.edit("plan", insert("summary", 0, "before. ")))["ok"]
        busy = int(worker["url"].rsplit(":", 1)[1])

        server.send_signal(signal.SIGTERM)
        await wait_for(
            lambda: set(worker_processes(server.process)) == {busy},
            DEADLINE,
            "the idle worker gone, the busy one serving",
        )
        assert (await notes.edit("plan", insert("summary", 0, "during. ")))["ok"]
        # Every worker of the node is stopping: the new consult is placed nowhere.
        token = fresh.seat("therapist").token
        async with (
            aiohttp.ClientSession() as http,
            http.get(
                f"{worker['url']}/api/v1/consults/{fresh.consult_id}/session",
                headers={"Authorization": f"Bearer {token}"},
            ) as answer,
        ):
            assert answer.status == 503
            assert (await answer.json(content_type=None))["code"] == "placement_unavailable"

        ended = await therapist.call("end")
        assert ended["ok"], ended
        assert await server.exited(DEADLINE) == 0
        await therapist.close()
        assert await plans_of(cluster_database, consult.consult_id) == 1
