"""Same-room presence: who sits at whose device, and the rule for when a declaration counts.

A participant declares who else is at their device; the declaration is pending until it is
confirmed by the person declared (from their own join token) or attested by a clinician who is
neither the declarer nor the person declared, and only when the person declared is the client.
A clinician counts as present only on their own word, so a client can never make a clinician
count as attended; and the therapist who declares the client present cannot also be the one who
makes it count (the client confirms, or the psychiatrist attests), so declaring the client
present and then attesting the client's consent is never a one-person path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from ..auth.roles import Role, is_host
from ..errors import ErrorCode, TriadError
from ..ids import ParticipantId


class PresentVia(StrEnum):
    PENDING = "pending"
    # The person declared confirmed it with their own token.
    CONFIRMED = "confirmed"
    # A clinician other than the declarer vouched for the client's presence.
    ATTESTED = "attested"


@dataclass(frozen=True)
class Declaration:
    """`participant_id` is declared present at the declarer's device."""

    participant_id: ParticipantId
    via: PresentVia
    at: datetime
    # Who confirmed (the person declared) or attested (a clinician); None while pending.
    by: ParticipantId | None = None

    def __post_init__(self) -> None:
        if (self.via == PresentVia.PENDING) != (self.by is None):
            raise ValueError("a pending declaration has nobody confirming it, and only it")

    @property
    def in_effect(self) -> bool:
        return self.via != PresentVia.PENDING

    def to_json(self) -> dict[str, Any]:
        return {
            "participant_id": self.participant_id,
            "via": self.via.value,
            "at": self.at.isoformat(),
            "by": self.by,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Declaration:
        by = data.get("by")
        return cls(
            ParticipantId(str(data["participant_id"])),
            PresentVia(data["via"]),
            datetime.fromisoformat(data["at"]),
            ParticipantId(str(by)) if by is not None else None,
        )


@dataclass(frozen=True)
class Person:
    id: ParticipantId
    role: Role


def confirmation_kind(confirmer: Person, declarer: Person, declared: Person) -> PresentVia:
    """How `confirmer` may make the declaration "`declared` sits at `declarer`'s device"
    count, or the coded refusal."""
    if confirmer.id == declared.id:
        return PresentVia.CONFIRMED
    if confirmer.id == declarer.id:
        raise TriadError(
            ErrorCode.PRESENCE_CONFIRMATION_REFUSED,
            "a declaration takes effect when the person declared confirms it, or another "
            "clinician attests it; the declarer cannot confirm it",
        )
    if declared.role != Role.CLIENT:
        raise TriadError(
            ErrorCode.PRESENCE_CONFIRMATION_REFUSED,
            "a clinician's presence counts only when that clinician confirms it",
        )
    if not is_host(confirmer.role):
        raise TriadError(
            ErrorCode.PRESENCE_CONFIRMATION_REFUSED, "only a clinician may attest presence"
        )
    return PresentVia.ATTESTED


@dataclass(frozen=True)
class Pending:
    """A declaration not in effect yet: `declared` is said to sit at `declarer`'s device."""

    declarer: Person
    declared: Person

    def may_be_confirmed_by(self, who: Person) -> bool:
        """Whether `who` may make it count (so the room offers them the prompt)."""
        try:
            confirmation_kind(who, self.declarer, self.declared)
        except TriadError:
            return False
        return True


def merge(
    existing: tuple[Declaration, ...], wanted: tuple[ParticipantId, ...], now: datetime
) -> tuple[Declaration, ...]:
    """A new declaration list: people still declared keep their state, new ones are pending."""
    by_id = {d.participant_id: d for d in existing}
    return tuple(by_id.get(pid) or Declaration(pid, PresentVia.PENDING, now) for pid in wanted)
