"""FHIR code systems and the value sets of every code Triad writes (R4B).

`fhir.resources` checks structure and types but not value-set bindings (it accepts
`status="bogus"`), so every coded value is checked here (`check`) before the library validates
the structure.
"""

from __future__ import annotations

from typing import Any

ICD10_SYSTEM = "http://hl7.org/fhir/sid/icd-10"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
# FHIR's own encounter participant types (`translator`, `emergency`), beside v3's.
PARTICIPANT_TYPE = "http://terminology.hl7.org/CodeSystem/participant-type"
ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
URI_IDENTIFIER = "urn:ietf:rfc:3986"
FHIR_JSON = "application/fhir+json"

# The value sets of the codes written (R4B), checked because the library does not.
VALUE_SETS: dict[str, frozenset[str]] = {
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
    # The optional seats' roles in the team (an example binding): v3 RoleCode `GUARD`, FHIR's
    # participant type `translator` (an interpreter facilitating communication with the patient).
    "CareTeam.participant.role": frozenset({"GUARD", "translator"}),
    "RelatedPerson.relationship": frozenset({"GUARD"}),
    # v3 ParticipationType `PART` (takes part, unqualified) and FHIR's `translator`.
    "Encounter.participant.type": frozenset({"PART", "translator"}),
    "Observation.status": frozenset({"registered", "preliminary", "final", "amended"}),
    "Observation.category": frozenset({"survey"}),
    "Consent.status": frozenset({"draft", "proposed", "active", "rejected", "inactive"}),
    "Consent.scope": frozenset({"adr", "research", "patient-privacy", "treatment"}),
    # LOINC consent document kinds (R4B consent-category): patient consent, release of
    # information consent.
    "Consent.category": frozenset({"59284-0", "64292-6"}),
    "Consent.policyRule": frozenset({"OPTIN", "OPTOUT"}),
    "Consent.provision.type": frozenset({"deny", "permit"}),
    "Consent.provision.actor.role": frozenset({"PRF", "IRCP"}),
    "Consent.provision.purpose": frozenset({"TREAT"}),
}


class FhirCodeError(ValueError):
    """A code outside its value set: a bug here, never the caller's input."""


def check(path: str, code: str) -> str:
    if code not in VALUE_SETS[path]:
        raise FhirCodeError(f"{code!r} is not in the value set of {path}")
    return code


def coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding]}
