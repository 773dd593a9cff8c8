"""Follow-ups: a follow-up's plan and client documents start from the earlier consult's final
state (seeded once, durably, sealed for the new consult, without the earlier authors); the
clinicians' document starts empty; the saved plans of a series are versions 1, 2, 3 and a diff
names what changed."""

from __future__ import annotations

import asyncio
from typing import Any

import pycrdt
import pytest
from sqlalchemy import func, select

from server.auth.roles import Role
from server.crypto import SealError
from server.db.models import NoteSnapshot, NoteUpdate
from server.errors import ErrorCode, TriadError
from server.notes import schema
from server.notes.diff import ChangeKind
from server.notes.documents import DocumentName
from server.notes.fhir import build_bundle
from server.notes.log import snapshot_aad
from server.notes.plan import PreviousPlanRef
from tests.notes.conftest import World
from tests.notes.plans import type_a_consult
from tests.notes.series import Browser, new_consult

PLAN, CLIENT, CLINICIANS = DocumentName.PLAN, DocumentName.CLIENT, DocumentName.CLINICIANS
ADDED, CHANGED = ChangeKind.ADDED, ChangeKind.CHANGED


async def first_plan(world: World) -> Any:
    await type_a_consult(world)
    await world.end()
    return await world.notes.finalize(world.consult_id)


def raise_the_dose(doc: pycrdt.Doc[Any]) -> None:
    doc.get("medications", type=pycrdt.Array)[0]["dose"] = "100 mg"


def add_goal(text: str) -> Any:
    def change(doc: pycrdt.Doc[Any]) -> None:
        doc.get("therapy_goals", type=pycrdt.Array).append(text)

    return change


async def snapshot_row(world: World, consult_id: str, doc: DocumentName) -> Any:
    async with world.db.engine.connect() as conn:
        return (
            await conn.execute(
                select(NoteSnapshot.seq, NoteSnapshot.authors, NoteSnapshot.sealed).where(
                    NoteSnapshot.consult_id == consult_id, NoteSnapshot.doc == str(doc)
                )
            )
        ).one()


async def row_count(
    world: World, table: type[NoteSnapshot] | type[NoteUpdate], consult_id: str, doc: DocumentName
) -> int:
    where = (table.consult_id == consult_id) & (table.doc == str(doc))
    async with world.db.engine.connect() as conn:
        count = await conn.execute(select(func.count()).select_from(table).where(where))
    return count.scalar_one()


async def test_a_follow_up_starts_from_the_saved_plan_and_becomes_version_2(
    world: World,
) -> None:
    first = await first_plan(world)
    follow = await new_consult(world, follows=world.consult_id)
    assert (follow.follows_id, follow.series_id) == (world.consult_id, world.consult_id)
    psychiatrist = Browser(world.notes, follow, Role.PSYCHIATRIST)
    therapist = Browser(world.notes, follow, Role.THERAPIST)
    client = Browser(world.notes, follow, Role.CLIENT)

    # Everyone opens the follow-up and finds the earlier plan and the client's own notes.
    seeded, _ = schema.read_plan(await client.sync(PLAN), await client.sync(CLIENT))
    assert seeded == first.content
    # The clinicians' private document is per consult: it starts empty.
    assert schema.read_clinicians(await therapist.sync(CLINICIANS)) == ""
    # Nothing changed yet.
    assert await world.notes.changes_since_previous(follow.id) == (
        PreviousPlanRef(world.consult_id, first.id, 1),
        [],
    )

    await psychiatrist.edit(PLAN, raise_the_dose)
    await therapist.edit(PLAN, add_goal("Return to the running club"))
    previous, changes = await world.notes.changes_since_previous(follow.id)
    assert previous == PreviousPlanRef(world.consult_id, first.id, 1)
    assert [(c.path, c.section, c.kind) for c in changes] == [
        ("medications[0].dose", "medications", CHANGED),
        ("therapy_goals[2]", "therapy_goals", ADDED),
    ]

    await world.consults.end(world.caller, follow.id)
    second = await world.notes.finalize(follow.id)
    assert (second.version, second.previous, second.series_id) == (
        2,
        PreviousPlanRef(world.consult_id, first.id, 1),
        world.consult_id,
    )
    assert second.content.medications[0].dose == "100 mg"
    assert second.content.diagnoses == first.content.diagnoses
    assert second.content.client_goals == first.content.client_goals
    # Authors are of this consult only: the seeded diagnoses were written in the first one.
    ids = {p.role: p.id for p in follow.participants}
    who = {s: [a.participant_id for a in refs] for s, refs in second.authors.items()}
    assert who["diagnoses"] == []
    assert who["summary"] == []
    assert who["medications"] == [ids[Role.PSYCHIATRIST]]
    assert who["therapy_goals"] == [ids[Role.THERAPIST]]
    assert await world.notes.plan(follow.id) == second
    assert "Follows version 1" in (await world.notes.plan_markdown(follow.id) or "")

    # The series lists both plans in order; the diff between them names the same changes.
    series = await world.notes.series_plans(world.consult_id)
    assert [(p.consult_id, p.plan_id, p.version) for p in series] == [
        (world.consult_id, first.id, 1),
        (follow.id, second.id, 2),
    ]
    assert series[0].to_json()["created_at"] == first.created_at.isoformat()
    *_plans, diffed = await world.notes.diff_plans(world.consult_id, follow.id)
    assert diffed == changes
    # After the end, the changes since the previous plan are those of the saved plan.
    assert await world.notes.changes_since_previous(follow.id) == (previous, changes)

    # A third consult follows the second: version 3, starting from the second's plan.
    third = await new_consult(world, follows=follow.id)
    assert third.series_id == world.consult_id
    reader = Browser(world.notes, third, Role.CLIENT)
    content, _ = schema.read_plan(await reader.sync(PLAN), await reader.sync(CLIENT))
    assert content == second.content
    await world.consults.end(world.caller, third.id)
    last = await world.notes.finalize(third.id)
    assert (last.version, last.previous) == (3, PreviousPlanRef(follow.id, second.id, 2))
    assert [p.version for p in await world.notes.series_plans(world.consult_id)] == [1, 2, 3]
    # In FHIR, each plan's CarePlan names the one it replaces by that one's identifier.
    earlier = build_bundle(second)["entry"][0]["resource"]
    later = build_bundle(last)["entry"][0]["resource"]
    assert later["replaces"][0]["identifier"] == earlier["identifier"][0]
    assert "replaces" not in build_bundle(first)["entry"][0]["resource"]


async def test_the_seed_is_written_once_sealed_for_the_follow_up_and_survives_a_restart(
    world: World,
) -> None:
    await first_plan(world)
    follow = await new_consult(world, follows=world.consult_id)
    psychiatrist = Browser(world.notes, follow, Role.PSYCHIATRIST)
    await psychiatrist.sync(PLAN)

    seq, authors, sealed = await snapshot_row(world, follow.id, PLAN)
    assert (seq, authors) == (0, {})  # the seed: before any update, written by nobody here
    world.keyring.open(sealed, snapshot_aad(follow.id, "plan", 0))
    with pytest.raises(SealError):  # bound to the follow-up, not to the consult it came from
        world.keyring.open(sealed, snapshot_aad(world.consult_id, "plan", 0))

    await psychiatrist.edit(PLAN, raise_the_dose)
    notes = await world.restart()
    fresh = Browser(notes, follow, Role.THERAPIST)
    content, _ = schema.read_plan(await fresh.sync(PLAN), await fresh.sync(CLIENT))
    assert content.medications[0].dose == "100 mg"
    assert content.summary == "Low mood and poor sleep since spring; nightmareflux."
    # Loaded from the stored seed, not seeded again (a new seal would differ: random nonce).
    assert (await snapshot_row(world, follow.id, PLAN)).sealed == sealed
    assert await row_count(world, NoteUpdate, follow.id, PLAN) == 1
    # The clinicians' document was never seeded: no snapshot row until it is written.
    await fresh.sync(CLINICIANS)
    assert await row_count(world, NoteSnapshot, follow.id, CLINICIANS) == 0


async def test_changes_of_a_follow_up_nobody_opened_yet(world: World) -> None:
    first = await first_plan(world)
    follow = await new_consult(world, follows=world.consult_id)
    notes = await world.restart()
    # Asked before any browser opened it (say, the room's first REST call): seeded, unchanged.
    assert await notes.changes_since_previous(follow.id) == (
        PreviousPlanRef(world.consult_id, first.id, 1),
        [],
    )
    seed = await snapshot_row(world, follow.id, PLAN)
    assert seed.seq == 0
    await Browser(notes, follow, Role.PSYCHIATRIST).edit(PLAN, raise_the_dose)
    assert (await snapshot_row(world, follow.id, PLAN)).sealed == seed.sealed
    _, changes = await notes.changes_since_previous(follow.id)
    assert [(c.path, c.kind) for c in changes] == [("medications[0].dose", CHANGED)]


async def test_two_processes_opening_a_follow_up_at_once_agree_on_the_seed(world: World) -> None:
    first = await first_plan(world)
    follow = await new_consult(world, follows=world.consult_id)
    other = world.service()
    try:
        one, two = Browser(world.notes, follow, Role.CLIENT), Browser(other, follow, Role.CLIENT)
        await asyncio.gather(one.sync(PLAN), two.sync(PLAN), one.sync(CLIENT), two.sync(CLIENT))
    finally:
        await other.close()
    for browser in (one, two):
        content, _ = schema.read_plan(browser.docs[PLAN], browser.docs[CLIENT])
        assert content == first.content
    assert (await snapshot_row(world, follow.id, PLAN)).seq == 0


async def test_a_first_consult_has_no_previous_plan(world: World) -> None:
    assert await world.notes.changes_since_previous(world.consult_id) == (None, [])
    plan = await first_plan(world)
    assert (plan.version, plan.previous, plan.series_id) == (1, None, world.consult_id)
    assert await world.notes.changes_since_previous(world.consult_id) == (None, [])
    assert [p.plan_id for p in await world.notes.series_plans(world.consult_id)] == [plan.id]


async def test_diffs_need_two_saved_plans_of_one_series(world: World) -> None:
    await first_plan(world)
    follow = await new_consult(world, follows=world.consult_id)
    with pytest.raises(TriadError) as raised:
        await world.notes.diff_plans(world.consult_id, follow.id)
    assert raised.value.code == ErrorCode.PLAN_NOT_FOUND
    elsewhere = await new_consult(world)
    await world.consults.end(world.caller, elsewhere.id)
    await world.notes.finalize(elsewhere.id)
    with pytest.raises(TriadError) as raised:
        await world.notes.diff_plans(world.consult_id, elsewhere.id)
    assert raised.value.code == ErrorCode.VALIDATION_FAILED
    assert await world.notes.series_plans(follow.id) == []  # not a series id: nothing saved
