"""The therapist's hand-off brief: what the psychiatrist needs before the first minute, so the
client does not retell their story. Clinicians only; sealed at rest; reads are audited."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from ..crypto import KeyRing
from ..db.engine import Database
from ..db.models import HandoffBrief
from ..db.sealing import SealedColumn
from ..errors import ErrorCode, TriadError
from ..ids import ConsultId
from . import audit
from .audit import AuditAction
from .model import Actor, Brief


@dataclass(frozen=True)
class BriefRecord:
    consult_id: ConsultId
    brief: Brief
    author_role: str
    created_at: datetime
    updated_at: datetime


def _aad(consult_id: str) -> bytes:
    return f"brief:{consult_id}".encode()


SEALED_COLUMNS = (SealedColumn("handoff_briefs", "sealed", ("consult_id",), _aad),)


def add_brief(
    session: AsyncSession,
    keyring: KeyRing,
    consult_id: ConsultId,
    brief: Brief,
    author_role: str,
    now: datetime,
) -> HandoffBrief:
    row = HandoffBrief(
        consult_id=consult_id,
        author_role=author_role,
        created_at=now,
        updated_at=now,
        sealed=_seal(keyring, consult_id, brief),
    )
    session.add(row)
    return row


def _seal(keyring: KeyRing, consult_id: ConsultId, brief: Brief) -> bytes:
    return keyring.seal(json.dumps(asdict(brief)).encode(), _aad(consult_id))


class BriefBook:
    def __init__(self, db: Database, keyring: KeyRing, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._keyring = keyring
        self._clock = clock

    async def put(
        self, consult_id: ConsultId, brief: Brief, *, author_role: str, actor: Actor
    ) -> BriefRecord:
        """Attach or replace the brief (the latest version is the brief)."""
        now = self._clock()
        async with self._db.sessions.begin() as session:
            row = await session.get(HandoffBrief, consult_id, with_for_update=True)
            if row is None:
                row = add_brief(session, self._keyring, consult_id, brief, author_role, now)
            else:
                row.author_role, row.updated_at = author_role, now
                row.sealed = _seal(self._keyring, consult_id, brief)
            audit.record(
                session,
                at=now,
                actor=actor,
                action=AuditAction.BRIEF_SAVED,
                consult_id=consult_id,
                platform_id=await audit.platform_of(session, consult_id),
                details={"author_role": author_role},
            )
            return BriefRecord(consult_id, brief, author_role, row.created_at, now)

    async def get(self, consult_id: ConsultId, *, actor: Actor) -> BriefRecord:
        async with self._db.sessions.begin() as session:
            row = await session.get(HandoffBrief, consult_id)
            if row is None:
                raise TriadError(ErrorCode.BRIEF_NOT_FOUND, "no hand-off brief is attached")
            # Who read clinical data, and when (HIPAA audit controls).
            audit.record(
                session,
                at=self._clock(),
                actor=actor,
                action=AuditAction.BRIEF_READ,
                consult_id=consult_id,
                platform_id=await audit.platform_of(session, consult_id),
            )
            fields = json.loads(self._keyring.open(row.sealed, _aad(consult_id)))
            return BriefRecord(
                consult_id, Brief(**fields), row.author_role, row.created_at, row.updated_at
            )

    async def exists(self, consult_id: ConsultId) -> bool:
        async with self._db.sessions() as session:
            return await session.get(HandoffBrief, consult_id) is not None
