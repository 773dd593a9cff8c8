"""The saved plan as a FHIR R4B Bundle (most EHRs speak R4), built and validated with
`fhir.resources.R4B`.

`fhir.resources` checks structure and types but not value-set bindings (it accepts
`status="bogus"`), so every coded value written here is checked against its value set first
(`_check`). The clinicians' private notes are not in the plan record this reads, so they cannot
reach the bundle.

Resources refer to each other by `urn:uuid:` full URLs derived from the plan id, so exporting the
same plan twice gives the same bundle.
"""

from __future__ import annotations

import uuid
from typing import Any

from fhir.resources.R4B.bundle import Bundle

from ..auth.roles import Role
from .content import DiagnosisStatus, MedicationAction
from .plan import PlanView

ICD10_SYSTEM = "http://hl7.org/fhir/sid/icd-10"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
FHIR_JSON = "application/fhir+json"

# The value sets of the codes written below (R4B), checked because the library does not.
_VALUE_SETS: dict[str, frozenset[str]] = {
    "Bundle.type": frozenset({"collection", "document"}),
    "CarePlan.status": frozenset({"draft", "active", "on-hold", "revoked", "completed"}),
    "CarePlan.intent": frozenset({"proposal", "plan", "order", "option"}),
    "CarePlan.activity.detail.kind": frozenset({"Appointment", "ServiceRequest", "Task"}),
    "CarePlan.activity.detail.status": frozenset(
        {"not-started", "scheduled", "in-progress", "on-hold", "completed", "cancelled"}
    ),
    "Condition.clinicalStatus": frozenset({"active", "recurrence", "relapse", "inactive"}),
    "Condition.verificationStatus": frozenset(
        {"unconfirmed", "provisional", "differential", "confirmed", "refuted"}
    ),
    "Condition.category": frozenset({"problem-list-item", "encounter-diagnosis"}),
    "MedicationRequest.status": frozenset({"active", "on-hold", "stopped", "draft"}),
    "MedicationRequest.intent": frozenset({"proposal", "plan", "order"}),
    "Goal.lifecycleStatus": frozenset({"proposed", "planned", "accepted", "active"}),
    "Encounter.status": frozenset({"planned", "in-progress", "finished", "cancelled"}),
    "Encounter.class": frozenset({"VR", "AMB"}),
    "CareTeam.status": frozenset({"proposed", "active", "inactive"}),
}
_VERIFICATION = {
    DiagnosisStatus.PROVISIONAL: "provisional",
    DiagnosisStatus.CONFIRMED: "confirmed",
}


class FhirCodeError(ValueError):
    """A code outside its value set: a bug here, never the caller's input."""


def _check(path: str, code: str) -> str:
    if code not in _VALUE_SETS[path]:
        raise FhirCodeError(f"{code!r} is not in the value set of {path}")
    return code


def _coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding]}


class _Builder:
    def __init__(self, plan: PlanView) -> None:
        self.plan = plan
        self.entries: list[dict[str, Any]] = []

    def url(self, kind: str, index: int = 0) -> str:
        return "urn:uuid:" + str(
            uuid.uuid5(uuid.NAMESPACE_URL, f"triad:{self.plan.id}:{kind}:{index}")
        )

    def add(self, url: str, resource: dict[str, Any]) -> dict[str, str]:
        self.entries.append({"fullUrl": url, "resource": resource})
        return {"reference": url}


def _person(builder: _Builder, role: Role) -> dict[str, str] | None:
    who = builder.plan.participant(role)
    if who is None:
        return None
    kind = "Patient" if role == Role.CLIENT else "Practitioner"
    return builder.add(
        builder.url(kind, list(Role).index(role)),
        {"resourceType": kind, "active": True, "name": [{"text": who.name}]},
    )


def build_bundle(plan: PlanView) -> dict[str, Any]:
    """The plan as a validated FHIR R4B Bundle of type `collection`, as JSON."""
    b = _Builder(plan)
    c = plan.content
    created = plan.created_at.isoformat()
    patient = _person(b, Role.CLIENT)
    therapist = _person(b, Role.THERAPIST)
    psychiatrist = _person(b, Role.PSYCHIATRIST)
    clinicians = [p for p in (therapist, psychiatrist) if p is not None]
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
        "participant": [{"individual": p} for p in clinicians],
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
            ],
        },
    )

    care_plan: dict[str, Any] = {
        "resourceType": "CarePlan",
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
    notes = [
        f"{title}: {text}"
        for title, text in (
            ("Therapy focus", c.therapy_focus),
            ("Safety considerations", c.safety),
            ("Client's questions", "; ".join(c.client_questions)),
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
