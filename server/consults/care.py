"""What a live room needs to know of the care workflow, in one read: is the client's consent
complete, did they withdraw sharing, who sits with whom, and which check-ins raised a safety
flag. Also same-room presence: a participant declares who else sits at their device, and the
declaration counts once the person declared confirms it or a clinician attests it (the rule is
in `presence`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..auth.roles import Role
from ..crypto import KeyRing
from ..db.engine import Database
from ..db.models import Participant
from ..errors import ErrorCode, FieldError, TriadError
from ..ids import ConsultId, ParticipantId
from . import audit
from .audit import AuditAction
from .checkins import CheckIns, MeasureRecord
from .consent import ConsentSummary, consent_state
from .measures import SAFETY_ITEM
from .model import Actor, JoinIdentity
from .people import open_presence, seal_presence
from .presence import Declaration, Pending, Person, confirmation_kind, merge


@dataclass(frozen=True)
class CareState:
    consent: ConsentSummary = field(default_factory=ConsentSummary)
    # Same room, in effect only (a pending declaration is only a prompt: `pending_presence`).
    present_with: Mapping[ParticipantId, tuple[ParticipantId, ...]] = field(default_factory=dict)
    # PHQ-9 item 9 above zero, for the clinicians' eyes: {measure_id, instrument, item, answer,
    # recorded_at}.
    safety_flags: tuple[Mapping[str, Any], ...] = ()
    # Same room, declarations not in effect yet: shown only to who may confirm or attest them.
    pending_presence: tuple[Pending, ...] = ()

    def pending_for(self, who: Person) -> tuple[Pending, ...]:
        """The pending declarations `who` may confirm (about them) or attest (another's client)."""
        return tuple(p for p in self.pending_presence if p.may_be_confirmed_by(who))

    @property
    def consent_complete(self) -> bool:
        return self.consent.complete

    @property
    def sharing_withdrawn(self) -> bool:
        return self.consent.sharing_withdrawn

    def consent_public(self) -> dict[str, Any]:
        """What every participant may know of the consent."""
        return self.consent.to_json()


def safety_flag(record: MeasureRecord) -> dict[str, Any] | None:
    if not record.score.item9_positive:
        return None
    return {
        "measure_id": record.id,
        "instrument": str(record.score.instrument),
        "item": SAFETY_ITEM,
        "answer": record.score.answers[SAFETY_ITEM - 1],
        "recorded_at": record.recorded_at.isoformat(),
    }


class CareFacts:
    """`rooms.ports.CareRecords`, on the database; also where presence is declared."""

    def __init__(
        self,
        db: Database,
        keyring: KeyRing,
        checkins: CheckIns,
        clock: Callable[[], datetime],
    ) -> None:
        self._db = db
        self._keyring = keyring
        self._checkins = checkins
        self._clock = clock

    async def care_state(self, consult_id: ConsultId) -> CareState:
        async with self._db.sessions() as session:
            consents = await consent_state(session, self._keyring, consult_id)
            rows = (
                await session.scalars(
                    select(Participant).where(Participant.consult_id == consult_id)
                )
            ).all()
            measures = await self._checkins.of_consult(consult_id, session)
        flags = (safety_flag(r) for r in measures)
        people = {row.id: Person(ParticipantId(row.id), Role(row.role)) for row in rows}
        declared = {row.id: self._declarations(row) for row in rows}
        return CareState(
            consent=consents.summary(),
            present_with={
                ParticipantId(pid): tuple(d.participant_id for d in mine if d.in_effect)
                for pid, mine in declared.items()
            },
            safety_flags=tuple(f for f in flags if f is not None),
            pending_presence=tuple(
                Pending(people[pid], people[d.participant_id])
                for pid, mine in declared.items()
                for d in mine
                if not d.in_effect and d.participant_id in people
            ),
        )

    async def declarations(self, who: JoinIdentity) -> tuple[Declaration, ...]:
        """Who `who` declared at their device, each with its state."""
        async with self._db.sessions() as session:
            row = await session.get(Participant, who.participant_id)
            return self._declarations(row) if row is not None else ()

    async def declare_present_with(
        self, who: JoinIdentity, participant_ids: Iterable[str]
    ) -> tuple[Declaration, ...]:
        """Who else sits at this participant's device ([] when nobody). Each new name is
        pending until confirmed; a name kept from the last declaration keeps its state."""
        wanted = tuple(dict.fromkeys(participant_ids))
        now = self._clock()
        async with self._db.sessions.begin() as session:
            rows = await self._people(session, who.consult_id)
            problems = [
                FieldError(f"/participant_ids/{i}", "another participant of this consult")
                for i, pid in enumerate(wanted)
                if pid not in rows or pid == who.participant_id
            ]
            if problems:
                raise TriadError(ErrorCode.VALIDATION_FAILED, "unknown participant", problems)
            mine = rows[who.participant_id]
            before = self._declarations(mine)
            after = merge(before, tuple(ParticipantId(p) for p in wanted), now)
            if after != before:
                self._store(mine, after)
                await audit.record_sealed(
                    session,
                    self._keyring,
                    {"present_with": list(wanted)},
                    at=now,
                    actor=Actor("participant", who.participant_id),
                    action=AuditAction.PARTICIPANT_PRESENT_WITH,
                    consult_id=who.consult_id,
                    platform_id=await audit.platform_of(session, who.consult_id),
                    details={"participant_id": who.participant_id},
                )
        return after

    async def confirm_presence(
        self, who: JoinIdentity, declarer_id: str, participant_id: str
    ) -> tuple[Declaration, ...]:
        """`who` confirms (as the person declared) or attests (as another clinician) that
        `participant_id` sits at `declarer_id`'s device; the declarer's declarations after."""
        now = self._clock()
        async with self._db.sessions.begin() as session:
            rows = await self._people(session, who.consult_id)
            declarer, declared = rows.get(declarer_id), rows.get(participant_id)
            pending = self._declarations(declarer) if declarer is not None else ()
            match = next((d for d in pending if d.participant_id == participant_id), None)
            if declarer is None or declared is None or match is None:
                raise TriadError(
                    ErrorCode.PRESENCE_NOT_DECLARED,
                    "that participant declared nobody of that id present at their device",
                )
            kind = confirmation_kind(
                Person(who.participant_id, who.role),
                Person(ParticipantId(declarer.id), Role(declarer.role)),
                Person(ParticipantId(declared.id), Role(declared.role)),
            )
            if match.in_effect:
                return pending  # already in effect: confirming twice changes nothing
            confirmed = Declaration(match.participant_id, kind, now, who.participant_id)
            after = tuple(confirmed if d is match else d for d in pending)
            self._store(declarer, after)
            await audit.record_sealed(
                session,
                self._keyring,
                {
                    "declarer": declarer.id,
                    "present": declared.id,
                    "via": kind.value,
                    "by": who.participant_id,
                },
                at=now,
                actor=Actor("participant", who.participant_id),
                action=AuditAction.PRESENCE_CONFIRMED,
                consult_id=who.consult_id,
                platform_id=await audit.platform_of(session, who.consult_id),
            )
        return after

    async def _people(self, session: AsyncSession, consult_id: str) -> dict[str, Participant]:
        rows = await session.scalars(
            select(Participant).where(Participant.consult_id == consult_id).with_for_update()
        )
        return {row.id: row for row in rows}

    def _declarations(self, row: Participant) -> tuple[Declaration, ...]:
        return open_presence(self._keyring, row.id, row.consult_id, row.presence_sealed)

    def _store(self, row: Participant, declarations: tuple[Declaration, ...]) -> None:
        row.presence_sealed = seal_presence(self._keyring, row.id, row.consult_id, declarations)
