"""Check-in measures: the client's PHQ-9 and GAD-7 before the lobby, scored here, stored sealed
as observations of the consult (instrument and time included), and read back as a trend across a
follow-up series. A consult holds at most `max_per_consult` of them."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..auth.roles import Role
from ..crypto import KeyRing
from ..db.engine import Database
from ..db.models import Consult, MeasureResult
from ..db.sealing import SealedColumn
from ..errors import ErrorCode, TriadError
from ..ids import ConsultId, MeasureId, ParticipantId, new_measure_id
from . import audit, outbox
from .audit import AuditAction
from .measures import MeasureScore, score
from .model import Actor, JoinIdentity
from .outbox import WebhookEventType
from .people import client_at_device


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


SEALED_COLUMNS = (SealedColumn("measure_results", "sealed", ("id", "consult_id"), _aad),)


def seal_measure(
    keyring: KeyRing, measure_id: str, consult_id: str, score: MeasureScore, at: datetime
) -> bytes:
    payload = {**score.to_json(), "recorded_at": at.isoformat()}
    return keyring.seal(json.dumps(payload).encode(), _aad(measure_id, consult_id))


def open_measure(
    keyring: KeyRing, measure_id: str, consult_id: str, sealed: bytes
) -> tuple[MeasureScore, datetime]:
    """A stored score (checked again as it is rebuilt) and when it was recorded."""
    data = json.loads(keyring.open(sealed, _aad(measure_id, consult_id)))
    recorded_at = datetime.fromisoformat(data.pop("recorded_at"))
    return MeasureScore.from_json(data), recorded_at


class CheckIns:
    def __init__(
        self,
        db: Database,
        keyring: KeyRing,
        clock: Callable[[], datetime],
        *,
        max_per_consult: int = 20,
    ) -> None:
        self._db = db
        self._keyring = keyring
        self._clock = clock
        self._max = max_per_consult

    async def record(self, who: JoinIdentity, instrument: str, answers: object) -> MeasureRecord:
        """Score and store one questionnaire. The client answers for themself; a therapist the
        client sits with (in effect: see `presence`) may enter the client's spoken answers."""
        result = score(instrument, answers)  # refuses bad answers before anything is touched
        now = self._clock()
        measure_id = new_measure_id()
        async with self._db.sessions.begin() as session:
            # The consult row, locked (PostgreSQL), so racing check-ins count one at a time.
            await session.get(Consult, who.consult_id, with_for_update=True)
            if who.role == Role.CLIENT:
                client = who.participant_id
            elif who.role == Role.THERAPIST:
                present = await client_at_device(session, self._keyring, who)
                if present is None:
                    raise TriadError(
                        ErrorCode.SAME_ROOM_REQUIRED,
                        "only a therapist the client confirmed sitting with may enter answers",
                    )
                client = present
            else:
                raise TriadError(ErrorCode.FORBIDDEN_ROLE, "the client fills in check-ins")
            held = await session.scalar(
                select(func.count())
                .select_from(MeasureResult)
                .where(MeasureResult.consult_id == who.consult_id)
            )
            if (held or 0) >= self._max:
                raise TriadError(
                    ErrorCode.CHECKINS_LIMIT_REACHED,
                    f"a consult holds at most {self._max} check-ins",
                )
            session.add(
                MeasureResult(
                    id=measure_id,
                    consult_id=who.consult_id,
                    participant_id=client,
                    sealed=seal_measure(self._keyring, measure_id, who.consult_id, result, now),
                )
            )
            # In clear, ids only; which instrument and whether it raised the safety flag are
            # clinical facts, sealed.
            details: dict[str, audit.DetailValue] = {"measure_id": measure_id}
            if who.participant_id != client:
                details["entered_by"] = who.participant_id
            await audit.record_sealed(
                session,
                self._keyring,
                {
                    "instrument": str(result.instrument),
                    "safety_flagged": result.item9_positive,
                },
                at=now,
                actor=Actor("participant", who.participant_id),
                action=AuditAction.MEASURE_RECORDED,
                consult_id=who.consult_id,
                platform_id=await audit.platform_of(session, who.consult_id),
                details=details,
            )
            if result.item9_positive:
                # The platform's care team must hear of it at once (ids only, no answer or score).
                outbox.add(
                    session,
                    self._keyring,
                    WebhookEventType.SAFETY_FLAG_RAISED,
                    consult_id=who.consult_id,
                    platform_id=await audit.platform_of(session, who.consult_id),
                    at=now,
                    facts={"measure_id": measure_id, "participant_id": client},
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
            select(MeasureResult).where(MeasureResult.consult_id.in_(consult_ids))
        )
        records = []
        for row in rows:
            result, recorded_at = open_measure(self._keyring, row.id, row.consult_id, row.sealed)
            records.append(
                MeasureRecord(
                    MeasureId(row.id),
                    ConsultId(row.consult_id),
                    ParticipantId(row.participant_id),
                    recorded_at,
                    result,
                )
            )
        return sorted(records, key=lambda r: (r.recorded_at, r.id))
