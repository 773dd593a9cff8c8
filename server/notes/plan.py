"""The saved plan: content, who wrote which section, who attended, when, which version, the
check-in scores, and where it sits in a follow-up series.

This is the client-visible record: it never holds the clinicians' private notes, which are stored
beside it (sealed separately) and reached only through `NotesService.clinicians_notes`, nor the
hand-off brief (clinicians only), which it only says is attached.

Plans saved before a field existed read back with its default (`from_json`), so a new field is
always optional in the stored JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..auth.roles import Role
from ..consults.audit import AuditAction
from ..consults.measures import MeasureScore
from ..consults.presence import PresentVia
from ..ids import ConsultId, MeasureId, ParticipantId, PlanId
from .content import PlanContent
from .schema import PLAN_SECTIONS

ADMITTED = AuditAction.PARTICIPANT_ADMITTED
LEFT = AuditAction.PARTICIPANT_LEFT
# A same-room declaration in effect (confirmed or attested); a pending one never counts.
PRESENCE_CONFIRMED = AuditAction.PRESENCE_CONFIRMED


@dataclass(frozen=True)
class AuthorRef:
    participant_id: ParticipantId
    role: Role


@dataclass(frozen=True)
class Attendance:
    participant_id: ParticipantId
    role: Role
    name: str
    attended: bool
    first_admitted_at: datetime | None = None
    last_left_at: datetime | None = None
    # Same-room mode: the participant at whose device this one sat (and so attended), and how
    # that was established: confirmed by this participant, or attested by a clinician.
    present_via: ParticipantId | None = None
    confirmed_by: ParticipantId | None = None
    attested_by: ParticipantId | None = None

    def __post_init__(self) -> None:
        if self.attended != (self.first_admitted_at is not None):
            raise ValueError("a participant attended exactly when they were admitted")
        # (Plans saved before confirmation existed name `present_via` alone.)
        if self.present_via is None and (self.confirmed_by or self.attested_by):
            raise ValueError("only presence at another's device is confirmed or attested")


@dataclass(frozen=True)
class PlanMeasure:
    """A check-in questionnaire scored for this consult (`measure_results`)."""

    id: MeasureId
    recorded_at: datetime
    score: MeasureScore

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, **self.score.to_json(), "recorded_at": self.recorded_at.isoformat()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlanMeasure:
        return cls(
            MeasureId(data["id"]),
            datetime.fromisoformat(data["recorded_at"]),
            MeasureScore.from_json(data),
        )


@dataclass(frozen=True)
class PreviousPlanRef:
    """The saved plan of the consult this one follows up."""

    consult_id: ConsultId
    plan_id: PlanId
    version: int

    def to_json(self) -> dict[str, Any]:
        return {"consult_id": self.consult_id, "plan_id": self.plan_id, "version": self.version}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PreviousPlanRef:
        return cls(ConsultId(data["consult_id"]), PlanId(data["plan_id"]), data["version"])


@dataclass(frozen=True)
class PlanView:
    id: PlanId
    consult_id: ConsultId
    version: int
    created_at: datetime
    consult_started_at: datetime | None
    consult_ended_at: datetime | None
    content: PlanContent
    # section -> people whose applied updates changed it, for every section in PLAN_SECTIONS
    authors: dict[str, tuple[AuthorRef, ...]]
    attendance: tuple[Attendance, ...]
    # Repairs made while reading the documents (position and field, never text).
    warnings: tuple[str, ...] = ()
    # The consult's check-in scores, oldest first.
    measures: tuple[PlanMeasure, ...] = ()
    # Follow-ups: the plan this one follows (its version is this one's minus 1), and the series
    # (the first consult's id; a consult that follows none is its own series).
    previous: PreviousPlanRef | None = None
    series_id: ConsultId | None = None
    # A hand-off brief is attached to the consult (the API links it; its text is not here).
    brief_attached: bool = False

    def __post_init__(self) -> None:
        if self.series_id is None:
            object.__setattr__(self, "series_id", self.consult_id)
        if self.version < 1:
            raise ValueError("plan versions start at 1")
        if self.previous is not None and self.previous.version != self.version - 1:
            raise ValueError("a follow-up's plan is the next version of the one it follows")
        if set(self.authors) != set(PLAN_SECTIONS):
            raise ValueError("authors name every plan section")
        if self.created_at.tzinfo is None:
            raise ValueError("plan times are aware")

    def participant(self, role: Role) -> Attendance | None:
        return next((a for a in self.attendance if a.role == role), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "consult_id": self.consult_id,
            "version": self.version,
            "created_at": self.created_at.isoformat(),
            "consult_started_at": _iso(self.consult_started_at),
            "consult_ended_at": _iso(self.consult_ended_at),
            "content": self.content.to_json(),
            "authors": {
                section: [{"participant_id": a.participant_id, "role": str(a.role)} for a in refs]
                for section, refs in self.authors.items()
            },
            "attendance": [
                {
                    "participant_id": a.participant_id,
                    "role": str(a.role),
                    "name": a.name,
                    "attended": a.attended,
                    "first_admitted_at": _iso(a.first_admitted_at),
                    "last_left_at": _iso(a.last_left_at),
                    "present_via": a.present_via,
                    "confirmed_by": a.confirmed_by,
                    "attested_by": a.attested_by,
                }
                for a in self.attendance
            ],
            "warnings": list(self.warnings),
            "measures": [m.to_json() for m in self.measures],
            "previous": self.previous.to_json() if self.previous is not None else None,
            "series_id": self.series_id,
            "brief_attached": self.brief_attached,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlanView:
        return cls(
            id=PlanId(data["id"]),
            consult_id=ConsultId(data["consult_id"]),
            version=data["version"],
            created_at=datetime.fromisoformat(data["created_at"]),
            consult_started_at=_from_iso(data["consult_started_at"]),
            consult_ended_at=_from_iso(data["consult_ended_at"]),
            content=PlanContent.from_json(data["content"]),
            authors={
                section: tuple(
                    AuthorRef(ParticipantId(a["participant_id"]), Role(a["role"])) for a in refs
                )
                for section, refs in data["authors"].items()
            },
            attendance=tuple(
                Attendance(
                    participant_id=ParticipantId(a["participant_id"]),
                    role=Role(a["role"]),
                    name=a["name"],
                    attended=a["attended"],
                    first_admitted_at=_from_iso(a["first_admitted_at"]),
                    last_left_at=_from_iso(a["last_left_at"]),
                    present_via=a.get("present_via"),
                    confirmed_by=a.get("confirmed_by"),
                    attested_by=a.get("attested_by"),
                )
                for a in data["attendance"]
            ),
            warnings=tuple(data["warnings"]),
            measures=tuple(PlanMeasure.from_json(m) for m in data.get("measures", ())),
            previous=PreviousPlanRef.from_json(data["previous"]) if data.get("previous") else None,
            series_id=ConsultId(data["series_id"]) if data.get("series_id") else None,
            brief_attached=data.get("brief_attached", False),
        )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _from_iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def authors_by_section(people: dict[str, set[tuple[str, str]]]) -> dict[str, tuple[AuthorRef, ...]]:
    """Every plan section, each with its authors in a stable order (role, then id)."""
    order = {role: i for i, role in enumerate(Role)}
    result = {}
    for section in PLAN_SECTIONS:
        refs = {AuthorRef(ParticipantId(pid), Role(role)) for pid, role in people.get(section, ())}
        result[section] = tuple(sorted(refs, key=lambda a: (order[a.role], a.participant_id)))
    return result


@dataclass(frozen=True)
class RoomEvent:
    """An admitted, left or presence-confirmed event from the audit trail."""

    participant_id: str
    action: str
    at: datetime
    # presence confirmed: who sat at `participant_id`'s device, how, and on whose word.
    present: str | None = None
    via: PresentVia | None = None
    by: str | None = None


def attendance(
    participants: list[tuple[ParticipantId, Role, str]], events: list[RoomEvent]
) -> tuple[Attendance, ...]:
    """Attendance from the room's audit events, in audit order: first admission and, if the
    participant's last event was leaving, when they left. Someone whose presence at another
    participant's device took effect (same-room mode: confirmed by them or attested by a
    clinician, see `consults.presence`) attended with that participant, unless they were
    admitted on their own device. A pending declaration counts for nothing."""
    first: dict[str, datetime] = {}
    last_left: dict[str, datetime | None] = {}
    via: dict[str, RoomEvent] = {}
    for event in events:
        if event.action == PRESENCE_CONFIRMED and event.present is not None:
            via.setdefault(event.present, event)
        elif event.action == ADMITTED:
            first.setdefault(event.participant_id, event.at)
            last_left[event.participant_id] = None
        elif event.action == LEFT and event.participant_id in first:
            last_left[event.participant_id] = event.at
    carried = {pid: e for pid, e in via.items() if pid not in first and e.participant_id in first}
    for pid, e in carried.items():
        first[pid], last_left[pid] = first[e.participant_id], last_left.get(e.participant_id)

    def how(pid: str, kind: PresentVia) -> ParticipantId | None:
        e = carried.get(pid)
        return ParticipantId(e.by) if e is not None and e.via == kind and e.by else None

    order = {role: i for i, role in enumerate(Role)}
    return tuple(
        Attendance(
            participant_id=pid,
            role=role,
            name=name,
            attended=pid in first,
            first_admitted_at=first.get(pid),
            last_left_at=last_left.get(pid),
            present_via=ParticipantId(carried[pid].participant_id) if pid in carried else None,
            confirmed_by=how(pid, PresentVia.CONFIRMED),
            attested_by=how(pid, PresentVia.ATTESTED),
        )
        for pid, role, name in sorted(participants, key=lambda p: order[p[1]])
    )
