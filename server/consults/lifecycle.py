"""A consult's lifecycle as the rooms drive it: live on the first admission, ended once, and
the audit events of who joined, was admitted, denied, removed or left."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..crypto import KeyRing
from ..db.engine import Database
from ..db.models import Consult
from ..ids import ConsultId
from . import audit
from .audit import AuditAction
from .model import Actor, ConsultStatus


async def end_row(
    session: AsyncSession,
    consult_id: ConsultId,
    actor: Actor,
    now: datetime,
    platform_id: str,
    keyring: KeyRing,
) -> bool:
    """End the consult in this transaction; True for the one caller that changed it.

    The status guard makes it atomic: of any number of racing ends, one row update wins and
    only that one writes the `consult.ended` event."""
    result = await session.execute(
        update(Consult)
        .where(Consult.id == consult_id, Consult.status != ConsultStatus.ENDED)
        .values(status=ConsultStatus.ENDED, ended_at=now, ended_by=actor.label())
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    audit.record(
        session,
        at=now,
        actor=actor,
        action=AuditAction.CONSULT_ENDED,
        consult_id=consult_id,
        platform_id=platform_id,
        keyring=keyring,
    )
    return True


class ConsultLifecycle:
    """`rooms.ports.ConsultRecords`, on the database."""

    def __init__(self, db: Database, keyring: KeyRing, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._keyring = keyring
        self._clock = clock

    async def mark_live(self, consult_id: ConsultId) -> None:
        now = self._clock()
        async with self._db.sessions.begin() as session:
            result = await session.execute(
                update(Consult)
                .where(Consult.id == consult_id, Consult.status == ConsultStatus.SCHEDULED)
                .values(status=ConsultStatus.LIVE, started_at=now)
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                audit.record(
                    session,
                    at=now,
                    actor=Actor("system"),
                    action=AuditAction.CONSULT_LIVE,
                    consult_id=consult_id,
                    platform_id=await audit.platform_of(session, consult_id),
                    keyring=self._keyring,
                )

    async def end(self, consult_id: ConsultId, actor: Actor) -> bool:
        async with self._db.sessions.begin() as session:
            platform_id = await audit.platform_of(session, consult_id)
            return await end_row(
                session, consult_id, actor, self._clock(), platform_id, self._keyring
            )

    async def ended_among(self, consult_ids: Sequence[ConsultId]) -> dict[ConsultId, str]:
        """Those of `consult_ids` whose row is ended, each with who ended it (its label)."""
        async with self._db.sessions() as session:
            rows = await session.execute(
                select(Consult.id, Consult.ended_by).where(
                    Consult.id.in_(list(consult_ids)), Consult.status == ConsultStatus.ENDED
                )
            )
            return {ConsultId(row.id): row.ended_by or "system" for row in rows}

    async def record(
        self,
        consult_id: ConsultId,
        actor: Actor,
        action: AuditAction,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        async with self._db.sessions.begin() as session:
            audit.record(
                session,
                at=self._clock(),
                actor=actor,
                action=AuditAction(action),
                consult_id=consult_id,
                platform_id=await audit.platform_of(session, consult_id),
                details=dict(details or {}),
                keyring=self._keyring,
            )
