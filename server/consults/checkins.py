"""Check-in measures: the client's PHQ-9 and GAD-7 before the lobby, scored here, stored sealed
as observations of the consult, and read back as a trend across a follow-up series."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..auth.roles import Role
from ..crypto import KeyRing
from ..db.engine import Database
from ..db.models import Consult, MeasureResult
from ..errors import ErrorCode, TriadError
from ..ids import ConsultId, MeasureId, ParticipantId, new_measure_id
from . import audit
from .consent import client_present_with
from .measures import MeasureScore, score
from .model import Actor, JoinIdentity


@dataclass(frozen=True)
class MeasureRecord:
    id: MeasureId
    consult_id: ConsultId
    participant_id: ParticipantId
    recorded_at: datetime
    score: MeasureScore

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "consult_id": self.consult_id,
            "recorded_at": self.recorded_at.isoformat(),
            **self.score.to_json(),
        }


def _aad(measure_id: str, consult_id: str) -> bytes:
    return f"measure:{measure_id}:{consult_id}".encode()


def seal_score(keyring: KeyRing, measure_id: str, consult_id: str, score: MeasureScore) -> bytes:
    return keyring.seal(json.dumps(score.to_json()).encode(), _aad(measure_id, consult_id))


def open_score(keyring: KeyRing, measure_id: str, consult_id: str, sealed: bytes) -> MeasureScore:
    """A stored score, opened (and checked again as it is rebuilt)."""
    return MeasureScore.from_json(json.loads(keyring.open(sealed, _aad(measure_id, consult_id))))


class CheckIns:
    def __init__(self, db: Database, keyring: KeyRing, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._keyring = keyring
        self._clock = clock

    async def record(self, who: JoinIdentity, instrument: str, answers: object) -> MeasureRecord:
        """Score and store one questionnaire. The client answers for themself; a therapist the
        client sits with may enter the client's spoken answers."""
        result = score(instrument, answers)  # refuses bad answers before anything is touched
        now = self._clock()
        measure_id = new_measure_id()
        async with self._db.sessions.begin() as session:
            if who.role == Role.CLIENT:
                client = who.participant_id
            elif who.role == Role.THERAPIST:
                present = await client_present_with(session, who)
                if present is None:
                    raise TriadError(
                        ErrorCode.SAME_ROOM_REQUIRED,
                        "only a therapist sitting with the client may enter their answers",
                    )
                client = present
            else:
                raise TriadError(ErrorCode.FORBIDDEN_ROLE, "the client fills in check-ins")
            session.add(
                MeasureResult(
                    id=measure_id,
                    consult_id=who.consult_id,
                    participant_id=client,
                    instrument=str(result.instrument),
                    recorded_at=now,
                    sealed=seal_score(self._keyring, measure_id, who.consult_id, result),
                )
            )
            # Ids only: the audit trail never holds a score.
            details: dict[str, object] = {
                "measure_id": measure_id,
                "instrument": str(result.instrument),
            }
            if who.participant_id != client:
                details["entered_by"] = who.participant_id
            platform_id = await audit.platform_of(session, who.consult_id)
            audit.record(
                session,
                at=now,
                actor=Actor("participant", who.participant_id),
                action="measure.recorded",
                consult_id=who.consult_id,
                platform_id=platform_id,
                details=details,
            )
            if result.item9_positive:
                audit.record(
                    session,
                    at=now,
                    actor=Actor("system"),
                    action="measure.safety_flagged",
                    consult_id=who.consult_id,
                    platform_id=platform_id,
                    details={"measure_id": measure_id, "item": 9},
                )
        return MeasureRecord(measure_id, who.consult_id, client, now, result)

    async def of_consult(
        self, consult_id: ConsultId, session: AsyncSession | None = None
    ) -> list[MeasureRecord]:
        """The consult's measures, oldest first (in the caller's session when given)."""
        if session is not None:
            return await self._read(session, [consult_id])
        async with self._db.sessions() as own:
            return await self._read(own, [consult_id])

    async def of_series(self, consult_id: ConsultId) -> list[MeasureRecord]:
        """Every measure of the consult's follow-up series, oldest first: the trend."""
        async with self._db.sessions() as session:
            series = await session.scalar(select(Consult.series_id).where(Consult.id == consult_id))
            members = list(
                await session.scalars(select(Consult.id).where(Consult.series_id == series))
            )
            return await self._read(session, members)

    async def _read(self, session: AsyncSession, consult_ids: list[str]) -> list[MeasureRecord]:
        rows = await session.scalars(
            select(MeasureResult)
            .where(MeasureResult.consult_id.in_(consult_ids))
            .order_by(MeasureResult.recorded_at, MeasureResult.id)
        )
        return [
            MeasureRecord(
                MeasureId(row.id),
                ConsultId(row.consult_id),
                ParticipantId(row.participant_id),
                row.recorded_at,
                open_score(self._keyring, row.id, row.consult_id, row.sealed),
            )
            for row in rows
        ]
