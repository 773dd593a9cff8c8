"""Issue 11's crashers over the wire: the admitted client sends each hostile Yjs update (and
hostile awareness) with the real python-socketio client to `triad serve` running in its own
process, so a regression that crashes the server fails this test instead of killing pytest.
Each answer is a coded acknowledgement, the process lives, nothing was logged or changed, and
nobody else received a byte of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pycrdt
import pytest
from sqlalchemy import func, select

from server.app import utc_now
from server.auth.roles import REQUIRED_ROLES, Role
from server.consults.model import Actor, ConsultSpec, ParticipantSpec, PlatformCaller
from server.crypto import KeyRing
from server.db.engine import Database
from server.db.models import NoteUpdate
from server.ids import ParticipantId
from server.notes.intake import state_of
from server.services import open_services
from tests.conftest import TEST_KEY, make_settings
from tests.notes.attacks import ATTACKS, CRASHERS, ORDINARY_STEPS
from tests.notes.yencode import awareness, varuint
from tests.roomclient import RoomClient
from tests.rooms.notesclient import NotesClient
from tests.rooms.test_notes_crash import server_process

DEADLINE = 30.0


async def new_consult(
    tmp_path: Path, database_url: str
) -> tuple[str, dict[Role, str], dict[Role, str]]:
    """A consult written straight to the database: its id, a token and an id per role."""
    settings = make_settings(tmp_path, database_url)
    async with open_services(settings, KeyRing.parse(TEST_KEY), utc_now) as services:
        key = await services.keys.create("Hostile Clinic", Actor("operator", "test"))
        caller = PlatformCaller(key.platform_id, key.key_id, key.secret)
        spec = ConsultSpec(
            participants=tuple(ParticipantSpec(r, f"{r} person") for r in REQUIRED_ROLES)
        )
        created = await services.consults.create(caller, spec)
    by_role = {p.id: p.role for p in created.consult.participants}
    tokens = {by_role[ParticipantId(pid)]: t.token for pid, t in created.tokens.items()}
    return created.consult.id, tokens, {role: pid for pid, role in by_role.items()}


async def consent(base: str, consult_id: str, token: str) -> None:
    path = f"{base}/api/v1/consults/{consult_id}/session/consent"
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(path, headers=headers) as answer:
            assert answer.status == 200
            version = (await answer.json())["wording"]["version"]
        body = {"wording_version": version, "scopes": ["session", "information_sharing"]}
        async with http.post(path, headers=headers, json=body) as answer:
            assert answer.status == 201, await answer.text()


async def alive(base: str) -> bool:
    async with aiohttp.ClientSession() as http, http.get(f"{base}/healthz") as answer:
        return answer.status == 200


async def room(
    base: str, consult_id: str, tokens: dict[Role, str], ids: dict[Role, str]
) -> dict[Role, RoomClient]:
    """All three joined and the client (who consented) admitted by the therapist."""
    await consent(base, consult_id, tokens[Role.CLIENT])
    people = {role: RoomClient(base, token, str(role)) for role, token in tokens.items()}
    for role in (Role.THERAPIST, Role.PSYCHIATRIST, Role.CLIENT):
        await people[role].connect()
        await people[role].join()
    ack = await people[Role.THERAPIST].call("admit", {"participant_id": ids[Role.CLIENT]})
    assert ack["ok"], ack
    await people[Role.CLIENT].wait_event("admitted")
    return people


def fanned_out(people: dict[Role, RoomClient], event: str) -> list[Any]:
    return [d for r in (Role.THERAPIST, Role.PSYCHIATRIST) for d in people[r].received(event)]


@pytest.mark.timeout(240)
async def test_the_crashers_get_a_coded_answer_and_the_server_lives(
    tmp_path: Path, database_url: str
) -> None:
    consult_id, tokens, ids = await new_consult(tmp_path, database_url)
    async with server_process(tmp_path, database_url) as (base, process):
        people = await room(base, consult_id, tokens, ids)
        client = NotesClient(people[Role.CLIENT])
        assert (await client.sync("client"))["ok"]
        mine = client.doc("client")
        before = mine.get_state()
        mine.get("questions", type=pycrdt.Array).append("Before")
        first = mine.get_update(before)
        sent = await people[Role.CLIENT].call("notes-update", {"doc": "client", "update": first})
        assert sent["ok"], sent
        acknowledged, acks = {first}, 1
        for name in CRASHERS:
            for step in ATTACKS[name]:
                answer = await people[Role.CLIENT].call(
                    "notes-update", {"doc": "client", "update": step}
                )
                if step in ORDINARY_STEPS:
                    assert answer["ok"], (name, answer)
                    acknowledged.add(step)
                    acks += 1
                    continue
                assert not answer["ok"], name
                assert answer["error"]["code"] == "notes_update_invalid", (name, answer)
                assert process.returncode is None, name
            assert await alive(base), name
        # Nothing refused was fanned out: the therapist received the acknowledged updates only.
        therapist = people[Role.THERAPIST]
        await therapist.wait_event("notes-update", lambda d: d["update"] == first)
        received = {d["update"] for d in therapist.received("notes-update")}
        assert received <= acknowledged
        # The document syncs for a fresh reader and is exactly what the server acknowledged.
        fresh = NotesClient(people[Role.PSYCHIATRIST])
        assert (await fresh.sync("client"))["ok"]
        expected: pycrdt.Doc[Any] = pycrdt.Doc()
        for update in acknowledged:
            expected.apply_update(update)
        assert state_of(fresh.doc("client")) == state_of(expected)
        assert "Before" in fresh.doc("client").get("questions", type=pycrdt.Array).to_py()
        for person in people.values():
            await person.close()
        assert process.returncode is None
    # No refused update reached the log.
    db = Database(database_url)
    try:
        async with db.sessions() as session:
            rows = await session.scalar(
                select(func.count())
                .select_from(NoteUpdate)
                .where(NoteUpdate.consult_id == consult_id, NoteUpdate.doc == "client")
            )
    finally:
        await db.close()
    assert rows == acks


HOSTILE_AWARENESS = {
    "nested-15000": awareness([(1, 1, "[" * 15_000 + "]" * 15_000)])[:16_000],
    "nested-3000": awareness([(1, 1, "[" * 3000 + "]" * 3000)]),
    "clock-2^64-1": varuint(1) + varuint(5) + varuint(2**64 - 1) + b"\x02{}",
    "count-huge": varuint(2**40) + b"\x01\x01\x00",
    "truncated": awareness([(1, 1, {"user": {"name": "x"}})])[:-3],
    "not-an-object": awareness([(1, 1, "[1]")]),
}


@pytest.mark.timeout(120)
async def test_hostile_awareness_is_refused_and_nobody_speaks_for_another(
    tmp_path: Path, database_url: str
) -> None:
    consult_id, tokens, ids = await new_consult(tmp_path, database_url)
    async with server_process(tmp_path, database_url) as (base, process):
        people = await room(base, consult_id, tokens, ids)
        client, therapist = people[Role.CLIENT], people[Role.THERAPIST]
        for name, data in HOSTILE_AWARENESS.items():
            answer = await client.call("notes-awareness", {"doc": "client", "update": data})
            assert not answer["ok"], name
            assert answer["error"]["code"] in ("notes_update_invalid", "validation_failed"), name
        assert process.returncode is None
        assert await alive(base)
        # The therapist's cursor (client id 1001) is theirs: the client cannot move it.
        mine = awareness([(1001, 1, {"user": {"name": "T"}, "section": "questions"})])
        assert (await therapist.call("notes-awareness", {"doc": "client", "update": mine}))["ok"]
        forged = awareness([(1001, 2, None)])
        answer = await client.call("notes-awareness", {"doc": "client", "update": forged})
        assert answer == {
            "ok": False,
            "error": {"code": "notes_client_id_taken", "message": answer["error"]["message"]},
        }
        own = awareness([(2002, 1, {"user": {"name": "C"}})])
        assert (await client.call("notes-awareness", {"doc": "client", "update": own}))["ok"]
        await people[Role.PSYCHIATRIST].wait_event("notes-awareness", lambda d: d["update"] == own)
        relayed = [d["update"] for d in people[Role.PSYCHIATRIST].received("notes-awareness")]
        assert forged not in relayed
        assert not any(data in relayed for data in HOSTILE_AWARENESS.values())
        for person in people.values():
            await person.close()
