"""The plan frozen at the consult's end: its content, authors, attendance and version; once and
only once under racing ends; read-only afterwards; Markdown and FHIR renderings."""

from __future__ import annotations

import asyncio
from datetime import date

import pycrdt
import pytest
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import func, select

from server.auth.roles import Role
from server.db.models import NoteUpdate, Plan
from server.errors import ErrorCode, TriadError
from server.notes.content import DiagnosisStatus, MedicationAction
from server.notes.fhir import ICD10_SYSTEM, build_bundle
from server.notes.markdown import render
from tests.notes.conftest import World
from tests.notes.plans import CLINICIANS, PLAN, START, items, text, type_a_consult


async def plan_rows(world: World) -> int:
    async with world.db.sessions() as session:
        count: int = await session.scalar(select(func.count()).select_from(Plan))
    return count


async def test_the_plan_holds_what_was_typed_with_authors_and_attendance(world: World) -> None:
    await type_a_consult(world)
    await world.end()
    plan = await world.notes.finalize(world.consult_id)
    ids = world.ids
    c = plan.content
    assert plan.version == 1
    assert plan.consult_id == world.consult_id
    assert c.summary == "Low mood and poor sleep since spring; nightmareflux."
    assert [(d.name, d.icd10, d.status) for d in c.diagnoses] == [
        ("Major depressive disorder, single episode", "F32.1", DiagnosisStatus.CONFIRMED),
        ("Insomnia", None, DiagnosisStatus.PROVISIONAL),
        ("Rule out bipolar II", None, DiagnosisStatus.PROVISIONAL),
    ]
    sertraline, zolpidem = c.medications
    assert (sertraline.name, sertraline.dose, sertraline.schedule, sertraline.action) == (
        "Sertraline",
        "50 mg",
        "once daily",
        MedicationAction.START,
    )
    assert sertraline.side_effects == "nausea, Zolpiquinex-like agitation"
    assert zolpidem.action == MedicationAction.STOP
    assert c.therapy_focus == "CBT-I and behavioural activation"
    assert c.therapy_goals == ("Walk daily", "Sleep by 23:00")
    assert [(m.measure, m.when) for m in c.monitoring] == [("PHQ-9", "every 2 weeks")]
    assert (c.follow_up.date, c.follow_up.with_whom) == (date(2026, 12, 15), "Dr. Nair")
    assert c.client_questions == ("Will it make me drowsy?",)
    assert c.client_goals == ("Brightwaterhope: back to work",)
    # Repairs are named by place, never by what was typed.
    assert plan.warnings == (
        "diagnoses[2].icd10: not an ICD-10 code; left out",
        "diagnoses[2].status: not provisional or confirmed; read as provisional",
    )
    who = {s: [(a.participant_id, a.role) for a in refs] for s, refs in plan.authors.items()}
    assert who["summary"] == [(ids[Role.THERAPIST], Role.THERAPIST)]
    assert who["diagnoses"] == [(ids[Role.PSYCHIATRIST], Role.PSYCHIATRIST)]
    assert who["client_questions"] == [(ids[Role.CLIENT], Role.CLIENT)]
    assert "clinicians_notes" not in who
    attendance = {a.role: a for a in plan.attendance}
    assert all(a.attended for a in attendance.values())
    assert attendance[Role.CLIENT].first_admitted_at == START
    assert attendance[Role.CLIENT].last_left_at is not None
    assert attendance[Role.THERAPIST].last_left_at is None
    assert attendance[Role.PSYCHIATRIST].name == "Priya Nair"
    # The saved record reads back the same, and never carries the clinicians' notes.
    assert await world.notes.plan(world.consult_id) == plan
    assert "Quietmorrowplan" not in str(plan.to_json())
    assert "Quietmorrowplan" in await world.notes.clinicians_notes(world.consult_id)


async def test_racing_finalizes_and_ends_save_one_plan(world: World) -> None:
    therapist = world.peers[Role.THERAPIST]
    await therapist.send(PLAN, therapist.edit(PLAN, text("summary", "One plan.")))
    plans = await asyncio.gather(
        world.end(),
        world.notes.finalize(world.consult_id),
        world.end(),
        world.notes.finalize(world.consult_id),
        world.notes.finalize(world.consult_id),
    )
    ids = {p.id for p in plans if p is not None}
    assert len(ids) == 1
    assert await plan_rows(world) == 1
    # A second process finalizing later (the empty-room timer elsewhere) gets the same plan.
    other = world.service()
    try:
        later = await other.finalize(world.consult_id)
    finally:
        await other.close()
    assert later.id in ids
    assert await plan_rows(world) == 1


async def test_two_services_racing_save_one_plan(world: World) -> None:
    other = world.service()
    try:
        first, second = await asyncio.gather(
            world.notes.finalize(world.consult_id), other.finalize(world.consult_id)
        )
    finally:
        await other.close()
    assert first.id == second.id
    assert await plan_rows(world) == 1


async def test_after_the_end_updates_are_refused_and_sync_still_answers(world: World) -> None:
    therapist = world.peers[Role.THERAPIST]
    await therapist.send(PLAN, therapist.edit(PLAN, text("summary", "Final words.")))
    await world.end()
    await world.notes.finalize(world.consult_id)
    late = therapist.edit(PLAN, text("summary", " Too late."))
    for notes in (world.notes, await world.restart()):
        with pytest.raises(TriadError) as raised:
            await notes.apply(
                world.consult_id, world.ids[Role.THERAPIST], Role.THERAPIST, "plan", late
            )
        assert raised.value.code == ErrorCode.CONSULT_ENDED
        reply = await notes.sync(world.consult_id, Role.CLIENT, "plan", b"\x00")
        fresh: pycrdt.Doc[object] = pycrdt.Doc()
        fresh.apply_update(reply.update)
        assert str(fresh.get("summary", type=pycrdt.Text)) == "Final words."
    # The final snapshot compacted the log.
    async with world.db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(NoteUpdate)) == 0


async def test_a_malformed_document_freezes_without_a_crash(world: World) -> None:
    therapist = world.peers[Role.THERAPIST]

    def wrong_types(doc: pycrdt.Doc[object]) -> None:
        doc.get("diagnoses", type=pycrdt.Array).append("just a string")
        doc.get("diagnoses", type=pycrdt.Array).append(pycrdt.Map({"icd10": "F41.1"}))
        doc.get("medications", type=pycrdt.Array).append(
            pycrdt.Map({"name": "Bupropion", "action": "double it", "dose": 150})
        )
        doc.get("monitoring", type=pycrdt.Array).append(pycrdt.Map({"measure": True}))
        doc.get("follow_up", type=pycrdt.Map)["date"] = "in four weeks"
        doc.get("therapy_goals", type=pycrdt.Array).append(pycrdt.Array([1]))

    await therapist.send(PLAN, therapist.edit(PLAN, wrong_types))
    # A root docs/notes.md does not list is refused (issue 11), and the plan still freezes.
    with pytest.raises(TriadError) as refused:
        await therapist.send(PLAN, therapist.edit(PLAN, items("unknown_root", "ignored")))
    assert refused.value.code is ErrorCode.NOTES_UPDATE_INVALID
    plan = await world.notes.finalize(world.consult_id)
    c = plan.content
    assert c.diagnoses == ()
    assert [(m.name, m.dose, m.action) for m in c.medications] == [("Bupropion", "150", None)]
    assert c.monitoring == ()
    assert (c.follow_up.date, c.follow_up.when) == (None, "in four weeks")
    assert c.therapy_goals == ()
    assert plan.warnings == (
        "diagnoses[0]: not a map; left out",
        "diagnoses[1]: no name; left out",
        "medications[0].action: not start, adjust or stop; left unspecified",
        "therapy_goals[0]: not text; left out",
        "monitoring[0].measure: not text; left empty",
        "monitoring[0]: no measure; left out",
    )
    build_bundle(plan)  # still exports


async def test_markdown_renders_every_section_and_escapes_typed_text(world: World) -> None:
    await type_a_consult(world)
    plan = await world.notes.finalize(world.consult_id)
    md = await world.notes.plan_markdown(world.consult_id)
    assert md == render(plan)
    for heading in (
        "# Treatment plan",
        "## Attendance",
        "## Presenting summary",
        "## Diagnoses",
        "## Medications",
        "## Therapy",
        "## Monitoring",
        "## Follow-up",
        "## Safety considerations",
        "## The client's own notes",
        "## Authors",
    ):
        assert f"\n{heading}\n" in "\n" + md
    assert "Major depressive disorder, single episode (F32\\.1), confirmed" in md
    assert "**Sertraline**, start, 50 mg, once daily; side effects to watch: nausea" in md
    assert "crisis line \\<988\\> shared" in md
    assert "- When: 2026-12-15" in md
    assert "Quietmorrowplan" not in md
    assert "- Presenting summary: Sam Okafor (therapist)" in md


async def test_fhir_bundle_validates_and_carries_the_diagnoses_and_medications(
    world: World,
) -> None:
    await type_a_consult(world)
    await world.end()
    plan = await world.notes.finalize(world.consult_id)
    bundle = build_bundle(plan)
    assert build_bundle(plan) == bundle  # deterministic
    Bundle.model_validate(bundle)
    assert bundle["type"] == "collection"
    by_type: dict[str, list[dict[str, object]]] = {}
    for entry in bundle["entry"]:
        assert entry["fullUrl"].startswith("urn:uuid:")
        by_type.setdefault(entry["resource"]["resourceType"], []).append(entry)
    assert {k: len(v) for k, v in by_type.items()} == {
        "CarePlan": 1,
        "Patient": 1,
        "Practitioner": 2,
        "Encounter": 1,
        "Condition": 3,
        "MedicationRequest": 2,
        "Goal": 3,
        "CareTeam": 1,
    }
    urls = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    care_plan = bundle["entry"][0]["resource"]
    assert (care_plan["status"], care_plan["intent"]) == ("active", "plan")
    assert urls[care_plan["subject"]["reference"]]["resourceType"] == "Patient"
    conditions = [urls[ref["reference"]] for ref in care_plan["addresses"]]
    first = conditions[0]
    assert first["code"]["text"] == "Major depressive disorder, single episode"
    assert first["code"]["coding"] == [{"system": ICD10_SYSTEM, "code": "F32.1"}]
    assert first["verificationStatus"]["coding"][0]["code"] == "confirmed"
    assert conditions[1]["verificationStatus"]["coding"][0]["code"] == "provisional"
    meds = [urls[a["reference"]["reference"]] for a in care_plan["activity"] if "reference" in a]
    assert [m["medicationCodeableConcept"]["text"] for m in meds] == ["Sertraline", "Zolpidem"]
    assert all(m["intent"] == "plan" for m in meds)
    assert meds[0]["dosageInstruction"] == [{"text": "50 mg, once daily"}]
    assert meds[1]["doNotPerform"] is True
    assert len(care_plan["goal"]) == 3
    team = urls[care_plan["careTeam"][0]["reference"]]
    assert [p["role"][0]["text"] for p in team["participant"]] == ["Therapist", "Psychiatrist"]
    encounter = next(
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Encounter"
    )
    assert encounter["class"]["code"] == "VR"
    assert "Quietmorrowplan" not in str(bundle)
    with pytest.raises(TriadError):
        await world.notes.apply(
            world.consult_id,
            world.ids[Role.THERAPIST],
            Role.THERAPIST,
            str(CLINICIANS),
            b"\x00\x00",
        )
