"""What a live room needs to know of the care workflow, in one read: is the client's consent
complete, did they withdraw sharing, who sits with whom, and which check-ins raised a safety
flag. Also same-room presence, which a participant declares before or during the consult."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from ..db.engine import Database
from ..db.models import Participant
from ..errors import ErrorCode, FieldError, TriadError
from ..ids import ConsultId, ParticipantId
from . import audit
from .checkins import CheckIns, MeasureRecord
from .consent import consent_state
from .measures import SAFETY_ITEM
from .model import Actor, JoinIdentity


@dataclass(frozen=True)
class CareState:
    consent_complete: bool = False
    sharing_withdrawn: bool = False
    present_with: Mapping[ParticipantId, tuple[ParticipantId, ...]] = field(default_factory=dict)
    # PHQ-9 item 9 above zero, for the clinicians' eyes: {measure_id, instrument, item, answer,
    # recorded_at}.
    safety_flags: tuple[Mapping[str, Any], ...] = ()

    def consent_public(self) -> dict[str, bool]:
        """What every participant may know of the consent."""
        return {"complete": self.consent_complete, "sharing_withdrawn": self.sharing_withdrawn}


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

    def __init__(self, db: Database, checkins: CheckIns, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._checkins = checkins
        self._clock = clock

    async def care_state(self, consult_id: ConsultId) -> CareState:
        async with self._db.sessions() as session:
            consents = await consent_state(session, consult_id)
            rows = (
                await session.execute(
                    select(Participant.id, Participant.present_with).where(
                        Participant.consult_id == consult_id
                    )
                )
            ).all()
            measures = await self._checkins.of_consult(consult_id, session)
        flags = (safety_flag(r) for r in measures)
        return CareState(
            consent_complete=consents.complete,
            sharing_withdrawn=consents.sharing_withdrawn,
            present_with={
                ParticipantId(row.id): tuple(ParticipantId(p) for p in row.present_with or [])
                for row in rows
            },
            safety_flags=tuple(f for f in flags if f is not None),
        )

    async def declare_present_with(
        self, who: JoinIdentity, participant_ids: Iterable[str]
    ) -> tuple[ParticipantId, ...]:
        """Who else sits at this participant's device ([] when nobody)."""
        wanted = tuple(dict.fromkeys(participant_ids))
        now = self._clock()
        async with self._db.sessions.begin() as session:
            rows = {
                row.id: row
                for row in await session.scalars(
                    select(Participant).where(Participant.consult_id == who.consult_id)
                )
            }
            problems = [
                FieldError(f"/participant_ids/{i}", "another participant of this consult")
                for i, pid in enumerate(wanted)
                if pid not in rows or pid == who.participant_id
            ]
            if problems:
                raise TriadError(ErrorCode.VALIDATION_FAILED, "unknown participant", problems)
            mine = rows[who.participant_id]
            if list(wanted) != list(mine.present_with or []):
                mine.present_with = list(wanted)
                audit.record(
                    session,
                    at=now,
                    actor=Actor("participant", who.participant_id),
                    action="participant.present_with",
                    consult_id=who.consult_id,
                    platform_id=await audit.platform_of(session, who.consult_id),
                    details={"participant_id": who.participant_id, "present_with": list(wanted)},
                )
        return tuple(ParticipantId(p) for p in wanted)
