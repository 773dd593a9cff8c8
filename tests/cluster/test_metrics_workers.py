"""`/metrics` of `triad serve --workers 2` (real processes): either worker answers with the
node's sums, and a worker killed leaves the gauges once the supervisor reaped it, while what it
counted stays counted."""

from __future__ import annotations

import secrets
from pathlib import Path

import aiohttp
import pytest

from server.cluster.entry import ClusterKeys
from tests.cluster.processes import two_worker_node
from tests.cluster.test_serve_workers import worker_processes
from tests.metricsread import Scrape, label_problems, parse
from tests.roomclient import RoomClient
from tests.waiting import wait_for

DEADLINE = 30.0
TOKEN = secrets.token_urlsafe(32)
HEALTH = {"method": "GET", "route": "/healthz", "status": "200"}


async def scrape(url: str) -> Scrape:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics", headers=headers) as r:
        assert r.status == 200, await r.text()
        return parse(await r.text())


async def hit(url: str, times: int) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(times):
            async with http.get(f"{url}/healthz") as answer:
                assert answer.status == 200


# Two worker starts, a restart and a stop on two busy cores.
@pytest.mark.timeout(120)
async def test_either_worker_serves_the_node_and_a_dead_worker_leaves_the_gauges(
    tmp_path: Path, cluster_database: str, redis_url: str, keys: ClusterKeys
) -> None:
    async with two_worker_node(
        tmp_path, cluster_database, redis_url, keys, TRIAD_METRICS_TOKEN=TOKEN
    ) as server:
        first, second = server.worker_urls
        before = await scrape(first)
        await hit(first, 2)
        await hit(second, 3)
        # Counters are written as they move: both workers read both workers' counts at once.
        for url in (first, second):
            now = await scrape(url)
            assert now.value("triad_http_requests_total", **HEALTH) == (
                before.value("triad_http_requests_total", **HEALTH) + 5
            )
            assert label_problems(now) == []

        # A room on one worker, seen from the other (gauges are written every 2 s).
        consult = await server.new_consult()
        seat = consult.seat("therapist")
        room = RoomClient(server.base_url, seat.token, "therapist")
        try:
            await room.connect()
            await room.join()
            holder = room.base_url
            other = second if holder == first else first

            async def live_rooms(expected: float) -> bool:
                return (await scrape(other)).value("triad_rooms", state="live") == expected

            await wait_for(lambda: live_rooms(1), DEADLINE, "the room in the node's gauge")
            victim = worker_processes(server.process)[int(holder.rsplit(":", 1)[1])]
            victim.kill()
        finally:
            await room.close()
        # The supervisor reaps it and drops its live gauges; its replacement holds no room.
        await wait_for(lambda: live_rooms(0), DEADLINE, "the dead worker's room leaving")
        after = await scrape(other)
        assert after.value("triad_http_requests_total", **HEALTH) >= (
            before.value("triad_http_requests_total", **HEALTH) + 5
        )
        assert consult.consult_id not in after.text
