"""Values the consult service takes and returns. They validate themselves on construction."""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from ..auth.roles import OPTIONAL_ROLES, REQUIRED_ROLES, Role
from ..errors import ErrorCode, FieldError, TriadError
from ..ids import ConsultId, KeyId, ParticipantId, PlatformId, TokenId

MAX_NAME_LENGTH = 100


class ConsultStatus(StrEnum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"


def clean_name(name: str) -> str:
    """A display name, trimmed and normalised; control characters are refused."""
    cleaned = unicodedata.normalize("NFC", name).strip()
    if not cleaned or len(cleaned) > MAX_NAME_LENGTH:
        raise ValueError(f"a name must be 1-{MAX_NAME_LENGTH} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in cleaned):
        raise ValueError("a name must not contain control characters")
    return cleaned


MAX_BRIEF_FIELD_CHARS = 20_000


@dataclass(frozen=True)
class Brief:
    seen_in_therapy: str = ""
    question: str = ""
    medications: str = ""
    risks: str = ""

    def __post_init__(self) -> None:
        problems = [
            FieldError(f"/{name}", f"at most {MAX_BRIEF_FIELD_CHARS} characters")
            for name, value in asdict(self).items()
            if len(value) > MAX_BRIEF_FIELD_CHARS
        ]
        if not any(value.strip() for value in asdict(self).values()):
            problems.append(FieldError("/", "a brief says something in at least one field"))
        if problems:
            raise TriadError(ErrorCode.VALIDATION_FAILED, "the brief is not valid", problems)


@dataclass(frozen=True)
class ParticipantSpec:
    role: Role
    name: str


def _seat_problems(
    participants: tuple[ParticipantSpec, ...], *, client_is_minor: bool
) -> list[FieldError]:
    """One client, therapist and psychiatrist; at most one guardian and one interpreter; a
    guardian only for a client marked as a minor."""
    problems: list[FieldError] = []
    counts = Counter(p.role for p in participants)
    for role in Role:
        if role in REQUIRED_ROLES and counts[role] != 1:
            problems.append(
                FieldError(
                    "/participants", f"a consult has exactly one {role} (found {counts[role]})"
                )
            )
        elif role in OPTIONAL_ROLES and counts[role] > 1:
            problems.append(
                FieldError(
                    "/participants", f"a consult has at most one {role} (found {counts[role]})"
                )
            )
    if counts[Role.GUARDIAN] and not client_is_minor:
        problems.append(
            FieldError("/client_is_minor", "a guardian takes part only for a client who is a minor")
        )
    return problems


@dataclass(frozen=True)
class ConsultSpec:
    participants: tuple[ParticipantSpec, ...]
    auto_admit: bool = False
    scheduled_start: datetime | None = None
    scheduled_end: datetime | None = None
    external_id: str | None = None
    # A follow-up: the earlier consult (of the same platform, ended, with a saved plan).
    follows: ConsultId | None = None
    # The hand-off brief attached at creation (the platform on the therapist's behalf).
    brief: Brief | None = None
    # The client is a minor: only then may a guardian take a seat.
    client_is_minor: bool = False

    def __post_init__(self) -> None:
        problems = _seat_problems(self.participants, client_is_minor=self.client_is_minor)
        for when in (self.scheduled_start, self.scheduled_end):
            if when is not None and when.tzinfo is None:
                problems.append(FieldError("/scheduled_start", "times must carry a UTC offset"))
        if (
            self.scheduled_start is not None
            and self.scheduled_end is not None
            and self.scheduled_end <= self.scheduled_start
        ):
            problems.append(FieldError("/scheduled_end", "must be after scheduled_start"))
        if problems:
            raise TriadError(ErrorCode.VALIDATION_FAILED, "the consult is not valid", problems)

    def digest(self) -> bytes:
        """A fingerprint of what was asked for, to tell a retried request from a different one."""
        asked = asdict(self)
        if not self.client_is_minor:
            # Left out when false, so a request from before the flag keeps its fingerprint.
            del asked["client_is_minor"]
        canonical = json.dumps(asked, default=str, sort_keys=True)
        return hashlib.sha256(canonical.encode()).digest()


@dataclass(frozen=True)
class Actor:
    """Who did something, for the audit trail."""

    type: Literal["platform", "participant", "system", "operator"]
    id: str | None = None

    def label(self) -> str:
        return f"{self.type}:{self.id}" if self.id else self.type


@dataclass(frozen=True)
class PlatformCaller:
    """A platform authenticated by one of its API keys. The secret is the key's own, held only
    for the request so the server can mint tokens with it; it is never logged or stored."""

    platform_id: PlatformId
    key_id: KeyId
    secret: str = field(repr=False)


@dataclass(frozen=True)
class ParticipantView:
    id: ParticipantId
    role: Role
    name: str


@dataclass(frozen=True)
class ConsultView:
    id: ConsultId
    status: ConsultStatus
    auto_admit: bool
    external_id: str | None
    scheduled_start: datetime | None
    scheduled_end: datetime | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    participants: tuple[ParticipantView, ...]
    follows_id: ConsultId | None = None
    series_id: ConsultId | None = None
    client_is_minor: bool = False

    def participant(self, participant_id: ParticipantId) -> ParticipantView:
        for p in self.participants:
            if p.id == participant_id:
                return p
        raise TriadError(ErrorCode.PARTICIPANT_NOT_FOUND, "no such participant in this consult")


@dataclass(frozen=True)
class IssuedToken:
    participant_id: ParticipantId
    token: str = field(repr=False)
    jti: TokenId
    expires_at: datetime
    join_url: str = field(repr=False)


@dataclass(frozen=True)
class CreatedConsult:
    consult: ConsultView
    tokens: dict[ParticipantId, IssuedToken]
    # True when an Idempotency-Key found the consult an earlier request created.
    replayed: bool = False


@dataclass(frozen=True)
class JoinIdentity:
    """A participant proven by a join token."""

    consult_id: ConsultId
    participant_id: ParticipantId
    role: Role
    name: str
    jti: TokenId
    expires_at: float
    # The key that signed the token and its `iat`: a socket is closed when that key is revoked
    # or the participant's tokens are revoked at or after this instant.
    key_id: str = ""
    issued_at: float = 0.0


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor_type: str
    actor_id: str | None
    action: str
    details: dict[str, Any]
