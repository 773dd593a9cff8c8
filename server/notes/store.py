"""Plan rows: saved once per consult (a unique constraint settles racing saves), sealed, and read
back for the REST API, also as a follow-up series. Also the reads finalisation needs from outside
the notes: the consult's times, participants and series, the room's admitted/left events from the
audit trail, the check-in scores, and whether a hand-off brief is attached."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..auth.roles import Role
from ..consults import audit, outbox
from ..consults.checkins import open_measure
from ..consults.outbox import WebhookEventType
from ..consults.people import open_name
from ..consults.presence import PresentVia
from ..crypto import KeyRing
from ..db.engine import Database
from ..db.models import (
    AuditEvent,
    Consult,
    HandoffBrief,
    MeasureResult,
    NoteSnapshot,
    NoteUpdate,
    Participant,
    Plan,
)
from ..db.sealing import SealedColumn
from ..errors import ErrorCode, TriadError
from ..ids import ConsultId, MeasureId, ParticipantId, PlanId
from .diff import PlanChange, plan_changes
from .log import Job, snapshot_aad, update_aad
from .plan import (
    ADMITTED,
    LEFT,
    PRESENCE_CONFIRMED,
    PlanMeasure,
    PlanView,
    PreviousPlanRef,
    RoomEvent,
)


def _aad(plan_id: str, consult_id: str, part: str) -> bytes:
    return f"plan:{plan_id}:{consult_id}:{part}".encode()


def _part_aad(part: str) -> Callable[[str, str], bytes]:
    return lambda plan_id, consult_id: _aad(plan_id, consult_id, part)


# The notes channel's sealed columns (the log's associated data is `log.py`'s).
SEALED_COLUMNS = (
    SealedColumn("note_updates", "sealed", ("consult_id", "doc", "seq"), update_aad),
    SealedColumn("note_snapshots", "sealed", ("consult_id", "doc", "seq"), snapshot_aad),
    *(
        SealedColumn("plans", f"{part}_sealed", ("id", "consult_id"), _part_aad(part))
        for part in ("record", "markdown", "clinicians")
    ),
)


@dataclass(frozen=True)
class ConsultFacts:
    consult_id: ConsultId
    started_at: datetime | None
    ended_at: datetime | None
    has_plan: bool
    follows_id: ConsultId | None
    series_id: ConsultId
    # Read only for the plan (`for_plan=True`): the participants, the room's events, the check-in
    # scores and the brief's presence.
    participants: list[tuple[ParticipantId, Role, str]]
    events: list[RoomEvent]
    measures: tuple[PlanMeasure, ...]
    brief_attached: bool


@dataclass(frozen=True)
class SeriesPlan:
    """One saved plan of a follow-up series."""

    consult_id: ConsultId
    plan_id: PlanId
    version: int
    created_at: datetime

    def to_json(self) -> dict[str, object]:
        return {
            "consult_id": self.consult_id,
            "plan_id": self.plan_id,
            "version": self.version,
            "created_at": self.created_at.isoformat(),
        }


class PlanStore:
    def __init__(self, db: Database, keyring: KeyRing) -> None:
        self._db = db
        self._keyring = keyring

    async def consult_facts(self, consult_id: ConsultId, *, for_plan: bool = False) -> ConsultFacts:
        """What the notes need of the consult; `for_plan` adds what freezing the plan needs
        (the participants, the room's events, the check-in scores, the brief's presence)."""
        async with self._db.engine.connect() as conn:
            consult = (
                await conn.execute(
                    select(
                        Consult.started_at,
                        Consult.ended_at,
                        Consult.follows_id,
                        Consult.series_id,
                    ).where(Consult.id == consult_id)
                )
            ).first()
            if consult is None:
                raise TriadError(ErrorCode.CONSULT_NOT_FOUND, "no such consult")
            has_plan = (
                await conn.scalar(select(Plan.id).where(Plan.consult_id == consult_id))
            ) is not None
            people = await _participants(conn, self._keyring, consult_id) if for_plan else []
            room_events = await _room_events(conn, self._keyring, consult_id) if for_plan else []
            measures = await self._measures(conn, consult_id) if for_plan else ()
            brief = for_plan and (
                await conn.scalar(
                    select(HandoffBrief.consult_id).where(HandoffBrief.consult_id == consult_id)
                )
                is not None
            )
        return ConsultFacts(
            consult_id=consult_id,
            started_at=consult.started_at,
            ended_at=consult.ended_at,
            has_plan=has_plan,
            follows_id=ConsultId(consult.follows_id) if consult.follows_id else None,
            series_id=ConsultId(consult.series_id),
            participants=people,
            events=room_events,
            measures=measures,
            brief_attached=brief,
        )

    async def _measures(
        self, conn: AsyncConnection, consult_id: ConsultId
    ) -> tuple[PlanMeasure, ...]:
        rows = await conn.execute(
            select(MeasureResult.id, MeasureResult.sealed).where(
                MeasureResult.consult_id == consult_id
            )
        )
        measures = []
        for row in rows:
            score, recorded_at = open_measure(self._keyring, row.id, consult_id, row.sealed)
            measures.append(PlanMeasure(MeasureId(row.id), recorded_at, score))
        return tuple(sorted(measures, key=lambda m: (m.recorded_at, m.id)))

    async def previous(self, follows_id: ConsultId | None) -> PreviousPlanRef | None:
        """The saved plan a follow-up follows (None for a first consult)."""
        if follows_id is None:
            return None
        async with self._db.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(Plan.id, Plan.version).where(Plan.consult_id == follows_id)
                )
            ).first()
        return PreviousPlanRef(follows_id, PlanId(row.id), row.version) if row else None

    async def diff(
        self, from_consult: ConsultId, to_consult: ConsultId
    ) -> tuple[PlanView, PlanView, list[PlanChange]]:
        """The saved plans of two consults of one series, and the changes between them."""
        older, newer = await self.get(from_consult), await self.get(to_consult)
        if older is None or newer is None:
            raise TriadError(ErrorCode.PLAN_NOT_FOUND, "both consults need a saved plan")
        if older.series_id != newer.series_id:
            raise TriadError(ErrorCode.VALIDATION_FAILED, "the two plans are of different series")
        return older, newer, plan_changes(older.content, newer.content)

    async def series_plans(self, series_id: ConsultId) -> list[SeriesPlan]:
        """The saved plans of a follow-up series, in version order."""
        async with self._db.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(Plan.consult_id, Plan.id, Plan.version, Plan.created_at)
                    .join(Consult, Consult.id == Plan.consult_id)
                    .where(Consult.series_id == series_id)
                    .order_by(Plan.version, Plan.created_at, Plan.id)
                )
            ).all()
        return [
            SeriesPlan(ConsultId(r.consult_id), PlanId(r.id), r.version, r.created_at) for r in rows
        ]

    async def save(
        self,
        plan: PlanView,
        markdown: str,
        clinicians: str,
        jobs: list[Job],
        seqs: dict[str, int],
    ) -> None:
        """Insert the plan and run `jobs` (final snapshots) in the same transaction. Raises
        IntegrityError when the consult already has a plan, and `StaleCopy` when the database
        holds a document past the sequence number (`seqs`) the plan was read at: a copy in
        this process that another worker wrote past (it held the consult since), which must
        not become the plan."""
        record = json.dumps(plan.to_json(), ensure_ascii=False).encode()
        async with self._db.engine.begin() as conn:
            if await _written_past(conn, plan.consult_id, seqs):
                raise StaleCopy(plan.consult_id)
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
            # The platform hears of the saved plan (its id and version) with the save itself.
            platform_id = await conn.scalar(
                select(Consult.platform_id).where(Consult.id == plan.consult_id)
            )
            if platform_id is not None:
                await outbox.insert_event(
                    conn,
                    self._keyring,
                    WebhookEventType.PLAN_SAVED,
                    consult_id=plan.consult_id,
                    platform_id=platform_id,
                    at=plan.created_at,
                    facts={"plan_id": plan.id, "version": plan.version},
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


class StaleCopy(Exception):
    """The notes log holds updates the copy being frozen does not."""


async def _written_past(conn: AsyncConnection, consult_id: ConsultId, seqs: dict[str, int]) -> bool:
    """Whether the log or a snapshot holds a document past `seqs[doc]` (one query)."""
    logged = select(NoteUpdate.doc, func.max(NoteUpdate.seq).label("seq")).where(
        NoteUpdate.consult_id == consult_id
    )
    snapped = select(NoteSnapshot.doc, NoteSnapshot.seq).where(
        NoteSnapshot.consult_id == consult_id
    )
    rows = await conn.execute(logged.group_by(NoteUpdate.doc).union_all(snapped))
    return any(row.seq is not None and row.seq > seqs.get(row.doc, 0) for row in rows)


async def _participants(
    conn: AsyncConnection, keyring: KeyRing, consult_id: ConsultId
) -> list[tuple[ParticipantId, Role, str]]:
    rows = await conn.execute(
        select(Participant.id, Participant.role, Participant.name_sealed).where(
            Participant.consult_id == consult_id
        )
    )
    return [
        (ParticipantId(p.id), Role(p.role), open_name(keyring, p.id, consult_id, p.name_sealed))
        for p in rows
    ]


async def _room_events(
    conn: AsyncConnection, keyring: KeyRing, consult_id: ConsultId
) -> list[RoomEvent]:
    rows = (
        await conn.execute(
            select(
                AuditEvent.id,
                AuditEvent.actor_type,
                AuditEvent.actor_id,
                AuditEvent.action,
                AuditEvent.at,
                AuditEvent.details,
                AuditEvent.sealed,
            )
            .where(
                AuditEvent.consult_id == consult_id,
                AuditEvent.action.in_((ADMITTED, LEFT, PRESENCE_CONFIRMED)),
            )
            .order_by(AuditEvent.id)
        )
    ).all()
    events = []
    for row in rows:
        if row.action == PRESENCE_CONFIRMED:
            sealed = audit.open_details(keyring, row.id, row.sealed)
            declarer, present, by = (sealed.get(k) for k in ("declarer", "present", "by"))
            if isinstance(declarer, str) and isinstance(present, str) and isinstance(by, str):
                via = PresentVia(str(sealed.get("via")))
                events.append(RoomEvent(declarer, row.action, row.at, present, via, by))
            continue
        details = row.details if isinstance(row.details, dict) else {}
        pid = details.get("participant_id")
        if not isinstance(pid, str) and row.actor_type == "participant":
            pid = row.actor_id
        if isinstance(pid, str):
            events.append(RoomEvent(pid, row.action, row.at))
    return events
