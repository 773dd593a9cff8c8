"""Plan diffs: changes named by path, section and kind, items matched by what identifies them,
and never a word of clinical text in a change."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from server.notes.content import (
    Diagnosis,
    DiagnosisStatus,
    FollowUp,
    Medication,
    MedicationAction,
    Monitoring,
    PlanContent,
)
from server.notes.diff import ChangeKind, PlanChange, plan_changes

ADDED, REMOVED, CHANGED = ChangeKind.ADDED, ChangeKind.REMOVED, ChangeKind.CHANGED

BASE = PlanContent(
    summary="Low mood since spring",
    diagnoses=(
        Diagnosis("Major depressive disorder", "F32.1", DiagnosisStatus.PROVISIONAL),
        Diagnosis("Insomnia"),
    ),
    medications=(
        Medication("Sertraline", "50 mg", "once daily", MedicationAction.START, "nausea"),
        Medication("Zolpidem", action=MedicationAction.STOP),
    ),
    therapy_focus="CBT-I",
    therapy_goals=("Walk daily", "Sleep by 23:00"),
    monitoring=(Monitoring("PHQ-9", "every 2 weeks"),),
    follow_up=FollowUp(date(2026, 12, 15), "", "Dr. Nair"),
    safety="No current ideation",
    client_questions=("Will it make me drowsy?",),
    client_goals=("Back to work",),
)


def triples(changes: list[PlanChange]) -> list[tuple[str, str, ChangeKind]]:
    return [(c.path, c.section, c.kind) for c in changes]


def test_no_change_is_no_change() -> None:
    assert plan_changes(BASE, BASE) == []
    assert plan_changes(PlanContent(), PlanContent()) == []
    assert plan_changes(None, PlanContent()) == []


def test_a_follow_up_plan_names_each_changed_field() -> None:
    sertraline, zolpidem = BASE.medications
    mdd, insomnia = BASE.diagnoses
    new = replace(
        BASE,
        summary="Mood improving",
        diagnoses=(replace(mdd, status=DiagnosisStatus.CONFIRMED), insomnia),
        medications=(replace(sertraline, dose="100 mg", side_effects=""), zolpidem),
        therapy_focus="",
        monitoring=(Monitoring("PHQ-9", "every 2 weeks"), Monitoring("GAD-7")),
        follow_up=FollowUp(date(2027, 1, 12), "", "Dr. Nair"),
        safety="No current ideation",
        client_goals=("Back to work", "Run 5 km"),
    )
    assert triples(plan_changes(BASE, new)) == [
        ("summary", "summary", CHANGED),
        ("diagnoses[0].status", "diagnoses", CHANGED),
        ("medications[0].dose", "medications", CHANGED),
        ("medications[0].side_effects", "medications", REMOVED),
        ("therapy_focus", "therapy_focus", REMOVED),
        ("monitoring[1]", "monitoring", ADDED),
        ("follow_up.date", "follow_up", CHANGED),
        ("client_goals[1]", "client_goals", ADDED),
    ]


def test_items_are_matched_by_name_not_position() -> None:
    sertraline, zolpidem = BASE.medications
    # A new medication first, Zolpidem gone, Sertraline moved down and unchanged.
    new = replace(BASE, medications=(Medication("Mirtazapine", "15 mg"), sertraline))
    assert triples(plan_changes(BASE, new)) == [
        ("medications[0]", "medications", ADDED),
        ("medications[1]", "medications", REMOVED),  # Zolpidem's place in the older plan
    ]
    # Case and spacing of a name do not make another medication; the spelling is a change.
    renamed = replace(BASE, medications=(replace(sertraline, name="sertraline "), zolpidem))
    assert triples(plan_changes(BASE, renamed)) == [("medications[0].name", "medications", CHANGED)]


def test_a_diagnosis_renamed_under_the_same_code_is_the_same_diagnosis() -> None:
    mdd, insomnia = BASE.diagnoses
    new = replace(BASE, diagnoses=(insomnia, replace(mdd, name="MDD, single episode, moderate")))
    assert triples(plan_changes(BASE, new)) == [("diagnoses[1].name", "diagnoses", CHANGED)]
    coded = replace(BASE, diagnoses=(mdd, replace(insomnia, icd10="G47.0")))
    assert triples(plan_changes(BASE, coded)) == [("diagnoses[1].icd10", "diagnoses", ADDED)]


def test_a_reworded_goal_reads_as_removed_and_added() -> None:
    new = replace(BASE, therapy_goals=("Walk daily", "Sleep by 22:30"))
    assert triples(plan_changes(BASE, new)) == [
        ("therapy_goals[1]", "therapy_goals", ADDED),
        ("therapy_goals[1]", "therapy_goals", REMOVED),
    ]


def test_repeated_items_match_in_order() -> None:
    old = PlanContent(medications=(Medication("Lithium", "300 mg"), Medication("Lithium")))
    new = PlanContent(medications=(Medication("Lithium", "300 mg"),))
    assert triples(plan_changes(old, new)) == [("medications[1]", "medications", REMOVED)]


def test_against_no_plan_everything_is_added() -> None:
    changes = plan_changes(None, BASE)
    assert ("summary", "summary", ADDED) in triples(changes)
    assert ("medications[1]", "medications", ADDED) in triples(changes)
    assert ("follow_up.with_whom", "follow_up", ADDED) in triples(changes)
    assert {c.kind for c in changes} == {ADDED}
    assert {c.section for c in changes} == {
        "summary",
        "diagnoses",
        "medications",
        "therapy_focus",
        "therapy_goals",
        "monitoring",
        "follow_up",
        "safety",
        "client_questions",
        "client_goals",
    }


def test_changes_never_carry_the_text() -> None:
    new = replace(
        BASE,
        summary="Zolpiquinex",
        medications=(Medication("Brightwaterhope", "nightmareflux"),),
        client_goals=("Quietmorrowplan",),
    )
    serialised = str([c.to_json() for c in plan_changes(BASE, new)])
    for word in ("Zolpiquinex", "Brightwaterhope", "nightmareflux", "Quietmorrowplan"):
        assert word not in serialised
    for word in ("Sertraline", "Low mood", "Back to work"):
        assert word not in serialised
    assert plan_changes(BASE, new)[0].to_json() == {
        "path": "summary",
        "section": "summary",
        "kind": "changed",
    }
