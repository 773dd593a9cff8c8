"""The audit trail: append-only events of who did what to a consult. Ids and codes only."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.models import AuditEvent
from .model import Actor, AuditEntry


def record(
    session: AsyncSession,
    *,
    at: datetime,
    actor: Actor,
    action: str,
    consult_id: str | None = None,
    platform_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditEvent(
            consult_id=consult_id,
            platform_id=platform_id,
            at=at,
            actor_type=actor.type,
            actor_id=actor.id,
            action=action,
            details=details or {},
        )
    )


async def page(
    session: AsyncSession, consult_id: str, *, after: int, limit: int
) -> list[AuditEntry]:
    rows = await session.scalars(
        select(AuditEvent)
        .where(AuditEvent.consult_id == consult_id, AuditEvent.id > after)
        .order_by(AuditEvent.id)
        .limit(limit)
    )
    return [
        AuditEntry(
            id=row.id,
            at=row.at,
            actor_type=row.actor_type,
            actor_id=row.actor_id,
            action=row.action,
            details=row.details,
        )
        for row in rows
    ]
