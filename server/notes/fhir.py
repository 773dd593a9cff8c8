"""The saved plan as a FHIR R4B Bundle (most EHRs speak R4), built and validated with
`fhir.resources.R4B`.

Every coded value is checked against its value set first (`fhir_codes.check`): the library
checks structure and types only. The clinicians' private notes are not in the plan record this
reads, so they cannot reach the bundle.

Resources refer to each other by `urn:uuid:` full URLs derived from the plan id, so exporting the
same plan twice (with the same consent records) gives the same bundle. The CarePlan also carries
its full URL as an identifier, so a follow-up's CarePlan can say which one it `replaces`.

The optional seats are in the CareTeam (and, when they attended, the Encounter) with coded
roles: a minor's guardian as a RelatedPerson of the patient (v3 RoleCode `GUARD`), who also
performs the consent they gave; an interpreter as a Practitioner with FHIR's participant type
`translator`.

Check-in scores are Observations and the client's consent records (and a minor's assent) are
Consents (`fhir_care`), all in the CarePlan's `supportingInfo`. Consent can be withdrawn after the
plan was saved, so the records are not part of the plan: the caller passes the current ones at
export time.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fhir.resources.R4B.bundle import Bundle

from ..auth.roles import Role
from ..consults.consent import ConsentFact
from .content import DiagnosisStatus, MedicationAction
from .fhir_care import consent, observation
from .fhir_codes import (
    ACT_CODE,
    CONDITION_CATEGORY,
    CONDITION_CLINICAL,
    CONDITION_VERIFICATION,
    ICD10_SYSTEM,
    PARTICIPANT_TYPE,
    PARTICIPATION_TYPE,
    ROLE_CODE,
    URI_IDENTIFIER,
    FhirCodeError,
)
from .fhir_codes import check as _check
from .fhir_codes import coding as _coding
from .plan import PlanView

__all__ = ["FHIR_JSON", "ICD10_SYSTEM", "FhirCodeError", "build_bundle"]

FHIR_JSON = "application/fhir+json"
_VERIFICATION = {
    DiagnosisStatus.PROVISIONAL: "provisional",
    DiagnosisStatus.CONFIRMED: "confirmed",
}


class _Builder:
    def __init__(self, plan: PlanView) -> None:
        self.plan = plan
        self.entries: list[dict[str, Any]] = []

    def url(self, kind: str, index: int = 0) -> str:
        return self.resource_url(self.plan.id, kind, index)

    @staticmethod
    def resource_url(plan_id: str, kind: str, index: int = 0) -> str:
        return "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"triad:{plan_id}:{kind}:{index}"))

    def add(self, url: str, resource: dict[str, Any]) -> dict[str, str]:
        self.entries.append({"fullUrl": url, "resource": resource})
        return {"reference": url}


@dataclass(frozen=True)
class _Seat:
    """How an optional seat is coded: its role in the care team, its part in the encounter."""

    title: str
    team_role: tuple[str, str, str]  # system, code, display
    encounter_type: tuple[str, str, str]


_SEATS: dict[Role, _Seat] = {
    Role.GUARDIAN: _Seat(
        "Guardian", (ROLE_CODE, "GUARD", "Guardian"), (PARTICIPATION_TYPE, "PART", "Participation")
    ),
    Role.INTERPRETER: _Seat(
        "Interpreter",
        (PARTICIPANT_TYPE, "translator", "Translator"),
        (PARTICIPANT_TYPE, "translator", "Translator"),
    ),
}


def _person(
    builder: _Builder, role: Role, patient: dict[str, str] | None = None
) -> dict[str, str] | None:
    """The participant of `role` as a resource: the client a Patient, a minor's guardian a
    RelatedPerson of `patient` (none without one), everyone else a Practitioner."""
    who = builder.plan.participant(role)
    if who is None:
        return None
    resource: dict[str, Any] = {"active": True, "name": [{"text": who.name}]}
    if role == Role.CLIENT:
        kind = "Patient"
    elif role == Role.GUARDIAN:
        if patient is None:
            return None
        kind = "RelatedPerson"
        relationship = _check("RelatedPerson.relationship", "GUARD")
        resource |= {
            "patient": patient,
            "relationship": [_coding(ROLE_CODE, relationship, "Guardian")],
        }
    else:
        kind = "Practitioner"
    return builder.add(
        builder.url(kind, list(Role).index(role)), {"resourceType": kind, **resource}
    )


def _coded(path: str, code: tuple[str, str, str], text: str | None = None) -> dict[str, Any]:
    system, value, display = code
    concept = _coding(system, _check(path, value), display)
    if text:
        concept["text"] = text
    return concept


def _attended(plan: PlanView, role: Role) -> bool:
    who = plan.participant(role)
    return who is not None and who.attended


def build_bundle(
    plan: PlanView, *, consents: Sequence[ConsentFact] = (), assent: Sequence[ConsentFact] = ()
) -> dict[str, Any]:
    """The plan as a validated FHIR R4B Bundle of type `collection`, as JSON. `consents` are
    the consult's current consent records and `assent` a minor's (one Consent resource each)."""
    b = _Builder(plan)
    c = plan.content
    created = plan.created_at.isoformat()
    patient = _person(b, Role.CLIENT)
    therapist = _person(b, Role.THERAPIST)
    psychiatrist = _person(b, Role.PSYCHIATRIST)
    clinicians = [p for p in (therapist, psychiatrist) if p is not None]
    seats = {role: _person(b, role, patient) for role in _SEATS}
    subject = patient or {"display": "client"}

    encounter: dict[str, Any] = {
        "resourceType": "Encounter",
        "status": _check("Encounter.status", "finished"),
        "class": {
            "system": ACT_CODE,
            "code": _check("Encounter.class", "VR"),
            "display": "virtual",
        },
        "subject": subject,
        "participant": [{"individual": p} for p in clinicians]
        + [
            {
                "type": [_coded("Encounter.participant.type", _SEATS[role].encounter_type)],
                "individual": ref,
            }
            for role, ref in seats.items()
            if ref is not None and _attended(plan, role)
        ],
    }
    period = {
        k: v.isoformat()
        for k, v in (("start", plan.consult_started_at), ("end", plan.consult_ended_at))
        if v is not None
    }
    if period:
        encounter["period"] = period
    encounter_ref = b.add(b.url("Encounter"), encounter)

    conditions = []
    for i, d in enumerate(c.diagnoses):
        code: dict[str, Any] = {"text": d.name}
        if d.icd10:
            code["coding"] = [{"system": ICD10_SYSTEM, "code": d.icd10}]
        condition: dict[str, Any] = {
            "resourceType": "Condition",
            "clinicalStatus": _coding(
                CONDITION_CLINICAL, _check("Condition.clinicalStatus", "active")
            ),
            "verificationStatus": _coding(
                CONDITION_VERIFICATION,
                _check("Condition.verificationStatus", _VERIFICATION[d.status]),
            ),
            "category": [
                _coding(CONDITION_CATEGORY, _check("Condition.category", "encounter-diagnosis"))
            ],
            "code": code,
            "subject": subject,
            "encounter": encounter_ref,
            "recordedDate": created,
        }
        if psychiatrist is not None:
            condition["asserter"] = psychiatrist
        conditions.append(b.add(b.url("Condition", i), condition))

    activities: list[dict[str, Any]] = []
    for i, m in enumerate(c.medications):
        request: dict[str, Any] = {
            "resourceType": "MedicationRequest",
            "status": _check("MedicationRequest.status", "active"),
            # A recommendation agreed in the consult, not an order to dispense.
            "intent": _check("MedicationRequest.intent", "plan"),
            "medicationCodeableConcept": {"text": m.name},
            "subject": subject,
            "encounter": encounter_ref,
            "authoredOn": created,
        }
        if m.action == MedicationAction.STOP:
            request["doNotPerform"] = True  # the plan is to stop taking it
        if psychiatrist is not None:
            request["requester"] = psychiatrist
        dosage = ", ".join(p for p in (m.dose, m.schedule) if p)
        if dosage:
            request["dosageInstruction"] = [{"text": dosage}]
        notes = [f"Plan: {m.action}" if m.action else "Plan: action not specified"]
        if m.side_effects:
            notes.append(f"Side effects to watch: {m.side_effects}")
        request["note"] = [{"text": n} for n in notes]
        activities.append({"reference": b.add(b.url("MedicationRequest", i), request)})

    for item in c.monitoring:
        detail: dict[str, Any] = {
            "kind": _check("CarePlan.activity.detail.kind", "ServiceRequest"),
            "code": {"text": item.measure},
            "status": _check("CarePlan.activity.detail.status", "not-started"),
            "description": f"Monitoring: {item.measure}" + (f", {item.when}" if item.when else ""),
        }
        if item.when:
            detail["scheduledString"] = item.when
        activities.append({"detail": detail})

    follow = c.follow_up
    if not follow.empty:
        detail = {
            "kind": _check("CarePlan.activity.detail.kind", "Appointment"),
            "status": _check(
                "CarePlan.activity.detail.status", "scheduled" if follow.date else "not-started"
            ),
            "description": "Follow-up" + (f" with {follow.with_whom}" if follow.with_whom else ""),
        }
        if follow.date is not None:
            detail["scheduledPeriod"] = {"start": follow.date.isoformat()}
        elif follow.when:
            detail["scheduledString"] = follow.when
        activities.append({"detail": detail})

    goals = []
    for kind, texts, by in (
        ("therapy", c.therapy_goals, therapist),
        ("client", c.client_goals, patient),
    ):
        for i, text in enumerate(texts):
            goal: dict[str, Any] = {
                "resourceType": "Goal",
                "lifecycleStatus": _check("Goal.lifecycleStatus", "active"),
                "description": {"text": text},
                "subject": subject,
            }
            if by is not None:
                goal["expressedBy"] = by
            goals.append(b.add(b.url(f"Goal-{kind}", i), goal))

    care_team = b.add(
        b.url("CareTeam"),
        {
            "resourceType": "CareTeam",
            "status": _check("CareTeam.status", "active"),
            "name": "Collaborative care team",
            "subject": subject,
            "encounter": encounter_ref,
            "participant": [
                {"role": [{"text": title}], "member": ref}
                for title, ref in (("Therapist", therapist), ("Psychiatrist", psychiatrist))
                if ref is not None
            ]
            + [
                {
                    "role": [_coded("CareTeam.participant.role", seat.team_role, seat.title)],
                    "member": ref,
                }
                for role, seat in _SEATS.items()
                if (ref := seats[role]) is not None
            ],
        },
    )

    # participant id -> the resource that is them, for the consents' performers
    people: dict[str, dict[str, str]] = {}
    for role, ref in (
        (Role.CLIENT, patient),
        (Role.THERAPIST, therapist),
        (Role.PSYCHIATRIST, psychiatrist),
        (Role.GUARDIAN, seats[Role.GUARDIAN]),  # who gives a minor's consent
    ):
        who = plan.participant(role)
        if who is not None and ref is not None:
            people[who.participant_id] = ref
    supporting = [
        b.add(b.url("Observation", i), observation(m, subject, encounter_ref, patient))
        for i, m in enumerate(plan.measures)
    ]
    supporting += [
        b.add(b.url("Consent", i), consent(fact, patient, people, clinicians))
        for i, fact in enumerate(consents)
    ]
    # Numbered apart, so a consent's resource keeps its URL whether or not assent is exported.
    supporting += [
        b.add(b.url("Consent-assent", i), consent(fact, patient, people, clinicians))
        for i, fact in enumerate(assent)
    ]

    care_plan: dict[str, Any] = {
        "resourceType": "CarePlan",
        "identifier": [{"system": URI_IDENTIFIER, "value": b.url("CarePlan")}],
        "status": _check("CarePlan.status", "active"),
        "intent": _check("CarePlan.intent", "plan"),
        "title": "Collaborative treatment plan",
        "subject": subject,
        "encounter": encounter_ref,
        "created": created,
        "careTeam": [care_team],
    }
    if c.summary:
        care_plan["description"] = c.summary
    if psychiatrist is not None:
        care_plan["author"] = psychiatrist
    if clinicians:
        care_plan["contributor"] = clinicians
    if conditions:
        care_plan["addresses"] = conditions
    if goals:
        care_plan["goal"] = goals
    if activities:
        care_plan["activity"] = activities
    if supporting:
        care_plan["supportingInfo"] = supporting
    if plan.previous is not None:
        # The earlier plan of the series, by the identifier its own export carries.
        earlier = _Builder.resource_url(plan.previous.plan_id, "CarePlan")
        care_plan["replaces"] = [
            {
                "identifier": {"system": URI_IDENTIFIER, "value": earlier},
                "display": f"Treatment plan, version {plan.previous.version}",
            }
        ]
    notes = [
        f"{title}: {text}"
        for title, text in (
            ("Therapy focus", c.therapy_focus),
            ("Safety considerations", c.safety),
            ("Client's questions", "; ".join(c.client_questions)),
            (
                "Hand-off brief",
                "attached to the consult by the therapist (for the clinicians only)"
                if plan.brief_attached
                else "",
            ),
        )
        if text
    ]
    if notes:
        care_plan["note"] = [{"text": n} for n in notes]
    # The CarePlan first: it is what a reader of the bundle looks for.
    b.entries.insert(0, {"fullUrl": b.url("CarePlan"), "resource": care_plan})

    bundle = Bundle.model_validate(
        {
            "resourceType": "Bundle",
            "type": _check("Bundle.type", "collection"),
            "timestamp": created,
            "entry": b.entries,
        }
    )
    result: dict[str, Any] = bundle.model_dump(mode="json", by_alias=True, exclude_none=True)
    return result
