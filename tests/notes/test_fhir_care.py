"""The care workflow in the saved plan and its exports: check-in scores in the record, the
Markdown's monitoring section and the FHIR bundle (Observations); the consent records, current
at export time, as FHIR Consents (withdrawal and attestation included); the brief only linked."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from fhir.resources.R4B.bundle import Bundle

from server.auth.roles import Role
from server.consults.brief import BriefBook
from server.consults.care import CareFacts
from server.consults.checkins import CheckIns
from server.consults.consent import CONSENT_WORDING, ConsentBook, ConsentKind
from server.consults.measures import Severity
from server.consults.model import Actor, Brief
from server.notes.fhir import build_bundle
from server.notes.fhir_care import ASSENT_CATEGORY_TEXT
from server.notes.fhir_codes import PARTICIPANT_TYPE, PARTICIPATION_TYPE, ROLE_CODE
from server.notes.plan import PlanView
from tests.notes.conftest import World, utc_now
from tests.notes.plans import type_a_consult
from tests.notes.series import identity, new_consult

LOINC = "http://loinc.org"
SESSION, SHARING = "session", "information_sharing"
BRIEF_WORDS = "Brightwaterhope brief"


def resources(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def instant(value: str) -> datetime:
    return datetime.fromisoformat(value)


def by_url(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["fullUrl"]: e["resource"] for e in bundle["entry"]}


async def care_consult(world: World) -> tuple[PlanView, ConsentBook]:
    """Consent given by the client, two check-ins (PHQ-9 with item 9 above zero, then GAD-7),
    a brief attached, the consult typed, ended and saved."""
    consents = ConsentBook(world.db, world.keyring, utc_now)
    checkins = CheckIns(world.db, world.keyring, utc_now)
    client = identity(world.consult, Role.CLIENT)
    await consents.give(
        client, wording_version=CONSENT_WORDING.version, scopes=[SESSION, SHARING], attested=False
    )
    await checkins.record(client, "phq9", [2, 2, 1, 1, 2, 1, 1, 1, 1])
    await checkins.record(client, "gad7", [1, 1, 1, 1, 0, 0, 0])
    await BriefBook(world.db, world.keyring, utc_now).put(
        world.consult_id,
        Brief(question=BRIEF_WORDS),
        author_role="therapist",
        actor=Actor("participant", world.ids[Role.THERAPIST]),
    )
    await type_a_consult(world)
    await world.end()
    return await world.notes.finalize(world.consult_id), consents


async def test_the_plan_holds_the_scores_and_links_the_brief(world: World) -> None:
    plan, _ = await care_consult(world)
    phq9, gad7 = plan.measures
    assert (phq9.score.total, phq9.score.severity, phq9.score.item9_positive) == (
        12,
        Severity.MODERATE,
        True,
    )
    assert phq9.score.answers == (2, 2, 1, 1, 2, 1, 1, 1, 1)
    assert (gad7.score.total, gad7.score.severity, gad7.score.item9_positive) == (
        4,
        Severity.MINIMAL,
        False,
    )
    assert phq9.recorded_at <= gad7.recorded_at
    assert plan.brief_attached is True
    record = plan.to_json()
    assert record["measures"][0] == {
        "id": phq9.id,
        "instrument": "phq9",
        "answers": [2, 2, 1, 1, 2, 1, 1, 1, 1],
        "total": 12,
        "severity": "moderate",
        "item9_positive": True,
        "recorded_at": phq9.recorded_at.isoformat(),
    }
    assert BRIEF_WORDS not in str(record)  # linked, never copied
    assert PlanView.from_json(record) == plan
    assert await world.notes.plan(world.consult_id) == plan

    markdown = await world.notes.plan_markdown(world.consult_id) or ""
    day = phq9.recorded_at.strftime("%Y-%m-%d")
    monitoring = markdown.split("## Monitoring\n", 1)[1].split("\n## ", 1)[0]
    assert "- PHQ\\-9: every 2 weeks" in monitoring  # the monitoring plan as typed (escaped)
    assert "### Check-in scores" in monitoring
    assert (
        f"- PHQ-9: 12 (moderate), {day}; **item 9 (thoughts of self-harm) above zero**"
        in monitoring
    )
    assert f"- GAD-7: 4 (minimal), {gad7.recorded_at.strftime('%Y-%m-%d')}\n" in monitoring
    assert "hand-off brief from the therapist is attached" in markdown
    assert BRIEF_WORDS not in markdown


async def test_plans_saved_before_the_care_fields_read_back_with_defaults(world: World) -> None:
    await type_a_consult(world)
    plan = await world.notes.finalize(world.consult_id)
    old = plan.to_json()
    for key in ("measures", "previous", "series_id", "brief_attached"):
        del old[key]
    read = PlanView.from_json(old)
    assert (read.measures, read.previous, read.series_id, read.brief_attached) == (
        (),
        None,
        world.consult_id,
        False,
    )
    assert read == plan


async def test_fhir_observations_for_the_scores(world: World) -> None:
    plan, consents = await care_consult(world)
    bundle = build_bundle(plan, consents=(await consents.state(world.consult_id)).records)
    Bundle.model_validate(bundle)
    assert build_bundle(plan, consents=(await consents.state(world.consult_id)).records) == bundle
    urls = by_url(bundle)
    care_plan = bundle["entry"][0]["resource"]
    patient_url = care_plan["subject"]["reference"]
    phq9, gad7 = resources(bundle, "Observation")
    for observation in (phq9, gad7):
        assert observation["status"] == "final"
        assert observation["category"][0]["coding"][0]["code"] == "survey"
        assert observation["subject"] == {"reference": patient_url}
        assert urls[observation["encounter"]["reference"]]["resourceType"] == "Encounter"
        assert observation["performer"] == [{"reference": patient_url}]
    assert phq9["code"]["coding"][0] == {
        "system": LOINC,
        "code": "44261-6",
        "display": "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]",
    }
    assert (phq9["valueInteger"], phq9["interpretation"][0]["text"]) == (12, "moderate")
    assert instant(phq9["effectiveDateTime"]) == plan.measures[0].recorded_at
    (item9,) = phq9["component"]
    assert item9["code"]["coding"][0]["code"] == "44260-8"
    assert item9["valueInteger"] == 1
    assert item9["interpretation"][0]["coding"][0]["code"] == "A"
    assert gad7["code"]["coding"][0]["code"] == "70274-6"
    assert (gad7["valueInteger"], gad7["interpretation"][0]["text"]) == (4, "minimal")
    assert "component" not in gad7
    # The CarePlan points at every Observation and Consent.
    supporting = [urls[ref["reference"]]["resourceType"] for ref in care_plan["supportingInfo"]]
    assert supporting == ["Observation", "Observation", "Consent", "Consent"]
    assert any("Hand-off brief" in note["text"] for note in care_plan["note"])
    assert BRIEF_WORDS not in str(bundle)


async def test_fhir_consents_follow_the_current_records_including_a_withdrawal(
    world: World,
) -> None:
    plan, consents = await care_consult(world)
    state = await consents.state(world.consult_id)
    bundle = build_bundle(plan, consents=state.records)
    urls = by_url(bundle)
    session, sharing = resources(bundle, "Consent")
    patient_url = bundle["entry"][0]["resource"]["subject"]["reference"]
    practitioners = {url for url, r in urls.items() if r["resourceType"] == "Practitioner"}
    assert (session["scope"]["coding"][0]["code"], sharing["scope"]["coding"][0]["code"]) == (
        "treatment",
        "patient-privacy",
    )
    for consent, record in zip((session, sharing), state.records, strict=True):
        assert consent["status"] == "active"
        assert consent["patient"] == {"reference": patient_url}
        assert consent["performer"] == [{"reference": patient_url}]
        assert instant(consent["dateTime"]) == record.given_at
        assert consent["policyRule"]["coding"][0]["code"] == "OPTIN"
        provision = consent["provision"]
        assert provision["type"] == "permit"
        assert list(provision["period"]) == ["start"]
        assert instant(provision["period"]["start"]) == record.given_at
        assert {a["reference"]["reference"] for a in provision["actor"]} == practitioners
        assert provision["purpose"][0]["code"] == "TREAT"
        source = consent["sourceAttachment"]
        assert CONSENT_WORDING.version in source["title"]
        assert base64.b64decode(source["data"]).decode() == CONSENT_WORDING.texts[record.scope]
    assert sharing["category"][0]["coding"][0]["code"] == "64292-6"

    # The client withdraws sharing after the plan was saved; the export says so from then on.
    await consents.withdraw(identity(world.consult, Role.CLIENT), scopes=[SHARING])
    state = await consents.state(world.consult_id)
    withdrawn = state.latest(state.records[1].scope)
    assert withdrawn is not None
    assert withdrawn.withdrawn_at is not None
    later = build_bundle(plan, consents=state.records)
    Bundle.model_validate(later)
    session, sharing = resources(later, "Consent")
    assert (session["status"], sharing["status"]) == ("active", "inactive")
    assert instant(sharing["provision"]["period"]["end"]) == withdrawn.withdrawn_at
    assert "end" not in session["provision"]["period"]
    # Without consent records (the default), no Consent resources.
    assert resources(build_bundle(plan), "Consent") == []


async def test_fhir_consent_attested_by_the_therapist_names_the_therapist(world: World) -> None:
    consult = await new_consult(world)
    therapist = identity(consult, Role.THERAPIST)
    client_id = identity(consult, Role.CLIENT).participant_id
    care = CareFacts(world.db, world.keyring, CheckIns(world.db, world.keyring, utc_now), utc_now)
    await care.declare_present_with(therapist, [client_id])
    # The client confirms from their own token (the therapist's word alone would not do).
    await care.confirm_presence(identity(consult, Role.CLIENT), therapist.participant_id, client_id)
    consents = ConsentBook(world.db, world.keyring, utc_now)
    await consents.give(
        therapist, wording_version=CONSENT_WORDING.version, scopes=[SESSION, SHARING], attested=True
    )
    await world.consults.end(world.caller, consult.id)
    plan = await world.notes.finalize(consult.id)
    assert (plan.measures, plan.brief_attached) == ((), False)
    bundle = build_bundle(plan, consents=(await consents.state(consult.id)).records)
    Bundle.model_validate(bundle)
    assert resources(bundle, "Observation") == []
    urls = by_url(bundle)
    for consent in resources(bundle, "Consent"):
        (performer,) = consent["performer"]
        assert urls[performer["reference"]]["resourceType"] == "Practitioner"
        assert urls[performer["reference"]]["name"] == [{"text": "Sam Okafor"}]
        assert urls[consent["patient"]["reference"]]["resourceType"] == "Patient"


async def test_fhir_names_a_minors_guardian_and_the_interpreter_with_coded_roles(
    seated_world: World,
) -> None:
    """The guardian is a RelatedPerson of the patient (v3 RoleCode GUARD) and the interpreter a
    Practitioner (participant type `translator`), both in the CareTeam; in the Encounter only
    when they attended (the interpreter here never came); the guardian's consent is theirs."""
    world = seated_world
    for role in (Role.THERAPIST, Role.PSYCHIATRIST, Role.GUARDIAN, Role.CLIENT):
        await world.record_room_event(role, "participant.admitted", utc_now())
    consents = ConsentBook(world.db, world.keyring, utc_now)
    await consents.give(
        identity(world.consult, Role.GUARDIAN),
        wording_version=CONSENT_WORDING.version,
        scopes=[SESSION, SHARING],
        attested=False,
    )
    await world.end()
    plan = await world.notes.finalize(world.consult_id)
    records = (await consents.state(world.consult_id)).records
    bundle = build_bundle(plan, consents=records)
    Bundle.model_validate(bundle)
    assert build_bundle(plan, consents=records) == bundle  # deterministic
    urls = by_url(bundle)
    patient_url = bundle["entry"][0]["resource"]["subject"]["reference"]
    (guardian,) = resources(bundle, "RelatedPerson")
    assert guardian["name"] == [{"text": "Jordan Rivera"}]
    assert guardian["patient"] == {"reference": patient_url}
    assert guardian["relationship"][0]["coding"] == [
        {"system": ROLE_CODE, "code": "GUARD", "display": "Guardian"}
    ]

    (team,) = resources(bundle, "CareTeam")
    members = {m["role"][0]["text"]: m for m in team["participant"]}
    assert set(members) == {"Therapist", "Psychiatrist", "Guardian", "Interpreter"}
    assert urls[members["Guardian"]["member"]["reference"]] == guardian
    assert members["Guardian"]["role"][0]["coding"] == [
        {"system": ROLE_CODE, "code": "GUARD", "display": "Guardian"}
    ]
    interpreter = urls[members["Interpreter"]["member"]["reference"]]
    assert interpreter["resourceType"] == "Practitioner"
    assert interpreter["name"] == [{"text": "Lucia Moreno"}]
    assert members["Interpreter"]["role"][0]["coding"] == [
        {"system": PARTICIPANT_TYPE, "code": "translator", "display": "Translator"}
    ]

    (encounter,) = resources(bundle, "Encounter")
    present = {p["individual"]["reference"]: p.get("type") for p in encounter["participant"]}
    assert members["Interpreter"]["member"]["reference"] not in present
    assert present[members["Guardian"]["member"]["reference"]] == [
        {"coding": [{"system": PARTICIPATION_TYPE, "code": "PART", "display": "Participation"}]}
    ]
    assert len(present) == 3  # the two clinicians and the guardian

    # The minor's consent is the guardian's: they performed it, for the patient.
    assert [c["scope"]["coding"][0]["code"] for c in resources(bundle, "Consent")] == [
        "treatment",
        "patient-privacy",
    ]
    for consent in resources(bundle, "Consent"):
        assert consent["performer"] == [members["Guardian"]["member"]]
        assert consent["patient"] == {"reference": patient_url}
        # The interpreter receives nothing the consent releases: only the clinicians do.
        actors = {a["reference"]["reference"] for a in consent["provision"]["actor"]}
        assert members["Interpreter"]["member"]["reference"] not in actors
        assert actors == {members[t]["member"]["reference"] for t in ("Therapist", "Psychiatrist")}


async def test_fhir_exports_a_minors_assent_beside_the_guardians_consent(
    seated_world: World,
) -> None:
    """The minor's own word is a Consent of its own: the patient performs it, a second category
    says it is assent, and a withdrawn assent reads inactive with its end, while the
    guardian's consents keep their resources (and URLs) whether or not assent is exported."""
    world = seated_world
    consents = ConsentBook(world.db, world.keyring, utc_now)
    given = {"wording_version": CONSENT_WORDING.version, "attested": False}
    await consents.give(identity(world.consult, Role.GUARDIAN), scopes=[SESSION, SHARING], **given)
    minor = identity(world.consult, Role.CLIENT)
    await consents.give(minor, scopes=[SESSION, SHARING], **given)
    await consents.withdraw(minor, scopes=[SHARING])
    await world.end()
    plan = await world.notes.finalize(world.consult_id)
    state = await consents.state(world.consult_id)
    assert [a.scope for a in state.assent] == [SESSION, SHARING]

    bundle = build_bundle(plan, consents=state.records, assent=state.assent)
    Bundle.model_validate(bundle)
    assert build_bundle(plan, consents=state.records, assent=state.assent) == bundle
    urls = by_url(bundle)
    patient = bundle["entry"][0]["resource"]["subject"]
    (guardian,) = resources(bundle, "RelatedPerson")
    guardian_url = next(url for url, r in urls.items() if r == guardian)
    guardians_session, guardians_sharing, assent_session, assent_sharing = resources(
        bundle, "Consent"
    )
    for consent in (guardians_session, guardians_sharing):
        assert consent["performer"] == [{"reference": guardian_url}]
        assert consent["status"] == "active"  # the minor's withdrawal is theirs, not this
        assert [c.get("text") for c in consent["category"]] == [None]
    for consent, fact in zip((assent_session, assent_sharing), state.assent, strict=True):
        assert consent["patient"] == patient
        assert consent["performer"] == [patient]  # the minor themself
        assert consent["category"][1] == {"text": ASSENT_CATEGORY_TEXT}
        assert (
            consent["category"][0]
            == (guardians_session if fact.scope == SESSION else guardians_sharing)["category"][0]
        )
        assert consent["scope"]["coding"][0]["code"] == (
            "treatment" if fact.scope == SESSION else "patient-privacy"
        )
        assert consent["sourceAttachment"]["title"].startswith("Assent wording, version ")
        assert instant(consent["dateTime"]) == fact.given_at
    assert assent_session["status"] == "active"
    assert assent_sharing["status"] == "inactive"
    withdrawn = state.latest(state.assent[1].scope, ConsentKind.ASSENT)
    assert withdrawn is not None
    assert withdrawn.withdrawn_at is not None
    assert instant(assent_sharing["provision"]["period"]["end"]) == withdrawn.withdrawn_at
    # Every one is in the CarePlan's supporting information.
    supporting = [r["reference"] for r in bundle["entry"][0]["resource"]["supportingInfo"]]
    assert [urls[ref]["resourceType"] for ref in supporting] == ["Consent"] * 4

    # Without the assent, the guardian's consents are the same resources at the same URLs.
    alone = by_url(build_bundle(plan, consents=state.records))
    for url, resource in alone.items():
        if resource["resourceType"] == "Consent":
            assert urls[url] == resource
    assert sum(r["resourceType"] == "Consent" for r in alone.values()) == 2
