"""The treatment plan's content as plain values: what the Yjs documents freeze into.

Each value checks its enumerated fields on construction (`fhir.resources` does not check value-set
bindings, so nothing downstream would catch a bad code). `schema.py` reads the live documents
tolerantly into these; `from_json` reads them back from a stored plan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any


class DiagnosisStatus(StrEnum):
    PROVISIONAL = "provisional"
    CONFIRMED = "confirmed"


class MedicationAction(StrEnum):
    START = "start"
    ADJUST = "adjust"
    STOP = "stop"


# ICD-10 (WHO and -CM): a letter, two characters, then an optional dot and up to four more.
ICD10 = re.compile(r"[A-Z][0-9][0-9A-Z](?:\.[0-9A-Z]{1,4})?")


def normalize_icd10(raw: str) -> str | None:
    """`f32.1`, `F321` and ` F32.1 ` all read as `F32.1`; None if it is not an ICD-10 code."""
    code = "".join(raw.split()).upper()
    if len(code) > 3 and "." not in code:
        code = code[:3] + "." + code[3:]
    return code if ICD10.fullmatch(code) else None


@dataclass(frozen=True)
class Diagnosis:
    name: str
    icd10: str | None = None
    status: DiagnosisStatus = DiagnosisStatus.PROVISIONAL

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a diagnosis needs a name")
        if self.icd10 is not None and not ICD10.fullmatch(self.icd10):
            raise ValueError("not an ICD-10 code")
        object.__setattr__(self, "status", DiagnosisStatus(self.status))


@dataclass(frozen=True)
class Medication:
    name: str
    dose: str = ""
    schedule: str = ""
    action: MedicationAction | None = None
    side_effects: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a medication needs a name")
        if self.action is not None:
            object.__setattr__(self, "action", MedicationAction(self.action))


@dataclass(frozen=True)
class Monitoring:
    measure: str
    when: str = ""

    def __post_init__(self) -> None:
        if not self.measure:
            raise ValueError("a monitoring item needs a measure")


@dataclass(frozen=True)
class FollowUp:
    # `date` when the clinicians wrote an ISO date; otherwise what they wrote stays in `when`
    # ("in four weeks") so nothing typed is lost.
    date: date | None = None
    when: str = ""
    with_whom: str = ""

    @property
    def empty(self) -> bool:
        return self.date is None and not self.when and not self.with_whom


@dataclass(frozen=True)
class PlanContent:
    summary: str = ""
    diagnoses: tuple[Diagnosis, ...] = ()
    medications: tuple[Medication, ...] = ()
    therapy_focus: str = ""
    therapy_goals: tuple[str, ...] = ()
    monitoring: tuple[Monitoring, ...] = ()
    follow_up: FollowUp = field(default_factory=FollowUp)
    safety: str = ""
    client_questions: tuple[str, ...] = ()
    client_goals: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "diagnoses": [
                {"name": d.name, "icd10": d.icd10, "status": str(d.status)} for d in self.diagnoses
            ],
            "medications": [
                {
                    "name": m.name,
                    "dose": m.dose,
                    "schedule": m.schedule,
                    "action": str(m.action) if m.action else None,
                    "side_effects": m.side_effects,
                }
                for m in self.medications
            ],
            "therapy": {"focus": self.therapy_focus, "goals": list(self.therapy_goals)},
            "monitoring": [{"measure": m.measure, "when": m.when} for m in self.monitoring],
            "follow_up": {
                "date": self.follow_up.date.isoformat() if self.follow_up.date else None,
                "when": self.follow_up.when,
                "with_whom": self.follow_up.with_whom,
            },
            "safety": self.safety,
            "client": {
                "questions": list(self.client_questions),
                "goals": list(self.client_goals),
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlanContent:
        follow = data["follow_up"]
        return cls(
            summary=data["summary"],
            diagnoses=tuple(
                Diagnosis(d["name"], d["icd10"], DiagnosisStatus(d["status"]))
                for d in data["diagnoses"]
            ),
            medications=tuple(
                Medication(
                    m["name"],
                    m["dose"],
                    m["schedule"],
                    MedicationAction(m["action"]) if m["action"] else None,
                    m["side_effects"],
                )
                for m in data["medications"]
            ),
            therapy_focus=data["therapy"]["focus"],
            therapy_goals=tuple(data["therapy"]["goals"]),
            monitoring=tuple(Monitoring(m["measure"], m["when"]) for m in data["monitoring"]),
            follow_up=FollowUp(
                date.fromisoformat(follow["date"]) if follow["date"] else None,
                follow["when"],
                follow["with_whom"],
            ),
            safety=data["safety"],
            client_questions=tuple(data["client"]["questions"]),
            client_goals=tuple(data["client"]["goals"]),
        )
