"""Bodies of the care-workflow calls: consent, same-room presence, the hand-off brief, check-in
measures, and follow-up series. These models are the OpenAPI schemas too."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StrictInt

from .schemas import Body, BriefFields

Scope = Literal["session", "information_sharing"]


class ConsentTextOut(Body):
    scope: Scope
    text: str


class ConsentWordingOut(Body):
    version: str
    scopes: list[ConsentTextOut]


class ConsentRecordOut(Body):
    scope: Scope
    wording_version: str
    given_at: datetime
    given_by: str = Field(
        description="Who gave it: the client, or for a minor with a guardian seat the guardian "
        "(consent) or the minor (assent)."
    )
    attested_by: str | None = Field(
        description="The therapist who attested the client's spoken consent or assent (same room)."
    )
    withdrawn_at: datetime | None
    withdrawn_by: str | None


class ConsentStateOut(Body):
    wording: ConsentWordingOut
    records: list[ConsentRecordOut] = Field(
        description="The latest consent of each scope (the guardian's, when consenting_role is "
        "guardian)."
    )
    consenting_role: Literal["client", "guardian"] = Field(
        description="Whose consent admits the client: the guardian when the consult seats one "
        "(the client is a minor), else the client."
    )
    assent: list[ConsentRecordOut] = Field(
        description="A minor's own assent, the latest of each scope, beside the guardian's "
        "consent (empty when the client consents themself). Not required; withdrawn, it stops "
        "what it names as a withdrawn consent does."
    )
    complete: bool = Field(
        description="Both scopes consented and not withdrawn, and no scope's assent withdrawn."
    )
    sharing_withdrawn: bool = Field(
        description="Sharing withdrawn by whoever consented to it, or by the minor's assent."
    )


class GiveConsentIn(Body):
    wording_version: str = Field(min_length=1, max_length=32)
    scopes: list[Scope] = Field(min_length=1, max_length=2)
    attested: bool = Field(
        default=False,
        description="A therapist attests the spoken consent of the client sitting with them.",
    )


class WithdrawConsentIn(Body):
    scopes: list[Scope] = Field(min_length=1, max_length=2)


ParticipantIdIn = Annotated[str, Field(min_length=1, max_length=64)]


class PresentWithIn(Body):
    participant_ids: list[ParticipantIdIn] = Field(max_length=2)


class DeclarationOut(Body):
    participant_id: str
    status: Literal["pending", "confirmed", "attested"] = Field(
        description="pending until the person declared confirms it or another clinician "
        "attests it (the client only); only a declaration in effect counts"
    )
    confirmed_by: str | None = None
    attested_by: str | None = None


class PresentWithOut(Body):
    participant_ids: list[str] = Field(description="Declared present, in effect or pending.")
    declarations: list[DeclarationOut] = Field(default_factory=list)


class ConfirmPresenceIn(Body):
    declarer_id: ParticipantIdIn = Field(description="At whose device")
    participant_id: ParticipantIdIn = Field(description="Who is declared present there")


class BriefIn(BriefFields):
    """What the therapist has seen in therapy, the question for the psychiatrist, current
    medications, risks. At least one field says something."""


class BriefOut(BriefIn):
    consult_id: str
    author_role: str
    created_at: datetime
    updated_at: datetime


class MeasureIn(Body):
    instrument: str = Field(max_length=16, description="`phq9` or `gad7`.")
    # Range-checked as answers by the scorer (`measure_invalid`); bounded here to what any
    # integer in a request may be, so the document says so too.
    answers: list[Annotated[StrictInt, Field(ge=-(2**63), le=2**63 - 1)]] = Field(
        max_length=32, description="One answer 0-3 per item: 9 for PHQ-9, 7 for GAD-7."
    )


class MeasureOut(Body):
    id: str
    consult_id: str
    instrument: Literal["phq9", "gad7"]
    answers: list[int]
    total: int
    severity: Literal["minimal", "mild", "moderate", "moderately_severe", "severe"]
    item9_positive: bool = Field(description="PHQ-9 item 9 (thoughts of self-harm) above 0.")
    recorded_at: datetime


class MeasuresOut(Body):
    measures: list[MeasureOut] = Field(description="Oldest first.")


class PlanRefOut(Body):
    consult_id: str
    plan_id: str
    version: int
    created_at: datetime | None = None


class PlanChangeOut(Body):
    path: str
    section: str
    kind: Literal["added", "removed", "changed"]


class PlanChangesOut(Body):
    previous: PlanRefOut | None = Field(description="The plan compared against, if any.")
    changes: list[PlanChangeOut]


class PlanDiffQuery(Body):
    against: str | None = Field(
        default=None,
        max_length=32,
        description="The earlier consult of the series (default: the one this consult follows).",
    )


class PlanDiffOut(Body):
    older: PlanRefOut
    newer: PlanRefOut
    changes: list[PlanChangeOut]


class SeriesOut(Body):
    series_id: str
    plans: list[PlanRefOut] = Field(description="The series' saved plans, in order.")
