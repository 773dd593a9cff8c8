"""Request and response bodies of the REST API. These models are the OpenAPI schemas too."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from ..auth.roles import Role
from ..consults.model import ConsultStatus, clean_name
from ..errors import ErrorCode

Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(clean_name)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParticipantIn(Body):
    role: Role
    name: Name


class CreateConsultIn(Body):
    participants: list[ParticipantIn] = Field(
        min_length=3,
        max_length=3,
        description="Exactly one client, one therapist and one psychiatrist.",
    )
    auto_admit: bool = Field(
        default=False, description="Admit the client without waiting in the lobby."
    )
    scheduled_start: AwareDatetime | None = None
    scheduled_end: AwareDatetime | None = None
    external_id: str | None = Field(
        default=None,
        max_length=200,
        description="The platform's own reference for this consult (no clinical text).",
    )


class MintTokenIn(Body):
    ttl_seconds: int | None = Field(default=None, ge=60, le=30 * 24 * 3600)


class ParticipantOut(Body):
    id: str
    role: Role
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


class SessionYouOut(Body):
    participant_id: str
    role: Role
    name: str
    token_expires_at: datetime


class SessionOut(Body):
    consult: SessionConsultOut
    you: SessionYouOut
    participants: list[ParticipantOut]


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
