"""Two nodes of two workers each, every one a real `triad serve --workers 2` on loopback (its
own ports and UDP range), one PostgreSQL and one Redis: ten consults spread over the four
workers, the placement is in the registry, and a socket sent to the wrong worker is refused
with the right URL, then joins there with the real python-socketio client."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from redis.asyncio import Redis

from server.cluster.entry import ClusterKeys, WorkerEntry
from server.ids import ConsultId, WorkerId
from tests.cluster.processes import nodes_running, session_worker
from tests.media.triadserver import TriadServer
from tests.roomclient import RoomClient
from tests.waiting import wait_for

CONSULTS = 10
DEADLINE = 30.0
UDP_BASE = 47100  # node a: 47100-47139, node b: 47140-47179, 20 ports a worker


@pytest.fixture
async def nodes(
    tmp_path: Path, cluster_database: str, redis_url: str, keys: ClusterKeys
) -> AsyncIterator[list[TriadServer]]:
    # Stopped when the test ends, not drained: its rooms would hold each worker (the default
    # drain waits up to 600 s) until the stop's deadline kills it.
    async with nodes_running(
        tmp_path,
        cluster_database,
        [redis_url, redis_url],
        keys,
        workers=2,
        udp_base=UDP_BASE,
        TRIAD_DRAIN_SECONDS="0",
    ) as started:
        yield started


async def registry(redis: Redis, keys: ClusterKeys) -> dict[str, WorkerEntry]:
    """The registry as Redis holds it (read here without the server's code paths)."""
    entries = {}
    for raw_id in await redis.smembers(keys.workers):
        raw = await redis.get(keys.worker(WorkerId(raw_id.decode())))
        if raw is not None:
            entry = WorkerEntry.decode(raw)
            entries[entry.worker_id] = entry
    return entries


# Four worker starts and six processes' stops on two shared cores.
@pytest.mark.timeout(120)
async def test_ten_consults_spread_over_two_nodes_of_two_workers(
    nodes: list[TriadServer], redis: Redis, keys: ClusterKeys
) -> None:
    urls = {url for node in nodes for url in node.worker_urls}
    await wait_for(
        lambda: _registry_urls_are(redis, keys, urls), DEADLINE, "all four workers registered"
    )
    consults = [await nodes[i % 2].new_consult() for i in range(CONSULTS)]
    # The join page's session call, on either node, names the consult's worker.
    placed = {}
    for i, consult in enumerate(consults):
        worker = await session_worker(nodes[i % 2], consult)
        assert worker == await session_worker(nodes[(i + 1) % 2], consult)
        assert worker["url"] in urls
        placed[consult.consult_id] = worker
    counts = Counter(w["id"] for w in placed.values())
    assert set(counts) == {"node-a-0", "node-a-1", "node-b-0", "node-b-1"}
    for consult_id, worker in placed.items():
        assert await redis.get(keys.placement(ConsultId(consult_id))) == worker["id"].encode()

    async with AsyncExitStack() as stack:
        # Each consult's therapist joins at the URL the session named.
        for consult in consults:
            seat = consult.seat("therapist")
            client = RoomClient(placed[consult.consult_id]["url"], seat.token, "therapist")
            stack.push_async_callback(client.close)
            await client.connect()
            await client.join()

        # The registry shows the rooms where they were placed.
        async def rooms_as_placed() -> bool:
            entries = await registry(redis, keys)
            return {w: e.rooms for w, e in entries.items() if e.rooms} == dict(counts)

        await wait_for(rooms_as_placed, DEADLINE, "every worker's heartbeat to show its rooms")

        # A socket sent to a worker that does not serve the consult: refused with the code and
        # the right URL; the real client then joins there.
        consult = consults[0]
        owner = placed[consult.consult_id]
        wrong_url = next(url for url in sorted(urls) if url != owner["url"])
        seat = consult.seat("psychiatrist")
        wrong = RoomClient(wrong_url, seat.token, "psychiatrist")
        stack.push_async_callback(wrong.close)
        await wrong.connect()
        refused = await wrong.call("join")
        assert refused["ok"] is False
        assert refused["error"]["code"] == "wrong_worker"
        assert refused["error"]["worker"] == owner
        assert wrong.violations == []
        right = RoomClient(refused["error"]["worker"]["url"], seat.token, "psychiatrist")
        stack.push_async_callback(right.close)
        await right.connect()
        state = await right.join()
        assert {p["role"] for p in state["participants"]} >= {"therapist", "psychiatrist"}


async def _registry_urls_are(redis: Redis, keys: ClusterKeys, urls: set[str]) -> bool:
    return {e.url for e in (await registry(redis, keys)).values()} == urls
