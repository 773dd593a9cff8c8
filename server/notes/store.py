"""Plan rows: saved once per consult (a unique constraint settles racing saves), sealed, and read
back for the REST API. Also the two reads finalisation needs from outside the notes: the consult's
times and participants, and the room's admitted/left events from the audit trail."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..auth.roles import Role
from ..crypto import KeyRing
from ..db.engine import Database
from ..db.models import AuditEvent, Consult, Participant, Plan
from ..errors import ErrorCode, TriadError
from ..ids import ConsultId, ParticipantId
from .log import Job
from .plan import ADMITTED, LEFT, PlanView, RoomEvent


def _aad(plan_id: str, consult_id: str, part: str) -> bytes:
    return f"plan:{plan_id}:{consult_id}:{part}".encode()


@dataclass(frozen=True)
class ConsultFacts:
    consult_id: ConsultId
    status: str
    started_at: datetime | None
    ended_at: datetime | None
    participants: list[tuple[ParticipantId, Role, str]]
    events: list[RoomEvent]
    has_plan: bool


class PlanStore:
    def __init__(self, db: Database, keyring: KeyRing) -> None:
        self._db = db
        self._keyring = keyring

    async def consult_facts(self, consult_id: ConsultId, *, events: bool = False) -> ConsultFacts:
        async with self._db.engine.connect() as conn:
            consult = (
                await conn.execute(
                    select(Consult.status, Consult.started_at, Consult.ended_at).where(
                        Consult.id == consult_id
                    )
                )
            ).first()
            if consult is None:
                raise TriadError(ErrorCode.CONSULT_NOT_FOUND, "no such consult")
            has_plan = (
                await conn.scalar(select(Plan.id).where(Plan.consult_id == consult_id))
            ) is not None
            people = (
                await conn.execute(
                    select(Participant.id, Participant.role, Participant.display_name).where(
                        Participant.consult_id == consult_id
                    )
                )
            ).all()
            room_events = await _room_events(conn, consult_id) if events else []
        return ConsultFacts(
            consult_id=consult_id,
            status=consult.status,
            started_at=consult.started_at,
            ended_at=consult.ended_at,
            participants=[(ParticipantId(p.id), Role(p.role), p.display_name) for p in people],
            events=room_events,
            has_plan=has_plan,
        )

    async def save(self, plan: PlanView, markdown: str, clinicians: str, jobs: list[Job]) -> None:
        """Insert the plan and run `jobs` (final snapshots) in the same transaction. Raises
        IntegrityError when the consult already has a plan."""
        record = json.dumps(plan.to_json(), ensure_ascii=False).encode()
        async with self._db.engine.begin() as conn:
            await conn.execute(
                insert(Plan).values(
                    id=plan.id,
                    consult_id=plan.consult_id,
                    version=plan.version,
                    created_at=plan.created_at,
                    record_sealed=self._keyring.seal(
                        record, _aad(plan.id, plan.consult_id, "record")
                    ),
                    markdown_sealed=self._keyring.seal(
                        markdown.encode(), _aad(plan.id, plan.consult_id, "markdown")
                    ),
                    clinicians_sealed=self._keyring.seal(
                        clinicians.encode(), _aad(plan.id, plan.consult_id, "clinicians")
                    ),
                )
            )
            for job in jobs:
                await job(conn)

    async def get(self, consult_id: ConsultId) -> PlanView | None:
        row = await self._row(consult_id)
        if row is None:
            return None
        record = self._keyring.open(row.record_sealed, _aad(row.id, consult_id, "record"))
        return PlanView.from_json(json.loads(record))

    async def markdown(self, consult_id: ConsultId) -> str | None:
        row = await self._row(consult_id)
        if row is None:
            return None
        return self._keyring.open(
            row.markdown_sealed, _aad(row.id, consult_id, "markdown")
        ).decode()

    async def clinicians(self, consult_id: ConsultId) -> str | None:
        row = await self._row(consult_id)
        if row is None:
            return None
        return self._keyring.open(
            row.clinicians_sealed, _aad(row.id, consult_id, "clinicians")
        ).decode()

    async def _row(self, consult_id: ConsultId) -> Plan | None:
        async with self._db.sessions() as session:
            plan: Plan | None = await session.scalar(
                select(Plan).where(Plan.consult_id == consult_id)
            )
            return plan


async def _room_events(conn: AsyncConnection, consult_id: ConsultId) -> list[RoomEvent]:
    rows = (
        await conn.execute(
            select(
                AuditEvent.actor_type,
                AuditEvent.actor_id,
                AuditEvent.action,
                AuditEvent.at,
                AuditEvent.details,
            )
            .where(AuditEvent.consult_id == consult_id, AuditEvent.action.in_((ADMITTED, LEFT)))
            .order_by(AuditEvent.id)
        )
    ).all()
    events = []
    for row in rows:
        details = row.details if isinstance(row.details, dict) else {}
        pid = details.get("participant_id")
        if not isinstance(pid, str) and row.actor_type == "participant":
            pid = row.actor_id
        if isinstance(pid, str):
            events.append(RoomEvent(pid, row.action, row.at))
    return events
