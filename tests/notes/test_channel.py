"""The notes channel through NotesService on a real database: concurrent edits converge on every
copy, each role reads and writes only what it may, refused updates change nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import pycrdt
import pytest
from sqlalchemy import func, select

from server.auth.roles import Role
from server.db.models import NoteUpdate
from server.errors import ErrorCode, TriadError
from server.notes.documents import DocumentName, may_read, may_write, parse_document
from tests.databases import snapshot
from tests.notes.conftest import MAX_UPDATE, World

PLAN, CLIENT, CLINICIANS = DocumentName.PLAN, DocumentName.CLIENT, DocumentName.CLINICIANS


def insert_text(root: str, index: int, text: str) -> Any:
    def change(doc: pycrdt.Doc[Any]) -> None:
        doc.get(root, type=pycrdt.Text).insert(index, text)

    return change


def append_item(root: str, item: dict[str, str]) -> Any:
    def change(doc: pycrdt.Doc[Any]) -> None:
        doc.get(root, type=pycrdt.Array).append(pycrdt.Map(item))

    return change


# The permission table of docs/notes.md: (reads, writes) per role and document.
PERMISSIONS: dict[Role, dict[DocumentName, tuple[bool, bool]]] = {
    Role.CLIENT: {PLAN: (True, False), CLIENT: (True, True), CLINICIANS: (False, False)},
    Role.THERAPIST: {PLAN: (True, True), CLIENT: (True, False), CLINICIANS: (True, True)},
    Role.PSYCHIATRIST: {PLAN: (True, True), CLIENT: (True, False), CLINICIANS: (True, True)},
    Role.GUARDIAN: {PLAN: (True, False), CLIENT: (True, True), CLINICIANS: (False, False)},
    Role.INTERPRETER: {PLAN: (False, False), CLIENT: (False, False), CLINICIANS: (False, False)},
}


def test_permissions_per_document() -> None:
    assert set(PERMISSIONS) == set(Role)
    for role, table in PERMISSIONS.items():
        for doc, (reads, writes) in table.items():
            assert (may_read(role, doc), may_write(role, doc)) == (reads, writes), (role, doc)
    with pytest.raises(TriadError) as raised:
        parse_document("plans")
    assert raised.value.code == ErrorCode.NOTES_DOCUMENT_UNKNOWN


async def test_concurrent_edits_from_both_clinicians_converge_on_all_copies(world: World) -> None:
    therapist = world.peers[Role.THERAPIST]
    psychiatrist = world.peers[Role.PSYCHIATRIST]
    client = world.peers[Role.CLIENT]
    for peer in world.peers.values():
        for doc in peer.docs:
            await peer.sync(doc)
    base = therapist.edit(PLAN, insert_text("summary", 0, "Low mood since spring. "))
    await therapist.send(PLAN, base)
    # Both clinicians type into the same field at the same place without seeing each other.
    rounds = []
    for i in range(5):
        a = therapist.edit(PLAN, insert_text("summary", 0, f"[T{i} sleep poor] "))
        b = psychiatrist.edit(PLAN, insert_text("summary", 0, f"[P{i} appetite low] "))
        rounds.append((a, b))
    await asyncio.gather(
        *(therapist.send(PLAN, a) for a, _ in rounds),
        *(psychiatrist.send(PLAN, b) for _, b in rounds),
    )
    await asyncio.gather(
        therapist.send(PLAN, therapist.edit(PLAN, append_item("diagnoses", {"name": "MDD"}))),
        psychiatrist.send(
            PLAN, psychiatrist.edit(PLAN, append_item("medications", {"name": "Sertraline"}))
        ),
        client.send(
            CLIENT, client.edit(CLIENT, append_item("questions", {"text": "Side effects?"}))
        ),
    )
    summary = therapist.text(PLAN, "summary")
    assert summary == psychiatrist.text(PLAN, "summary") == client.text(PLAN, "summary")
    for i in range(5):
        assert summary.count(f"[T{i} sleep poor] ") == 1
        assert summary.count(f"[P{i} appetite low] ") == 1
    assert summary.endswith("Low mood since spring. ")
    for peer in world.peers.values():
        assert peer.docs[PLAN].get_update()
        assert peer.docs[PLAN].get_state() == therapist.docs[PLAN].get_state()
        assert peer.array(PLAN, "diagnoses") == [{"name": "MDD"}]
        assert peer.array(PLAN, "medications") == [{"name": "Sertraline"}]
        assert peer.array(CLIENT, "questions") == [{"text": "Side effects?"}]
    # The server's copy is the same: a fresh browser syncing from nothing gets exactly this.
    fresh = pycrdt.Doc()
    reply = await world.notes.sync(world.consult_id, Role.CLIENT, "plan", fresh.get_state())
    fresh.apply_update(reply.update)
    assert str(fresh.get("summary", type=pycrdt.Text)) == summary
    assert reply.state_vector == therapist.docs[PLAN].get_state()


async def test_the_client_never_reads_the_clinicians_document(world: World) -> None:
    therapist, client = world.peers[Role.THERAPIST], world.peers[Role.CLIENT]
    await world.peers[Role.PSYCHIATRIST].sync(CLINICIANS)
    await therapist.send(CLINICIANS, therapist.edit(CLINICIANS, insert_text("notes", 0, "private")))
    assert CLINICIANS not in client.docs
    assert all(doc != CLINICIANS for doc, _ in client.received)
    assert world.peers[Role.PSYCHIATRIST].text(CLINICIANS, "notes") == "private"
    empty = pycrdt.Doc().get_state()
    with pytest.raises(TriadError) as raised:
        await world.notes.sync(world.consult_id, Role.CLIENT, "clinicians", empty)
    assert raised.value.code == ErrorCode.FORBIDDEN_ROLE
    assert await world.notes.clinicians_notes(world.consult_id) == "private"


async def test_refused_updates_and_syncs_change_nothing(world: World) -> None:
    therapist, _client = world.peers[Role.THERAPIST], world.peers[Role.CLIENT]
    await therapist.send(PLAN, therapist.edit(PLAN, insert_text("summary", 0, "Kept.")))
    before_db = await snapshot(world.db)
    before_state = await world.notes.sync(world.consult_id, Role.THERAPIST, "plan", b"\x00")
    sneaky = pycrdt.Doc()
    sneaky.get("summary", type=pycrdt.Text).insert(0, "client wrote this")
    client_update = sneaky.get_update()
    huge = pycrdt.Doc()
    huge.get("summary", type=pycrdt.Text).insert(0, "x" * (MAX_UPDATE + 10))
    valid = therapist.edit(PLAN, insert_text("summary", 0, "Never sent. "))
    cases: list[tuple[Role, str, Any, ErrorCode]] = [
        (Role.CLIENT, "plan", client_update, ErrorCode.FORBIDDEN_ROLE),
        (Role.CLIENT, "clinicians", client_update, ErrorCode.FORBIDDEN_ROLE),
        (Role.THERAPIST, "client", client_update, ErrorCode.FORBIDDEN_ROLE),
        (Role.THERAPIST, "plan", b"\xff\x01garbage", ErrorCode.NOTES_UPDATE_INVALID),
        (Role.THERAPIST, "plan", valid[:-3], ErrorCode.NOTES_UPDATE_INVALID),
        (Role.THERAPIST, "plan", b"", ErrorCode.NOTES_UPDATE_INVALID),
        (Role.THERAPIST, "plan", "not bytes", ErrorCode.NOTES_UPDATE_INVALID),
        (Role.THERAPIST, "plan", huge.get_update(), ErrorCode.NOTES_UPDATE_TOO_LARGE),
        (Role.THERAPIST, "minutes", valid, ErrorCode.NOTES_DOCUMENT_UNKNOWN),
    ]
    for role, doc, update, code in cases:
        with pytest.raises(TriadError) as raised:
            await world.notes.apply(world.consult_id, world.ids[role], role, doc, update)
        assert raised.value.code == code, (role, doc, code)
    for role, doc, vector, code in [
        (Role.THERAPIST, "plan", b"\xff\xff\xff", ErrorCode.NOTES_UPDATE_INVALID),
        (Role.THERAPIST, "notes", b"\x00", ErrorCode.NOTES_DOCUMENT_UNKNOWN),
        (Role.CLIENT, "clinicians", b"\x00", ErrorCode.FORBIDDEN_ROLE),
    ]:
        with pytest.raises(TriadError) as raised:
            await world.notes.sync(world.consult_id, role, doc, vector)
        assert raised.value.code == code
    assert await snapshot(world.db) == before_db
    after_state = await world.notes.sync(world.consult_id, Role.THERAPIST, "plan", b"\x00")
    assert after_state == before_state
    fresh = pycrdt.Doc()
    fresh.apply_update(after_state.update)
    assert str(fresh.get("summary", type=pycrdt.Text)) == "Kept."


async def test_each_update_is_logged_in_order_before_it_returns(world: World) -> None:
    therapist, psychiatrist = world.peers[Role.THERAPIST], world.peers[Role.PSYCHIATRIST]
    seqs = []
    for i in range(6):
        peer = therapist if i % 2 else psychiatrist
        applied = await peer.send(PLAN, peer.edit(PLAN, insert_text("safety", 0, f"{i}")))
        seqs.append(applied.seq)
        async with world.db.sessions() as session:
            logged = await session.scalar(
                select(func.max(NoteUpdate.seq)).where(NoteUpdate.consult_id == world.consult_id)
            )
        assert logged == applied.seq  # durable before apply returned
    assert seqs == [1, 2, 3, 4, 5, 6]
    async with world.db.sessions() as session:
        rows = (await session.scalars(select(NoteUpdate).order_by(NoteUpdate.seq))).all()
    assert [(r.role, r.sections) for r in rows][:2] == [
        ("psychiatrist", ["safety"]),
        ("therapist", ["safety"]),
    ]


async def test_many_updates_in_flight_on_one_document_keep_their_order(world: World) -> None:
    therapist, psychiatrist = world.peers[Role.THERAPIST], world.peers[Role.PSYCHIATRIST]
    updates = [
        (peer, peer.edit(PLAN, insert_text("summary", 0, f"<{i}>")))
        for i in range(15)
        for peer in (therapist, psychiatrist)
    ]
    applied = await asyncio.gather(*(peer.send(PLAN, update) for peer, update in updates))
    assert sorted(a.seq for a in applied) == list(range(1, 31))
    async with world.db.sessions() as session:
        seqs = list(await session.scalars(select(NoteUpdate.seq).order_by(NoteUpdate.seq)))
    assert seqs == list(range(1, 31))
    await world.restart()
    reply = await world.notes.sync(world.consult_id, Role.CLIENT, "plan", b"\x00")
    fresh: pycrdt.Doc[Any] = pycrdt.Doc()
    fresh.apply_update(reply.update)
    assert str(fresh.get("summary", type=pycrdt.Text)) == therapist.text(PLAN, "summary")
    assert therapist.text(PLAN, "summary") == psychiatrist.text(PLAN, "summary")


async def test_the_optional_seats_read_and_write_per_the_table_and_refusals_change_nothing(
    seated_world: World,
) -> None:
    """Each role of a five-seat consult against each document, for sync and for an update: what
    the table allows is served, what it does not is `forbidden_role` and leaves the database as
    it was. The guardian's question lands in the client's document beside the client's."""
    world = seated_world
    therapist = world.peers[Role.THERAPIST]
    await therapist.send(PLAN, therapist.edit(PLAN, insert_text("summary", 0, "Plan text.")))
    await therapist.send(CLINICIANS, therapist.edit(CLINICIANS, insert_text("notes", 0, "Ours.")))
    for role in (Role.GUARDIAN, Role.INTERPRETER):
        for doc, (reads, writes) in PERMISSIONS[role].items():
            before = await snapshot(world.db)
            if reads:
                reply = await world.notes.sync(world.consult_id, role, str(doc), b"\x00")
                assert reply.update, (role, doc)
            else:
                with pytest.raises(TriadError) as raised:
                    await world.notes.sync(world.consult_id, role, str(doc), b"\x00")
                assert raised.value.code == ErrorCode.FORBIDDEN_ROLE, (role, doc)
            scratch: pycrdt.Doc[Any] = pycrdt.Doc()
            root = "questions" if doc is CLIENT else ("notes" if doc is CLINICIANS else "summary")
            if doc is CLIENT:
                scratch.get(root, type=pycrdt.Array).append(f"asked by the {role}")
            else:
                scratch.get(root, type=pycrdt.Text).insert(0, f"written by the {role}")
            update = scratch.get_update()
            if writes:
                applied = await world.notes.apply(
                    world.consult_id, world.ids[role], role, str(doc), update
                )
                assert applied.seq > 0
                continue
            with pytest.raises(TriadError) as raised:
                await world.notes.apply(world.consult_id, world.ids[role], role, str(doc), update)
            assert raised.value.code == ErrorCode.FORBIDDEN_ROLE, (role, doc)
            assert await snapshot(world.db) == before, (role, doc)
    client = world.peers[Role.CLIENT]
    await client.send(CLIENT, client.edit(CLIENT, append_item("goals", {"text": "Sleep"})))
    reply = await world.notes.sync(world.consult_id, Role.THERAPIST, "client", b"\x00")
    seen: pycrdt.Doc[Any] = pycrdt.Doc()
    seen.apply_update(reply.update)
    assert seen.get("questions", type=pycrdt.Array).to_py() == ["asked by the guardian"]
    assert seen.get("goals", type=pycrdt.Array).to_py() == [{"text": "Sleep"}]
    assert await world.notes.clinicians_notes(world.consult_id) == "Ours."
