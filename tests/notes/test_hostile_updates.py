"""Hostile Yjs updates through the NotesService on a real database: each of issue 11's attack
sequences is refused with a code or applied harmlessly, nothing refused reaches the log, and the
document still syncs and freezes into a plan, also after a restart. Plus the document size cap,
updates that arrive out of order, a log poisoned before the checks existed, and the panic guard."""

from __future__ import annotations

import asyncio
from typing import Any

import pycrdt
import pytest
from sqlalchemy import func, select

from server.auth.roles import Role
from server.db.models import NoteUpdate
from server.errors import ErrorCode, TriadError
from server.notes import intake
from server.notes.documents import DocumentName
from server.notes.intake import CrdtFailure
from server.notes.service import NotesService
from tests.notes.attacks import ATTACKS, ORDINARY, ORDINARY_STEPS, C
from tests.notes.conftest import World, make_world, utc_now, write_unchecked_rows
from tests.notes.plans import text
from tests.notes.yencode import GC, Struct, entry, string_item, update, varuint

CLIENT, PLAN = DocumentName.CLIENT, DocumentName.PLAN


async def log_rows(world: World, doc: DocumentName) -> int:
    async with world.db.sessions() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(NoteUpdate)
            .where(NoteUpdate.consult_id == world.consult_id, NoteUpdate.doc == str(doc))
        )
    return int(count or 0)


async def synced_copy(notes: NotesService, world: World, doc: DocumentName) -> pycrdt.Doc[Any]:
    """What a browser gets from a full sync; its state must be the server's own."""
    reply = await notes.sync(world.consult_id, Role.THERAPIST, str(doc), b"\x00")
    copy: pycrdt.Doc[Any] = pycrdt.Doc()
    copy.apply_update(reply.update)
    assert intake.state_of(copy) == intake.read_state_vector(
        reply.state_vector, max_clients=100, max_clock=2**32
    )
    return copy


async def send(world: World, role: Role, doc: DocumentName, data: bytes) -> ErrorCode | None:
    try:
        await world.notes.apply(world.consult_id, world.ids[role], role, str(doc), data)
    except TriadError as refused:
        return refused.code
    return None


@pytest.fixture
async def quick_world(database_url: str) -> Any:
    world = await make_world(database_url, max_update_bytes=64 * 1024, reorder_wait=0.2)
    try:
        yield world
    finally:
        await world.notes.close()
        await world.db.close()


@pytest.mark.parametrize("attack", list(ATTACKS))
async def test_attack_sequence_leaves_a_document_that_syncs_and_freezes(
    quick_world: World, attack: str
) -> None:
    world = quick_world
    client = world.peers[Role.CLIENT]
    before = client.edit(CLIENT, text_question("Before"))
    assert await send(world, Role.CLIENT, CLIENT, before) is None
    answers = [await send(world, Role.CLIENT, CLIENT, data) for data in ATTACKS[attack]]
    # Every hostile update has a coded refusal; the ordinary steps pass.
    for data, answer in zip(ATTACKS[attack], answers, strict=True):
        expected = None if data in ORDINARY_STEPS else ErrorCode.NOTES_UPDATE_INVALID
        assert answer is expected, (attack, answer)
    accepted = sum(answer is None for answer in answers)
    assert await log_rows(world, CLIENT) == 1 + accepted
    copy = await synced_copy(world.notes, world, CLIENT)
    assert "Before" in str(copy.get("questions", type=pycrdt.Array).to_py())
    # A later ordinary edit still goes through, and the plan freezes with it.
    after = client.edit(CLIENT, text_question("After"))
    assert await send(world, Role.CLIENT, CLIENT, after) is None
    await world.record_room_event(Role.CLIENT, "participant.admitted", utc_now())
    await world.end()
    plan = await world.notes.finalize(world.consult_id)
    assert [q for q in plan.content.client_questions if q in ("Before", "After")] == [
        "Before",
        "After",
    ]
    await world.restart(reorder_wait=0.2)
    await synced_copy(world.notes, world, CLIENT)


def text_question(words: str) -> Any:
    def change(doc: pycrdt.Doc[Any]) -> None:
        doc.get("questions", type=pycrdt.Array).append(words)

    return change


async def test_a_log_poisoned_before_the_checks_is_healed_on_load(world: World) -> None:
    """Rows the old code acknowledged (the 76-byte attack) are skipped when the document is
    rebuilt: the rest of it syncs and the plan freezes."""
    client = world.peers[Role.CLIENT]
    keep = client.edit(CLIENT, text_question("Keep"))
    assert await send(world, Role.CLIENT, CLIENT, keep) is None
    poison = [
        update(C, 2**32 - 1, entry("x" * 20, parent_root="questions")),
        update(C, 0, entry("y" * 20, parent_root="questions")),
    ]
    await write_unchecked_rows(world, poison, sections=("client_questions",))
    await world.restart()
    copy = await synced_copy(world.notes, world, CLIENT)
    assert sorted(copy.get("questions", type=pycrdt.Array).to_py()) == ["Keep", "y" * 20]
    await world.end()
    plan = await world.notes.finalize(world.consult_id)
    assert "Keep" in plan.content.client_questions


async def test_the_document_size_cap_refuses_and_changes_nothing(database_url: str) -> None:
    world = await make_world(database_url, max_update_bytes=4096, max_document_bytes=6000)
    try:
        therapist = world.peers[Role.THERAPIST]
        refused = None
        for i in range(20):
            before_rows = await log_rows(world, PLAN)
            before = intake.state_of(await synced_copy(world.notes, world, PLAN))
            data = therapist.edit(PLAN, text("summary", f"[{i}]" + "x" * 1000))
            refused = await send(world, Role.THERAPIST, PLAN, data)
            if refused is not None:
                break
        assert refused is ErrorCode.NOTES_DOCUMENT_TOO_LARGE
        assert await log_rows(world, PLAN) == before_rows
        assert intake.state_of(await synced_copy(world.notes, world, PLAN)) == before
        # The server's copy was never touched: a small edit of someone else still fits.
        psychiatrist = world.peers[Role.PSYCHIATRIST]
        await psychiatrist.sync(PLAN)
        small = psychiatrist.edit(PLAN, text("safety", "no risk"))
        assert await send(world, Role.PSYCHIATRIST, PLAN, small) is None
    finally:
        await world.notes.close()
        await world.db.close()


async def test_updates_out_of_order_wait_for_each_other(quick_world: World) -> None:
    world = quick_world
    therapist = world.peers[Role.THERAPIST]
    first = therapist.edit(PLAN, text("summary", "one "))
    second = therapist.edit(PLAN, text("summary", "two"))
    later = asyncio.create_task(send(world, Role.THERAPIST, PLAN, second))
    await asyncio.sleep(0)
    assert await send(world, Role.THERAPIST, PLAN, first) is None
    assert await later is None
    copy = await synced_copy(world.notes, world, PLAN)
    assert str(copy.get("summary", type=pycrdt.Text)) == "one two"


async def test_a_gap_never_filled_is_refused_after_the_wait(quick_world: World) -> None:
    world = quick_world
    therapist = world.peers[Role.THERAPIST]
    therapist.edit(PLAN, text("summary", "never sent "))
    second = therapist.edit(PLAN, text("summary", "orphan"))
    assert await send(world, Role.THERAPIST, PLAN, second) is ErrorCode.NOTES_UPDATE_INVALID
    assert await log_rows(world, PLAN) == 0


async def test_a_hostile_state_vector_in_sync_is_refused(world: World) -> None:
    for vector in (b"\x01\x07" + varuint(2**64 - 1), b"\x05", varuint(2**40), b"\x01\x07\x00\x00"):
        with pytest.raises(TriadError) as refused:
            await world.notes.sync(world.consult_id, Role.CLIENT, "client", vector)
        assert refused.value.code is ErrorCode.NOTES_UPDATE_INVALID
    reply = await world.notes.sync(world.consult_id, Role.CLIENT, "client", b"\x00")
    assert reply.state_vector == b"\x00"


def test_a_real_panic_of_the_library_is_caught_as_a_failure() -> None:
    # Bytes the pre-scan refuses, applied straight to pycrdt: yrs divides by zero and panics.
    panicking = update(C, 2**32 + 1, string_item("b", origin=(C, 0)))

    def prepared() -> pycrdt.Doc[Any]:
        doc: pycrdt.Doc[Any] = pycrdt.Doc()
        doc.apply_update(update(C, 0, string_item("a", parent_root="questions")))
        doc.apply_update(update(C, 1, Struct(GC, varuint(2**32))))
        return doc

    raw_doc = prepared()
    with pytest.raises(BaseException, match="divide by zero") as raw:
        raw_doc.apply_update(panicking)
    assert not isinstance(
        raw.value, Exception
    )  # pyo3's PanicException: `except Exception` misses it
    guarded_doc = prepared()
    with pytest.raises(CrdtFailure):
        intake.apply_update(guarded_doc, panicking)


@pytest.mark.parametrize("stop", [KeyboardInterrupt, SystemExit, asyncio.CancelledError])
def test_the_guard_never_swallows_a_stop(stop: type[BaseException]) -> None:
    def stopping() -> None:
        raise stop()

    with pytest.raises(stop):
        intake.guarded(stopping)


async def test_an_update_from_the_client_role_to_another_root_is_refused(world: World) -> None:
    for root in ("summary", "notes", "constructor"):
        data = update(C, 0, string_item("a", parent_root=root))
        assert await send(world, Role.CLIENT, CLIENT, data) is ErrorCode.NOTES_UPDATE_INVALID
    assert await send(world, Role.CLIENT, CLIENT, ORDINARY) is None
