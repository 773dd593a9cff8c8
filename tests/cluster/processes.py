"""Nodes as real `triad serve` processes on loopback, sharing one PostgreSQL database and one
Redis deployment, each with its own ports and UDP range: of several workers each, or of one
worker each (no supervisor: a worker killed stays dead); and the waits the failover tests
share."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from server import commands
from server.cluster.entry import ClusterKeys
from server.db.models import Plan
from tests.cluster.rejoining import NotesWriter, Rejoining
from tests.media.triadserver import ROLES, ConsultSeats, TriadServer
from tests.waiting import wait_for

# Fast heartbeats, so a dead worker's entry lapses within two seconds.
FAST = {"TRIAD_CLUSTER_HEARTBEAT_SECONDS": "0.5", "TRIAD_CLUSTER_HEARTBEAT_TTL_SECONDS": "2"}
# Small, slow video: three aiortc peers and two servers share two cores.
PEER_OPTIONS = {"size": (160, 120), "fps": 10}
DEADLINE = 30.0
UDP_PORTS = 20  # a worker's ICE range


@asynccontextmanager
async def nodes_running(
    directory: Path,
    database_url: str,
    redis_urls: list[str],
    keys: ClusterKeys,
    *,
    workers: int,
    udp_base: int,
    **settings: str,
) -> AsyncIterator[list[TriadServer]]:
    """One node per Redis URL (`node-a`, `node-b`, ...) of `workers` workers each, sharing the
    deployment's keys, every worker with `UDP_PORTS` ports of its own from `udp_base` up;
    `settings` are more `TRIAD_*` variables, the same for every node. Stopped together."""
    key = commands.keygen()  # the nodes of a deployment share their keys
    started: list[TriadServer] = []
    for n, redis_url in enumerate(redis_urls):
        name = f"node-{chr(ord('a') + n)}"
        low = udp_base + UDP_PORTS * workers * n
        (directory / name).mkdir()
        taken = {url for server in started for url in server.worker_urls}
        while True:  # nothing listens yet: a later node must not be handed an earlier's ports
            server = TriadServer(
                directory / name,
                workers=workers,
                TRIAD_DATABASE_URL=database_url,
                TRIAD_REDIS_URL=redis_url,
                TRIAD_NODE_ID=name,
                TRIAD_ENCRYPTION_KEYS=key,
                TRIAD_CLUSTER_NAME=keys.deployment,
                TRIAD_ICE_UDP_PORT_MIN=str(low),
                TRIAD_ICE_UDP_PORT_MAX=str(low + UDP_PORTS * workers - 1),
                **settings,
            )
            if not taken & set(server.worker_urls):
                break
        started.append(server)
    try:
        for server in started:
            await server.prepare()
        await asyncio.gather(*(server.launch() for server in started))
        yield started
    finally:
        # Every node stopped (or killed) before the first that would not stop is reported.
        stopped = await asyncio.gather(*(s.stop() for s in started), return_exceptions=True)
        for failure in stopped:
            if isinstance(failure, BaseException):
                raise failure


@asynccontextmanager
async def single_worker_nodes(
    directory: Path,
    database_url: str,
    redis_urls: list[str],
    keys: ClusterKeys,
    udp_base: int,
    **settings: str,
) -> AsyncIterator[list[TriadServer]]:
    """One node per Redis URL, each a single worker process with fast heartbeats."""
    async with nodes_running(
        directory,
        database_url,
        redis_urls,
        keys,
        workers=1,
        udp_base=udp_base,
        TRIAD_LOG_LEVEL="info",
        **{**FAST, **settings},
    ) as started:
        # Each lists the others (its page's CSP and its Socket.IO CORS follow the registry):
        # a page served before that could not open a socket to another node's worker.
        await wait_for(lambda: lists_all(started), DEADLINE, "every node listing the others")
        yield started


def two_worker_node(
    directory: Path, database_url: str, redis_url: str, keys: ClusterKeys, **settings: str
) -> AbstractAsyncContextManager[TriadServer]:
    """`triad serve --workers 2` (a supervisor and its workers) as node-a on PostgreSQL and
    Redis, logging at info; `settings` are more `TRIAD_*` variables."""
    return TriadServer.running(
        directory,
        workers=2,
        TRIAD_DATABASE_URL=database_url,
        TRIAD_REDIS_URL=redis_url,
        TRIAD_NODE_ID="node-a",
        TRIAD_CLUSTER_NAME=keys.deployment,
        TRIAD_LOG_LEVEL="info",
        **settings,
    )


async def lists_all(nodes: list[TriadServer]) -> bool:
    async with aiohttp.ClientSession() as http:
        for node in nodes:
            async with http.get(f"{node.base_url}/c/c_anything") as page:
                csp = page.headers.get("Content-Security-Policy", "")
            if any(other.base_url not in csp for other in nodes):
                return False
    return True


async def plans_of(database_url: str, consult_id: str) -> int:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            query = select(func.count()).select_from(Plan).where(Plan.consult_id == consult_id)
            return int((await connection.execute(query)).scalar_one())
    finally:
        await engine.dispose()


async def session_worker(
    server: TriadServer,
    consult: ConsultSeats,
    *,
    via: str | None = None,
    http: aiohttp.ClientSession | None = None,
) -> dict[str, str]:
    """The worker the consult's session names (read at `server`, or at `via` with `http`: a
    proxy in front of it, with the therapist's token), placing the consult if nobody had read
    it yet."""
    seat = consult.seat("therapist")
    async with AsyncExitStack() as stack:
        if http is None:
            http = await stack.enter_async_context(aiohttp.ClientSession())
        answer = await stack.enter_async_context(
            http.get(
                f"{via or server.base_url}/api/v1/consults/{consult.consult_id}/session",
                headers={"Authorization": f"Bearer {seat.token}"},
            )
        )
        assert answer.status == 200, await answer.text()
        body: dict[str, Any] = json.loads(await answer.text())
    worker: dict[str, str] = body["worker"]
    return worker


async def placed_on(
    nodes: list[TriadServer], consult: ConsultSeats
) -> tuple[TriadServer, TriadServer]:
    """Places the consult (the session call, on the second node) and returns the node it was
    placed on, then the other (the load, CPU included, decides between idle workers)."""
    worker = await session_worker(nodes[-1], consult)
    owner = next(node for node in nodes if node.base_url == worker["url"])
    return owner, next(node for node in nodes if node is not owner)


def peers_joining(
    stack: AsyncExitStack, consult: ConsultSeats, bases: list[str]
) -> list[Rejoining]:
    """A started `Rejoining` aiortc peer per role (small, slow video: `PEER_OPTIONS`), each
    reading the consult's session at `bases`; closed by `stack`."""
    people = [
        Rejoining(consult.seat(role), consult.consult_id, bases, **PEER_OPTIONS) for role in ROLES
    ]
    for person in people:
        stack.push_async_callback(person.close)
        person.start()
    return people


def notes_writer(stack: AsyncExitStack, person: Rejoining) -> NotesWriter:
    """A started `NotesWriter` editing as `person` (a host); closed by `stack`."""
    writer = NotesWriter(person)
    stack.push_async_callback(writer.close)
    writer.start()
    return writer


def sees_both(p: Rejoining, people: list[Rejoining], frames: int) -> bool:
    """`p`'s current peer decoded `frames` video frames from each of the others."""
    return all(
        p.peer.decoded(o.seat.participant_id, "video") >= frames for o in people if o is not p
    )


def peers_state(people: list[Rejoining], nodes: list[TriadServer], frames: int) -> str:
    """Each peer's joins (by node), the codes its sockets were closed with, the video frames
    its current peer decoded from each other peer (of `frames`), its failures; then each
    node's fence and placement log lines with their times: what a failed wait was missing."""
    name = {node.base_url: node.log_path.parent.name for node in nodes}
    lines = []
    for p in people:
        decoded = {o.seat.role: p.peer.decoded(o.seat.participant_id, "video") for o in people}
        del decoded[p.seat.role]
        lines.append(
            f"{p.seat.role}: joins {[name.get(url, url) for url in p.joins]}, "
            f"joined now: {p.worker_url is not None}, closed with {p.closings}, "
            f"decoded {decoded} of {frames}, failures {p.failures}"
        )
    for node in nodes:
        lines.extend(f"{name[node.base_url]}: {event}" for event in cluster_events(node))
    return "\n".join(lines)


CLUSTER_EVENTS = ("cluster.fenced", "cluster.unfenced", "cluster.placed", "cluster.rooms_left")


def cluster_events(node: TriadServer) -> list[str]:
    """The node's fence and placement events, each with its time."""
    if not node.log_path.exists():
        return []
    found = []
    for line in node.log_path.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if record.get("event") in CLUSTER_EVENTS or record.get("event", "").startswith(
            "cluster.heartbeat"
        ):
            found.append(f"{record.get('timestamp', '?')} {record['event']}")
    return found
