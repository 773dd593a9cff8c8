"""The worker that serves a consult cut from Redis (each node reaches Redis through a proxy on
loopback; the test cuts the owner's) in the middle of a consult with three aiortc peers and a
notes writer: before its entry can lapse it closes its rooms without ending them and tells
every socket `worker_leaving`; the participants read the session again and rejoin on the other
worker once the entry lapsed; when Redis is back the fenced worker serves again but no longer
this consult (a join there is sent on); every acknowledged edit is kept and ending the consult
saves one plan."""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from server.cluster.entry import ClusterKeys
from tests.cluster.processes import (
    notes_writer,
    peers_joining,
    peers_state,
    placed_on,
    plans_of,
    sees_both,
    single_worker_nodes,
)
from tests.media.triadserver import TriadServer
from tests.redisproxy import RedisProxy
from tests.roomclient import RoomClient
from tests.waiting import wait_for

DEADLINE = 60.0
FRAMES = 10


def logged(server: TriadServer, event: str) -> bool:
    return any(
        json.loads(line).get("event") == event
        for line in server.log_path.read_text().splitlines()
        if line.startswith("{")
    )


@pytest.mark.timeout(240)
async def test_a_worker_cut_from_redis_gives_up_its_consult_to_another(
    tmp_path: Path, cluster_database: str, redis_url: str, keys: ClusterKeys
) -> None:
    async with (
        RedisProxy.running(redis_url) as proxy_a,
        RedisProxy.running(redis_url) as proxy_b,
        single_worker_nodes(
            tmp_path, cluster_database, [proxy_a.url, proxy_b.url], keys, udp_base=47540
        ) as nodes,
        AsyncExitStack() as stack,
    ):
        consult = await nodes[0].new_consult()
        fenced, other = await placed_on(nodes, consult)
        proxy = proxy_a if fenced is nodes[0] else proxy_b
        bases = [fenced.base_url, other.base_url]
        people = peers_joining(stack, consult, bases)
        writer = notes_writer(stack, people[0])
        cut_at: list[float] = []

        def state() -> str:
            since = f"{time.monotonic() - cut_at[0]:.1f} s after the cut" if cut_at else "uncut"
            return f"{since}; fenced: {fenced.log_path.parent.name}\n" + peers_state(
                people, nodes, FRAMES
            )

        await wait_for(
            lambda: all(sees_both(p, people, FRAMES) for p in people),
            DEADLINE,
            "first frames",
            state,
        )
        assert {p.worker_url for p in people} == {fenced.base_url}, state()
        await wait_for(
            lambda: len(writer.acknowledged) >= 3, DEADLINE, "edits before the cut", state
        )

        proxy.cut()
        cut_at.append(time.monotonic())
        await wait_for(
            lambda: all(p.worker_url == other.base_url for p in people),
            DEADLINE,
            "everyone rejoined on the other worker",
            state,
        )
        # Closed once, by the fence the cut caused: a second `worker_leaving` is a fence
        # without a cut (a beat Redis answered late), on either worker.
        assert all(p.closings == ["worker_leaving"] for p in people), state()
        assert logged(fenced, "cluster.fenced"), state()
        before = len(writer.acknowledged)
        await wait_for(
            lambda: all(sees_both(p, people, FRAMES) for p in people),
            DEADLINE,
            "both remote videos decoded again at every peer",
            state,
        )
        await wait_for(
            lambda: len(writer.acknowledged) >= before + 3, DEADLINE, "edits after", state
        )

        proxy.restore()
        await wait_for(lambda: logged(fenced, "cluster.unfenced"), DEADLINE, "the fence lifted")
        knocking = RoomClient(fenced.base_url, consult.seat("client").token, "client")
        stack.push_async_callback(knocking.close)
        await knocking.connect()
        refused = await knocking.call("join")
        assert refused["ok"] is False
        assert refused["error"]["code"] == "wrong_worker"
        assert refused["error"]["worker"]["url"] == other.base_url
        await knocking.sio.disconnect()

        await writer.close()
        acknowledged = list(writer.acknowledged)
        view = await other.get(f"/api/v1/consults/{consult.consult_id}")
        assert view["status"] == "live"
        await other.end_consult(consult.consult_id)
        await asyncio.gather(*(p.close() for p in people))
        plan = await other.get(f"/api/v1/consults/{consult.consult_id}/plan")
        assert [mark for mark in acknowledged if mark not in str(plan)] == []
        assert await plans_of(cluster_database, consult.consult_id) == 1
