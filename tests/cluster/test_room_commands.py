"""REST calls a live room must act on, served by a worker that does not hold the consult: one
node of two workers (`triad serve --workers 2`, real processes), PostgreSQL and Redis, and
the participants on the real python-socketio client at the worker that holds the room.

Consent given lets the waiting client in (auto-admit), same-room presence declared and
confirmed reaches who must see it, a check-in's safety flag and a saved brief reach the
clinicians, consent withdrawn reaches everyone, the platform's end closes the room with the
saved plan's id; a malformed or forged message on the worker's channel changes nothing.
And the end stays exactly-once across processes: the platform's end on one worker racing a
host's End on the other saves one plan, and everyone hears that one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from server.cluster.commands import channel
from server.cluster.entry import ClusterKeys
from server.db.models import AuditEvent, Plan
from server.ids import WorkerId
from tests.cluster.processes import two_worker_node
from tests.media.triadserver import TriadServer
from tests.roomclient import RoomClient

ROLES = ("therapist", "psychiatrist", "client")
PHQ9_FLAGGED = [1, 1, 0, 2, 1, 0, 1, 0, 2]  # item 9 above zero
BRIEF = {
    "seen_in_therapy": "Twelve sessions; Quellbrook pattern of early waking.",
    "question": "Medication alongside CBT-I?",
    "medications": "none",
    "risks": "none known",
}


@pytest.fixture
async def node(
    tmp_path: Path, cluster_database: str, redis_url: str, keys: ClusterKeys
) -> AsyncIterator[TriadServer]:
    async with two_worker_node(tmp_path, cluster_database, redis_url, keys) as server:
        yield server


class Rest:
    """REST calls to one chosen worker's own address."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http = http

    async def call(
        self, url: str, method: str, path: str, bearer: str, body: Any = None, status: int = 200
    ) -> Any:
        async with self.http.request(
            method, url + path, json=body, headers={"Authorization": f"Bearer {bearer}"}
        ) as answer:
            payload = await answer.json(content_type=None)
            assert answer.status == status, (method, path, answer.status, payload)
            return payload


async def new_consult(rest: Rest, node: TriadServer) -> dict[str, Any]:
    body = {
        "participants": [{"role": role, "name": role.title()} for role in ROLES],
        "auto_admit": True,
    }
    made: dict[str, Any] = await rest.call(
        node.base_url, "POST", "/api/v1/consults", node.api_key, body, status=201
    )
    return made


def pid(consult: dict[str, Any], role: str) -> str:
    value: str = next(p["id"] for p in consult["participants"] if p["role"] == role)
    return value


def token(consult: dict[str, Any], role: str) -> str:
    seat = next(p for p in consult["participants"] if p["role"] == role)
    value: str = seat["join"]["token"]
    return value


async def worker_of(rest: Rest, node: TriadServer, consult: dict[str, Any]) -> dict[str, str]:
    session = await rest.call(
        node.worker_urls[0],
        "GET",
        f"/api/v1/consults/{consult['id']}/session",
        token(consult, "therapist"),
    )
    worker: dict[str, str] = session["worker"]
    return worker


async def seated(
    stack: AsyncExitStack, url: str, consult: dict[str, Any], roles: tuple[str, ...]
) -> dict[str, RoomClient]:
    clients = {}
    for role in roles:
        client = RoomClient(url, token(consult, role), role)
        stack.push_async_callback(client.close)
        await client.connect()
        clients[role] = client
        ack = await client.call("join")
        assert ack["ok"], ack
    return clients


async def saved_plans(database_url: str, consult_id: str) -> tuple[list[str], int]:
    """The consult's plan rows and `consult.ended` audit events, read straight from PostgreSQL."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as db:
            plans = (await db.scalars(select(Plan.id).where(Plan.consult_id == consult_id))).all()
            ends = await db.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.consult_id == consult_id, AuditEvent.action == "consult.ended")
            )
    finally:
        await engine.dispose()
    return list(plans), int(ends or 0)


# Two worker starts and their stop on two shared cores.
@pytest.mark.timeout(120)
async def test_rest_calls_on_the_other_worker_reach_the_live_room(
    node: TriadServer, cluster_database: str, redis: Redis, keys: ClusterKeys
) -> None:
    async with aiohttp.ClientSession() as http, AsyncExitStack() as stack:
        rest = Rest(http)
        consult = await new_consult(rest, node)
        cid = consult["id"]
        owner = await worker_of(rest, node, consult)
        other = next(url for url in node.worker_urls if url != owner["url"])
        people = await seated(stack, owner["url"], consult, ROLES)
        therapist, psychiatrist, client = (people[r] for r in ROLES)
        # No consent yet: the auto-admitted client waits in the lobby.
        await therapist.wait_event(
            "lobby", lambda d: [w["role"] for w in d["waiting"]] == ["client"]
        )
        assert client.received("admitted") == []

        # On the owner's channel: garbage is dropped, and an `ended` for a consult whose row
        # is not ended changes nothing (the room lives on through the steps below); the reader
        # keeps reading, in order.
        for junk in (b"\xff" * 10, b'{"kind":"ended","consult_id":"' + cid.encode() + b'"}'):
            assert await redis.publish(channel(keys, WorkerId(owner["id"])), junk) == 1

        # Consent given on the other worker: the client is let in, everyone sees the consent.
        path = f"/api/v1/consults/{cid}/session/consent"
        wording = await rest.call(other, "GET", path, token(consult, "client"))
        given = {
            "wording_version": wording["wording"]["version"],
            "scopes": ["session", "information_sharing"],
        }
        await rest.call(other, "POST", path, token(consult, "client"), given, status=201)
        admitted = await client.wait_event("admitted")
        assert admitted["state"]["you"]["place"] == "room"
        await therapist.wait_event("consent-changed", lambda d: d["complete"] is True)

        # Same-room presence, declared and confirmed on the other worker: the person declared
        # is asked, then everyone sees the client's `present_with`.
        client_id, psychiatrist_id = pid(consult, "client"), pid(consult, "psychiatrist")
        session = f"/api/v1/consults/{cid}/session"
        await rest.call(
            other,
            "PUT",
            session + "/present-with",
            token(consult, "client"),
            {"participant_ids": [psychiatrist_id]},
        )
        mine = [{"declarer_id": client_id, "participant_id": psychiatrist_id}]
        await psychiatrist.wait_event("presence-pending", lambda d: d["pending"] == mine)
        await rest.call(
            other,
            "POST",
            session + "/present-with/confirmations",
            token(consult, "psychiatrist"),
            {"declarer_id": client_id, "participant_id": psychiatrist_id},
        )
        await therapist.wait_event(
            "peer-updated",
            lambda d: (
                d["participant"]["participant_id"] == client_id
                and d["participant"]["present_with"] == [psychiatrist_id]
            ),
        )

        # A flagged check-in on the other worker: both clinicians see the flag, not the client.
        measure = await rest.call(
            other,
            "POST",
            f"/api/v1/consults/{cid}/session/measures",
            token(consult, "client"),
            {"instrument": "phq9", "answers": PHQ9_FLAGGED},
            status=201,
        )
        for clinician in (therapist, psychiatrist):
            flag = await clinician.wait_event("safety-flag")
            assert flag["measure_id"] == measure["id"]
            assert flag["answer"] == PHQ9_FLAGGED[8]

        # The platform saves the brief on the other worker: the clinicians are told (no text).
        await rest.call(other, "PUT", f"/api/v1/consults/{cid}/brief", node.api_key, BRIEF)
        for clinician in (therapist, psychiatrist):
            assert await clinician.wait_event("brief-updated") == {}

        # Consent to sharing withdrawn on the other worker: everyone sees it; the psychiatrist
        # is no longer told of the brief, the therapist still is.
        await rest.call(
            other,
            "POST",
            f"/api/v1/consults/{cid}/session/consent/withdraw",
            token(consult, "client"),
            {"scopes": ["information_sharing"]},
        )
        for person in people.values():
            await person.wait_event("consent-changed", lambda d: d["sharing_withdrawn"] is True)
        mark = len(psychiatrist.events)
        await rest.call(
            other,
            "PUT",
            f"/api/v1/consults/{cid}/session/brief",
            token(consult, "therapist"),
            BRIEF,
        )
        await therapist.wait_event("brief-updated", after=len(therapist.received("brief-updated")))
        assert client.received("brief-updated") == []

        # The platform ends it on the other worker: the plan is saved, the room closes with it.
        await rest.call(other, "POST", f"/api/v1/consults/{cid}/end", node.api_key)
        plan = await rest.call(other, "GET", f"/api/v1/consults/{cid}/plan", node.api_key)
        for person in people.values():
            ended = await person.wait_event("ended")
            assert ended == {"plan_id": plan["id"], "ended_by": ended["ended_by"]}
            assert ended["ended_by"].startswith("platform:")
            await person.wait_disconnected()
        # Everything sent before `ended` has arrived: the psychiatrist was not told after the
        # withdrawal, the client never.
        assert [name for name, _ in psychiatrist.events[mark:]].count("brief-updated") == 0
        assert client.received("brief-updated") == []
        for person in people.values():
            assert len(person.received("ended")) == 1
    plans, ends = await saved_plans(cluster_database, cid)
    assert plans == [plan["id"]]
    assert ends == 1


RACES = 3


@pytest.mark.timeout(120)
async def test_the_platforms_end_racing_a_hosts_end_saves_one_plan(
    node: TriadServer, cluster_database: str
) -> None:
    async with aiohttp.ClientSession() as http, AsyncExitStack() as stack:
        rest = Rest(http)
        rooms = []
        for _ in range(RACES):
            consult = await new_consult(rest, node)
            owner = await worker_of(rest, node, consult)
            other = next(url for url in node.worker_urls if url != owner["url"])
            people = await seated(stack, owner["url"], consult, ("therapist", "psychiatrist"))
            rooms.append((consult, other, people))

        async def race(consult: dict[str, Any], other: str, people: dict[str, RoomClient]) -> Any:
            rest_end = rest.call(
                other, "POST", f"/api/v1/consults/{consult['id']}/end", node.api_key
            )
            host_end = people["therapist"].call("end")
            answer, ack = await asyncio.gather(rest_end, host_end)
            assert answer["status"] == "ended"
            return ack

        acks = await asyncio.gather(*(race(*room) for room in rooms))
        for (consult, _, people), ack in zip(rooms, acks, strict=True):
            plans, ends = await saved_plans(cluster_database, consult["id"])
            assert len(plans) == 1
            assert ends == 1
            if ack["ok"]:  # else the room had closed under the host's press: `consult_ended`
                assert ack["plan_id"] == plans[0]
            else:
                assert ack["error"]["code"] == "consult_ended"
            for person in people.values():
                ended = await person.wait_event("ended")
                assert ended["plan_id"] == plans[0]
                await person.wait_disconnected()
                assert len(person.received("ended")) == 1
