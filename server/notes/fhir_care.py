"""The care workflow in the FHIR export: each check-in score as an Observation, each consent
record as a Consent.

Observations: status `final`, category `survey`, the LOINC code of the total (PHQ-9 44261-6,
GAD-7 70274-6) with `valueInteger`, the severity band as the interpretation's text (no code
system carries the bands), and for PHQ-9 item 9 (LOINC 44260-8) as a component, interpreted
abnormal when above zero. Consents (R4B): session is a treatment consent, information sharing a
privacy consent (release of information between the two clinicians); `active`, or `inactive`
once withdrawn with the provision's period ending then; performed by the client, or by the
clinician who attested the client's spoken consent; the wording shown attached by version.

A minor's assent (their own word beside the guardian's consent) is a Consent of its own for
the same patient and scope, performed by the minor (or the therapist who heard it), with a
second category saying it is assent. R4B has no element or code for assent, so the category is
text only; a reader that ignores it still sees an agreement of the patient, never a consent
of the guardian's, and a withdrawn assent reads `inactive` like a withdrawn consent.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

from ..consults.consent import CONSENT_WORDING, ConsentFact, ConsentKind, ConsentScope
from ..consults.measures import LOINC_PHQ9_ITEM9, LOINC_SYSTEM, LOINC_TOTAL, SAFETY_ITEM, Instrument
from .fhir_codes import (
    ACT_CODE,
    ACT_REASON,
    CONSENT_SCOPE,
    INTERPRETATION,
    OBSERVATION_CATEGORY,
    PARTICIPATION_TYPE,
    URI_IDENTIFIER,
    check,
    coding,
)
from .plan import PlanMeasure

Ref = dict[str, str]

# Consent to the session is consent to treatment; to the clinicians sharing information, a
# privacy consent (a release of information between them).
_CONSENT_KIND: dict[ConsentScope, dict[str, tuple[str, str]]] = {
    ConsentScope.SESSION: {
        "scope": ("treatment", "Treatment"),
        "category": ("59284-0", "Patient Consent"),
        "actor": ("PRF", "performer"),
    },
    ConsentScope.INFORMATION_SHARING: {
        "scope": ("patient-privacy", "Privacy Consent"),
        "category": ("64292-6", "Release of information consent"),
        "actor": ("IRCP", "information recipient"),
    },
}

# What sets a minor's assent apart from a consent: no code system has a code for it.
ASSENT_CATEGORY_TEXT = "Assent of a minor, beside their guardian's consent"


def _measure_uri(measure: PlanMeasure) -> str:
    return "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"triad:measure:{measure.id}"))


def observation(
    measure: PlanMeasure, subject: dict[str, Any], encounter: Ref, patient: Ref | None
) -> dict[str, Any]:
    """A scored questionnaire of the consult."""
    result = measure.score
    code, display = LOINC_TOTAL[result.instrument]
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        # The same measure has the same identifier in every export (of any plan of the series).
        "identifier": [{"system": URI_IDENTIFIER, "value": _measure_uri(measure)}],
        "status": check("Observation.status", "final"),
        "category": [
            coding(OBSERVATION_CATEGORY, check("Observation.category", "survey"), "Survey")
        ],
        "code": {
            "coding": [{"system": LOINC_SYSTEM, "code": code, "display": display}],
            "text": f"{result.instrument.label} total score",
        },
        "subject": subject,
        "encounter": encounter,
        "effectiveDateTime": measure.recorded_at.isoformat(),
        "valueInteger": result.total,
        # The band of the total (Kroenke 2001 / Spitzer 2006), as text: no code system has them.
        "interpretation": [{"text": str(result.severity).replace("_", " ")}],
    }
    if patient is not None:
        resource["performer"] = [patient]  # the client answered
    if result.instrument == Instrument.PHQ9:
        item_code, item_display = LOINC_PHQ9_ITEM9
        item: dict[str, Any] = {
            "code": {
                "coding": [{"system": LOINC_SYSTEM, "code": item_code, "display": item_display}]
            },
            "valueInteger": result.answers[SAFETY_ITEM - 1],
        }
        if result.item9_positive:
            item["interpretation"] = [
                {
                    "coding": [{"system": INTERPRETATION, "code": "A", "display": "Abnormal"}],
                    "text": "Thoughts of self-harm reported: flagged to both clinicians",
                }
            ]
        resource["component"] = [item]
    return resource


def consent(
    fact: ConsentFact, patient: Ref | None, people: dict[str, Ref], clinicians: list[Ref]
) -> dict[str, Any]:
    """A consent (or a minor's assent) record; `people` maps participant ids to their
    resources' references."""
    kind = _CONSENT_KIND[ConsentScope(fact.scope)]
    assent = fact.kind is ConsentKind.ASSENT
    scope_code, scope_display = kind["scope"]
    category_code, category_display = kind["category"]
    actor_code, actor_display = kind["actor"]
    # Who gave it: the client (a minor, for assent), a minor's guardian, or the clinician who
    # attested the client's spoken word.
    attester = people.get(fact.attested_by) if fact.attested_by is not None else None
    performer = attester or people.get(fact.given_by) or patient
    period = {"start": fact.given_at.isoformat()}
    if fact.withdrawn_at is not None:
        period["end"] = fact.withdrawn_at.isoformat()
    what = "Assent" if assent else "Consent"
    title = f"{what} wording, version {fact.wording_version}: {fact.scope}"
    source: dict[str, Any] = {"contentType": "text/plain", "title": title}
    if fact.wording_version == CONSENT_WORDING.version:
        wording = CONSENT_WORDING.texts[ConsentScope(fact.scope)]
        source["data"] = base64.b64encode(wording.encode()).decode()
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        # Withdrawn: no longer in force (the period says until when it was).
        "status": check("Consent.status", "active" if fact.withdrawn_at is None else "inactive"),
        "scope": coding(CONSENT_SCOPE, check("Consent.scope", scope_code), scope_display),
        "category": [
            coding(LOINC_SYSTEM, check("Consent.category", category_code), category_display)
        ]
        + ([{"text": ASSENT_CATEGORY_TEXT}] if assent else []),
        "dateTime": fact.given_at.isoformat(),
        "sourceAttachment": source,
        "policyRule": coding(ACT_CODE, check("Consent.policyRule", "OPTIN"), "opt-in"),
        "provision": {
            "type": check("Consent.provision.type", "permit"),
            "period": period,
            "actor": [
                {
                    "role": coding(
                        PARTICIPATION_TYPE,
                        check("Consent.provision.actor.role", actor_code),
                        actor_display,
                    ),
                    "reference": who,
                }
                for who in clinicians
            ],
            "purpose": [
                {
                    "system": ACT_REASON,
                    "code": check("Consent.provision.purpose", "TREAT"),
                    "display": "treatment",
                }
            ],
        },
    }
    if patient is not None:
        resource["patient"] = patient
    if performer is not None:
        resource["performer"] = [performer]
    return resource
