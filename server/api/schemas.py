"""Request and response bodies of the REST API. These models are the OpenAPI schemas too."""

from __future__ import annotations

from datetime import date as calendar_date
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from ..auth.roles import Role
from ..consults.model import MAX_BRIEF_FIELD_CHARS, ConsultStatus, clean_name
from ..errors import ErrorCode

Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(clean_name)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParticipantIn(Body):
    role: Role
    name: Name


class BriefFields(Body):
    seen_in_therapy: str = Field(default="", max_length=MAX_BRIEF_FIELD_CHARS)
    question: str = Field(default="", max_length=MAX_BRIEF_FIELD_CHARS)
    medications: str = Field(default="", max_length=MAX_BRIEF_FIELD_CHARS)
    risks: str = Field(default="", max_length=MAX_BRIEF_FIELD_CHARS)


class CreateConsultIn(Body):
    participants: list[ParticipantIn] = Field(
        min_length=3,
        max_length=5,
        description="Exactly one client, one therapist and one psychiatrist; optionally one "
        "interpreter, and one guardian when `client_is_minor` is true.",
    )
    client_is_minor: bool = Field(
        default=False,
        description="The client is a minor: required for a guardian to take part.",
    )
    auto_admit: bool = Field(
        default=False,
        description="Admit the client (and a guardian or interpreter) without waiting in the "
        "lobby.",
    )
    scheduled_start: AwareDatetime | None = None
    scheduled_end: AwareDatetime | None = None
    external_id: str | None = Field(
        default=None,
        max_length=200,
        description="The platform's own reference for this consult (no clinical text).",
    )
    follows: str | None = Field(
        default=None,
        max_length=32,
        description="A follow-up: the earlier consult (ended, plan saved) whose plan it continues.",
    )
    brief: BriefFields | None = Field(
        default=None, description="The therapist's hand-off brief, attached on their behalf."
    )


class MintTokenIn(Body):
    ttl_seconds: int | None = Field(default=None, ge=60, le=30 * 24 * 3600)


class ParticipantOut(Body):
    id: str
    role: Role = Field(
        description="client, therapist, psychiatrist, or an optional seat: guardian (a "
        "minor's), interpreter"
    )
    name: str


class IssuedTokenOut(Body):
    participant_id: str
    token: str = Field(description="The join token (JWT). Give it only to this participant.")
    jti: str
    expires_at: datetime
    join_url: str = Field(description="Opens the consult room; the token rides in the fragment.")


class ParticipantWithTokenOut(ParticipantOut):
    join: IssuedTokenOut


class ConsultOut(Body):
    id: str
    status: ConsultStatus
    auto_admit: bool
    external_id: str | None
    scheduled_start: datetime | None
    scheduled_end: datetime | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    participants: list[ParticipantOut]
    follows_id: str | None = None
    series_id: str | None = None
    client_is_minor: bool = Field(
        description="The client is a minor; a guardian seat is possible only then, and when "
        "one is seated, the guardian's consent is what admits the client."
    )


class ConsultCreatedOut(ConsultOut):
    participants: list[ParticipantWithTokenOut]  # type: ignore[assignment]


class RevokedOut(Body):
    participant_id: str
    revoked_at: datetime


class AuditEventOut(Body):
    id: int
    at: datetime
    actor_type: Literal["platform", "participant", "system", "operator"]
    actor_id: str | None
    action: str
    details: dict[str, Any]


class AuditPageOut(Body):
    events: list[AuditEventOut]
    next_after: int | None = Field(description="Pass as `after` for the next page; null at end.")


class SessionConsultOut(Body):
    id: str
    status: ConsultStatus
    auto_admit: bool
    scheduled_start: datetime | None
    scheduled_end: datetime | None
    client_is_minor: bool = Field(
        description="The client is a minor: with a guardian among the participants, the "
        "guardian consents and the client's own consent is recorded as assent."
    )


class DeclaredWithYouOut(Body):
    declarer_id: str = Field(
        description="The participant who says this one sits at their device (a pending "
        "declaration: confirm it with `POST .../session/present-with/confirmations`)."
    )


class SessionYouOut(Body):
    participant_id: str
    role: Role
    name: str
    token_expires_at: datetime
    present_with: list[str] = Field(
        default=[],
        description="Same-room mode: who sits at this participant's device, confirmed or "
        "attested (a pending declaration is not listed).",
    )
    declared: list[str] = Field(
        default=[],
        description="Same-room mode: everyone this participant declared at their device, "
        "pending ones included (what the device check shows as ticked).",
    )
    declared_with_you: list[DeclaredWithYouOut] = Field(
        default=[],
        description="Same-room mode: pending declarations by others that this participant "
        "sits at their device, which this participant may confirm.",
    )


class WorkerOut(Body):
    id: str
    url: str = Field(description="The worker's public URL; its Socket.IO path is `/socket.io`.")


class SessionOut(Body):
    consult: SessionConsultOut
    you: SessionYouOut
    participants: list[ParticipantOut]
    worker: WorkerOut | None = Field(
        default=None,
        description="A server of several workers: the one that serves this consult's room "
        "(placed on it now if it was not). Connect the consult room's socket at its `url`. "
        "`null`: the server is one process; connect where the page was loaded from.",
    )


class HealthOut(Body):
    status: Literal["ok"]


class ReadyOut(Body):
    status: Literal["ok"]
    checks: dict[str, Literal["ok", "not_configured"]]


class FieldErrorOut(Body):
    location: str
    message: str


class ProblemOut(Body):
    """RFC 9457 problem details, with Triad's stable `code`."""

    type: str
    title: str
    status: int
    detail: str
    code: ErrorCode
    instance: str | None = None
    errors: list[FieldErrorOut] | None = None


class OpenApiDocumentOut(BaseModel):
    """This document itself."""

    model_config = ConfigDict(extra="allow")
    openapi: str


class AsyncApiDocumentOut(BaseModel):
    """The AsyncAPI 3.0 document of the consult room's Socket.IO protocol."""

    model_config = ConfigDict(extra="allow")
    asyncapi: str


# --- Notes and plans (the notes channel's block) ---------------------------------------------


class DiagnosisOut(Body):
    name: str
    icd10: str | None = Field(description="An ICD-10 code, normalised (F32.1), when one was given.")
    status: Literal["provisional", "confirmed"]


class MedicationOut(Body):
    name: str
    dose: str
    schedule: str
    action: Literal["start", "adjust", "stop"] | None
    side_effects: str = Field(description="Side effects to watch.")


class TherapyOut(Body):
    focus: str
    goals: list[str]


class MonitoringOut(Body):
    measure: str = Field(description="For example PHQ-9 or GAD-7.")
    when: str


class FollowUpOut(Body):
    date: calendar_date | None = Field(description="Set when the clinicians wrote a date.")
    when: str = Field(description="What they wrote otherwise, e.g. 'in four weeks'.")
    with_whom: str


class ClientNotesOut(Body):
    questions: list[str]
    goals: list[str]


class PlanContentOut(Body):
    summary: str = Field(description="The presenting picture.")
    diagnoses: list[DiagnosisOut]
    medications: list[MedicationOut]
    therapy: TherapyOut
    monitoring: list[MonitoringOut]
    follow_up: FollowUpOut
    safety: str = Field(description="Safety considerations.")
    client: ClientNotesOut = Field(description="The client's own questions and goals.")


class AuthorOut(Body):
    participant_id: str
    role: Role


class AttendanceOut(Body):
    participant_id: str
    role: Role
    name: str
    attended: bool
    first_admitted_at: datetime | None
    last_left_at: datetime | None
    present_via: str | None = Field(
        default=None,
        description="Same-room mode: attended at this participant's device, not their own.",
    )
    confirmed_by: str | None = Field(
        default=None, description="Same-room mode: the presence was confirmed by this person."
    )
    attested_by: str | None = Field(
        default=None, description="Same-room mode: the presence was attested by this clinician."
    )


class PlanOut(Body):
    """The treatment plan saved when the consult ended. Never holds the clinicians' notes."""

    id: str
    consult_id: str
    version: int = Field(ge=1)
    created_at: datetime
    consult_started_at: datetime | None
    consult_ended_at: datetime | None
    content: PlanContentOut
    authors: dict[str, list[AuthorOut]] = Field(
        description="Per section, the participants whose edits changed it."
    )
    attendance: list[AttendanceOut]
    warnings: list[str] = Field(
        description="Repairs made while reading the documents (field and problem, no text)."
    )
    measures: list[PlanMeasureOut] = Field(
        default=[], description="The consult's check-in scores (the monitoring section's data)."
    )
    previous: PreviousPlanOut | None = Field(
        default=None, description="The plan of the consult this one follows up."
    )
    series_id: str | None = None
    brief_attached: bool = False
    brief: str | None = Field(
        default=None,
        description="Where the clinicians read the hand-off brief (its text is not in the plan).",
    )


class PlanMeasureOut(Body):
    id: str
    instrument: Literal["phq9", "gad7"]
    answers: list[int]
    total: int
    severity: Literal["minimal", "mild", "moderate", "moderately_severe", "severe"]
    item9_positive: bool
    recorded_at: datetime


class PreviousPlanOut(Body):
    consult_id: str
    plan_id: str
    version: int


class CliniciansNotesOut(Body):
    consult_id: str
    text: str
    saved: bool = Field(description="True once frozen with the plan at the consult's end.")


class FhirBundleOut(BaseModel):
    """A FHIR R4B Bundle (type `collection`): CarePlan, Condition, MedicationRequest (intent
    `plan`), Goal, CareTeam, Encounter (class virtual), Patient, Practitioner, Observation
    (PHQ-9 / GAD-7 check-ins) and Consent (as it stands when asked: a withdrawal shows)."""

    model_config = ConfigDict(extra="allow")
    resourceType: Literal["Bundle"]  # FHIR's own (camelCase) name
    type: Literal["collection", "document"]
