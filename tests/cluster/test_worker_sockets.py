"""A node of two workers in this process (two apps on consecutive loopback ports, one
PostgreSQL, one Redis): the session call names the consult's worker, a `join` on the other is
refused `wrong_worker` with the right URL and changes nothing, and the real python-socketio
client then joins there."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from server.api.context import SERVICES
from server.cluster.entry import ClusterKeys
from server.ids import ConsultId
from tests.apiclient import Api
from tests.cluster.inprocess import NodeWorker, node_workers
from tests.conftest import PlatformKey, consult_body, new_platform, participant
from tests.databases import snapshot
from tests.roomclient import RoomClient
from tests.rooms.notesclient import NotesClient, insert


@pytest.fixture
async def node(
    aiohttp_client: Any, tmp_path: Path, cluster_database: str, redis_url: str, keys: ClusterKeys
) -> list[NodeWorker]:
    return await node_workers(aiohttp_client, tmp_path, cluster_database, redis_url, keys)


@pytest.fixture
async def platform_key(node: list[NodeWorker]) -> PlatformKey:
    return await new_platform(node[0].client.app[SERVICES], "Acme Health")


@pytest.fixture
async def consult(node: list[NodeWorker], platform_key: PlatformKey) -> dict[str, Any]:
    answer = await node[0].api.call(
        "POST", "/api/v1/consults", bearer=platform_key.secret, json_body=consult_body()
    )
    assert answer.status == 201, answer.body
    body: dict[str, Any] = answer.body
    return body


@pytest.fixture
async def sockets() -> AsyncIterator[list[RoomClient]]:
    opened: list[RoomClient] = []
    yield opened
    for room_client in opened:
        await room_client.close()


async def session_worker(worker: NodeWorker, consult: dict[str, Any], role: str) -> Any:
    token = participant(consult, role)["join"]["token"]
    answer = await worker.api.call("GET", f"/api/v1/consults/{consult['id']}/session", bearer=token)
    assert answer.status == 200, answer.body
    return answer.body["worker"]


async def test_the_session_call_names_the_consults_worker_on_every_worker(
    node: list[NodeWorker], consult: dict[str, Any], redis: Redis, keys: ClusterKeys
) -> None:
    named = [await session_worker(w, consult, "client") for w in node]
    assert named[0] == named[1]
    owner = next(w for w in node if w.id == named[0]["id"])
    assert named[0]["url"] == owner.url
    placed = await redis.get(keys.placement(ConsultId(consult["id"])))
    assert placed == owner.id.encode()


async def test_a_join_on_the_wrong_worker_is_redirected_and_changes_nothing(
    node: list[NodeWorker], consult: dict[str, Any], sockets: list[RoomClient]
) -> None:
    named = await session_worker(node[0], consult, "therapist")
    owner = next(w for w in node if w.id == named["id"])
    other = next(w for w in node if w is not owner)
    token = participant(consult, "therapist")["join"]["token"]
    services = other.client.app[SERVICES]
    before = await snapshot(services.db)

    wrong = RoomClient(other.url, token, "therapist")
    sockets.append(wrong)
    await wrong.connect()
    refused = await wrong.call("join")
    assert refused["ok"] is False
    assert refused["error"]["code"] == "wrong_worker"
    assert refused["error"]["worker"] == {"id": owner.id, "url": owner.url}
    assert await snapshot(services.db) == before  # no audit row, no seat
    assert services.rooms.get(ConsultId(consult["id"])) is None
    assert wrong.violations == []

    right = RoomClient(refused["error"]["worker"]["url"], token, "therapist")
    sockets.append(right)
    await right.connect()
    state = await right.join()
    assert state["you"]["role"] == "therapist"
    assert owner.client.app[SERVICES].rooms.get(ConsultId(consult["id"])) is not None


@pytest.mark.parametrize(
    "forged", [b"node-gone-0", b"x" * 100_000, b"\xff"], ids=["unknown", "huge", "binary"]
)
async def test_a_placement_naming_an_unknown_worker_is_replaced_at_the_join(
    node: list[NodeWorker],
    consult: dict[str, Any],
    sockets: list[RoomClient],
    redis: Redis,
    keys: ClusterKeys,
    forged: bytes,
) -> None:
    await redis.set(keys.placement(ConsultId(consult["id"])), forged)
    token = participant(consult, "psychiatrist")["join"]["token"]
    first = RoomClient(node[0].url, token, "psychiatrist")
    sockets.append(first)
    await first.connect()
    answer = await first.call("join")
    urls = {w.url for w in node}
    if not answer["ok"]:  # placed on the other worker: follow it
        assert answer["error"]["code"] == "wrong_worker"
        assert answer["error"]["worker"]["url"] in urls - {node[0].url}
        second = RoomClient(answer["error"]["worker"]["url"], token, "psychiatrist")
        sockets.append(second)
        await second.connect()
        await second.join()
    placed = await redis.get(keys.placement(ConsultId(consult["id"])))
    assert placed in {w.id.encode() for w in node}


async def test_one_process_names_no_worker(api: Api, platform: PlatformKey) -> None:
    """The embedded default: the session's `worker` is null (connect where the page is)."""
    made = await api.call(
        "POST", "/api/v1/consults", bearer=platform.secret, json_body=consult_body()
    )
    token = participant(made.body, "client")["join"]["token"]
    answer = await api.call("GET", f"/api/v1/consults/{made.body['id']}/session", bearer=token)
    assert answer.status == 200
    assert answer.body["worker"] is None


async def test_sockets_from_a_live_workers_page_are_allowed_and_others_not(
    node: list[NodeWorker],
) -> None:
    """CORS on the Socket.IO handshake and CSP on the page follow the registry."""
    first, second = node
    async with first.client.session.get(
        f"{first.url}/socket.io/?EIO=4&transport=polling", headers={"Origin": second.url}
    ) as allowed:
        assert allowed.status == 200
        assert allowed.headers.get("Access-Control-Allow-Origin") == second.url
    async with first.client.session.get(
        f"{first.url}/socket.io/?EIO=4&transport=polling",
        headers={"Origin": "http://evil.example.test"},
    ) as refused:
        assert refused.status == 400
    async with first.client.session.get(f"{first.url}/c/c_anything") as page:
        csp = page.headers["Content-Security-Policy"]
    connect = next(d for d in csp.split("; ") if d.startswith("connect-src"))
    ws_second = second.url.replace("http://", "ws://")
    assert second.url in connect.split()
    assert ws_second in connect.split()
    assert "evil" not in connect


async def test_a_worker_that_stops_serving_tells_its_sockets_and_ends_nothing(
    node: list[NodeWorker],
    consult: dict[str, Any],
    platform_key: PlatformKey,
    sockets: list[RoomClient],
) -> None:
    """What a fence (or a drain past its time) does to a live room: every socket is told
    `worker_leaving` and closed, the room is dropped without ending its consult, and the
    notes leave memory (the next owner loads them from the database)."""
    named = await session_worker(node[0], consult, "therapist")
    owner = next(w for w in node if w.id == named["id"])
    seated = []
    for role in ("therapist", "client"):
        token = participant(consult, role)["join"]["token"]
        room_client = RoomClient(owner.url, token, role)
        sockets.append(room_client)
        await room_client.connect()
        await room_client.join()
        seated.append(room_client)
    notes = NotesClient(seated[0])
    assert (await notes.edit("plan", insert("summary", 0, "kept")))["ok"]

    await owner.member.registry.leave()

    for room_client in seated:
        await room_client.wait_disconnected()
        assert [e["code"] for e in room_client.received("error")] == ["worker_leaving"]
    services = owner.client.app[SERVICES]
    assert services.rooms.get(ConsultId(consult["id"])) is None
    view = await owner.api.call(
        "GET", f"/api/v1/consults/{consult['id']}", bearer=platform_key.secret
    )
    assert view.body["status"] == "live"
    # Served again (here: nothing moved it), the room is new and the notes come back.
    token = participant(consult, "therapist")["join"]["token"]
    again = RoomClient(owner.url, token, "therapist")
    sockets.append(again)
    await again.connect()
    await again.join()
    reader = NotesClient(again)
    assert (await reader.sync("plan"))["ok"]
    assert reader.text("plan", "summary") == "kept"
