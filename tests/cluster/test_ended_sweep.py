"""A platform's end whose word to the owning worker was lost (pub/sub is at-most-once): the
owner's sweep finds the ended row and closes the room, telling everyone `ended` with the one
saved plan. Two workers in this process (real sockets, PostgreSQL, Redis); the row is ended
the way the REST worker ends it, with no message sent, and the sweep is run at once rather
than waited for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from server.api.context import SERVICES
from server.app import SETTINGS, keyring_for, utc_now
from server.cluster.entry import ClusterKeys
from server.consults.lifecycle import ConsultLifecycle
from server.consults.model import Actor
from server.ids import ConsultId
from tests.cluster.inprocess import node_workers
from tests.conftest import consult_body, new_platform, participant
from tests.roomclient import RoomClient


async def test_a_lost_end_is_caught_by_the_owners_sweep(
    aiohttp_client: Any, tmp_path: Path, cluster_database: str, redis_url: str, keys: ClusterKeys
) -> None:
    node = await node_workers(aiohttp_client, tmp_path, cluster_database, redis_url, keys)
    platform = await new_platform(node[0].client.app[SERVICES], "Acme Health")
    made = await node[0].api.call(
        "POST", "/api/v1/consults", bearer=platform.secret, json_body=consult_body()
    )
    assert made.status == 201, made.body
    cid = ConsultId(made.body["id"])
    token = participant(made.body, "therapist")["join"]["token"]
    session = await node[0].api.call("GET", f"/api/v1/consults/{cid}/session", bearer=token)
    owner = next(w for w in node if w.id == session.body["worker"]["id"])
    other = next(w for w in node if w is not owner)
    therapist = RoomClient(owner.url, token, "therapist")
    try:
        await therapist.connect()
        await therapist.join()
        rooms = owner.client.app[SERVICES].rooms
        await rooms.sweep_ended()  # nothing ended: nothing closes
        assert rooms.get(cid) is not None

        app = other.client.app
        ended_here = ConsultLifecycle(app[SERVICES].db, keyring_for(app[SETTINGS]), utc_now)
        assert await ended_here.end(cid, Actor("platform", "k_lost")) is True
        await rooms.sweep_ended()
        ended = await therapist.wait_event("ended")
        assert ended["ended_by"] == "platform:k_lost"
        plan = await other.api.call("GET", f"/api/v1/consults/{cid}/plan", bearer=platform.secret)
        assert plan.status == 200, plan.body
        assert ended["plan_id"] == plan.body["id"]
        await therapist.wait_disconnected()
        assert rooms.get(cid) is None
        assert len(therapist.received("ended")) == 1
    finally:
        await therapist.close()
