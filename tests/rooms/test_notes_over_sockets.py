"""The shared notes channel over the real Socket.IO server: live co-editing converges, each
role reads and writes only what it may, and an acknowledged edit survives a kill -9."""

from __future__ import annotations

import asyncio
from typing import Any

import pycrdt

from tests.apiclient import Api
from tests.conftest import PlatformKey
from tests.notes.yencode import awareness
from tests.rooms.conftest import People
from tests.rooms.notesclient import NotesClient, append_text, insert
from tests.waiting import wait_for

PRIVATE = "Zolpidem-query-private-7731"


async def in_room(people: People) -> dict[str, NotesClient]:
    therapist, psychiatrist, patient = await people.all_in_room()
    return {
        "therapist": NotesClient(therapist),
        "psychiatrist": NotesClient(psychiatrist),
        "client": NotesClient(patient),
    }


def client_question(text: str) -> Any:
    def change(doc: pycrdt.Doc[Any]) -> None:
        doc.get("questions", type=pycrdt.Array).append(text)

    return change


async def test_clinicians_co_edit_live_and_the_client_never_receives_their_private_notes(
    people: People, api: Api, platform: PlatformKey
) -> None:
    notes = await in_room(people)
    t, p, c = notes["therapist"], notes["psychiatrist"], notes["client"]
    for person in notes.values():
        for doc in ("plan", "client"):
            assert (await person.sync(doc))["ok"]
    for person in (t, p):
        assert (await person.sync("clinicians"))["ok"]
    refused = await c.sync("clinicians")
    assert refused["error"]["code"] == "forbidden_role"

    # Both clinicians type into the same section at the same time.
    acks = await asyncio.gather(
        *(t.edit("plan", insert("summary", 0, f"[t{i}]")) for i in range(12)),
        *(p.edit("plan", append_text("summary", f"[p{i}]")) for i in range(12)),
        t.edit("clinicians", insert("notes", 0, PRIVATE)),
        c.edit("client", client_question("Will it affect my sleep?")),
    )
    assert all(a["ok"] for a in acks), acks

    def converged() -> bool:
        for person in notes.values():
            person.apply_received()
        texts = {person.text("plan", "summary") for person in notes.values()}
        return len(texts) == 1 and texts.pop().count("[") == 24

    await wait_for(converged)

    def psychiatrist_has_private_notes() -> bool:
        p.apply_received()
        return p.text("clinicians", "notes") == PRIVATE

    await wait_for(psychiatrist_has_private_notes)
    for person in (t, p):
        assert list(person.doc("client").get("questions", type=pycrdt.Array)) == [
            "Will it affect my sleep?"
        ]
    # The client's copy of the plan equals the clinicians', byte for byte in content...
    assert c.text("plan", "summary") == t.text("plan", "summary")
    # ...and not one event carried the clinicians' document or its words to the client.
    for event, data in c.room.events:
        assert not (isinstance(data, dict) and data.get("doc") == "clinicians"), event
        assert PRIVATE.encode() not in repr(data).encode(), event


async def test_readers_cannot_write_and_bad_updates_change_nothing(people: People) -> None:
    notes = await in_room(people)
    t, c = notes["therapist"], notes["client"]
    assert (await t.edit("plan", insert("summary", 0, "Low mood since spring.")))["ok"]
    before = await NotesClient(t.room).sync("plan")

    forbidden = await c.edit("plan", insert("summary", 0, "I rewrote the plan"))
    assert forbidden["error"]["code"] == "forbidden_role"
    assert (await t.edit("client", client_question("not mine")))["error"]["code"] == (
        "forbidden_role"
    )
    garbage = await t.room.call("notes-update", {"doc": "plan", "update": b"\x07garbage"})
    assert garbage["error"]["code"] == "notes_update_invalid"
    unknown = await t.room.call("notes-update", {"doc": "plans", "update": b"\x00\x00"})
    assert unknown["error"]["code"] == "notes_document_unknown"

    after = await NotesClient(t.room).sync("plan")
    assert after["state_vector"] == before["state_vector"]
    assert after["update"] == before["update"]


async def test_the_plan_is_saved_at_the_end_with_what_was_typed(
    people: People, api: Api, platform: PlatformKey
) -> None:
    notes = await in_room(people)
    t, p = notes["therapist"], notes["psychiatrist"]
    assert (await t.edit("plan", insert("summary", 0, "Panic attacks twice weekly.")))["ok"]
    assert (await p.edit("clinicians", insert("notes", 0, PRIVATE)))["ok"]
    ended = await p.room.call("end")
    assert ended["ok"], ended

    consult_id = people.consult["id"]
    plan = await api.call("GET", f"/api/v1/consults/{consult_id}/plan", bearer=platform.secret)
    assert plan.status == 200, plan.body
    assert plan.body["id"] == ended["plan_id"]
    assert "Panic attacks twice weekly." in str(plan.body)
    assert PRIVATE not in str(plan.body)
    mine = await api.call(
        "GET", f"/api/v1/consults/{consult_id}/session/plan", bearer=people.token("client")
    )
    assert mine.status == 200, mine.body
    assert "Panic attacks twice weekly." in str(mine.body)
    assert PRIVATE not in str(mine.body)


# What each optional seat may do with each document over the socket: (reads, writes).
SEAT_TABLE: dict[str, dict[str, tuple[bool, bool]]] = {
    "guardian": {"plan": (True, False), "client": (True, True), "clinicians": (False, False)},
    "interpreter": {"plan": (False, False), "client": (False, False), "clinicians": (False, False)},
}


async def seated_room(people: People) -> dict[str, NotesClient]:
    """All five in the room: the hosts admit the client (the guardian consented for them), the
    guardian and the interpreter from the lobby."""
    therapist, psychiatrist, patient = await people.all_in_room()
    seats = {"therapist": therapist, "psychiatrist": psychiatrist, "client": patient}
    for role in ("guardian", "interpreter"):
        seats[role] = await people.joined(role)
        ack = await therapist.call("admit", {"participant_id": people.id(role)})
        assert ack["ok"], ack
        await seats[role].wait_event("admitted")
    return {role: NotesClient(room) for role, room in seats.items()}


async def test_the_optional_seats_per_the_table_and_never_the_clinicians_document(
    seated_people: People,
) -> None:
    """The guardian and interpreter against each document, over their sockets: sync, update and
    awareness are served or `forbidden_role` as docs/notes.md says, a refused update changes
    nothing, and neither socket receives any part of the clinicians' document."""
    notes = await seated_room(seated_people)
    t, p = notes["therapist"], notes["psychiatrist"]
    assert (await t.edit("plan", insert("summary", 0, "Sleep hygiene first.")))["ok"]
    # Every event, read or written, for each seat and document: served or forbidden_role.
    for role, table in SEAT_TABLE.items():
        person = notes[role]
        for doc, (reads, writes) in table.items():
            synced = await person.sync(doc)
            assert synced["ok"] is reads, (role, doc, synced)
            if not reads:
                assert synced["error"]["code"] == "forbidden_role", (role, doc)
            before = await NotesClient(t.room).sync(doc)
            edited = await person.edit(
                doc,
                client_question(f"from the {role}")
                if doc == "client"
                else insert("summary" if doc == "plan" else "notes", 0, f"by the {role}"),
            )
            assert edited["ok"] is writes, (role, doc, edited)
            if not writes:
                assert edited["error"]["code"] == "forbidden_role", (role, doc)
                after = await NotesClient(t.room).sync(doc)
                assert after["state_vector"] == before["state_vector"], (role, doc)
            cursor = awareness([(9000 + len(role) * 10 + len(doc), 1, {"user": {"name": role}})])
            told = await person.room.call("notes-awareness", {"doc": doc, "update": cursor})
            assert told["ok"] is reads, (role, doc, told)
    # The clinicians write their private notes and move their cursors in them, after which the
    # plan changes once more: when that reaches the guardian, the earlier relays had their turn.
    assert (await t.edit("clinicians", insert("notes", 0, PRIVATE)))["ok"]
    assert (await p.edit("clinicians", append_text("notes", " " + PRIVATE)))["ok"]
    cursor = awareness([(7001, 1, {"user": {"name": "T"}, "section": "notes"})])
    assert (await t.room.call("notes-awareness", {"doc": "clinicians", "update": cursor}))["ok"]
    assert (await t.edit("plan", append_text("summary", " Last.")))["ok"]
    guardian = notes["guardian"]
    await guardian.room.wait_event("notes-update", lambda d: b"Last." in d["update"])
    # The guardian's question reached the clinicians and the client.
    for person in (t, notes["client"]):

        def has_question(person: NotesClient = person) -> bool:
            person.apply_received()
            questions = person.doc("client").get("questions", type=pycrdt.Array).to_py()
            return "from the guardian" in questions

        await wait_for(has_question)
    for role in ("guardian", "interpreter"):
        room = notes[role].room
        # Each fan-out went out before its sender's ack; an answer on this socket comes after
        # anything sent to it before.
        assert (await room.call("notes-sync", {"doc": "clinicians", "state_vector": b"\x00"}))[
            "error"
        ]["code"] == "forbidden_role"
        for event, data in room.events:
            assert not (isinstance(data, dict) and data.get("doc") == "clinicians"), (role, event)
            assert PRIVATE.encode() not in repr(data).encode(), (role, event)
    # The interpreter reads nothing of the notes: not one notes event reached them.
    interpreter_events = {event for event, _ in notes["interpreter"].room.events}
    assert not interpreter_events & {"notes-update", "notes-awareness"}
