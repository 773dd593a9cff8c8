"""The audit trail: append-only events of who did what to a consult. Ids and codes only."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.models import AuditEvent, Consult
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


async def platform_of(session: AsyncSession, consult_id: str) -> str:
    """The consult's platform, which every audit event of the consult names."""
    platform_id = await session.scalar(select(Consult.platform_id).where(Consult.id == consult_id))
    if platform_id is None:
        raise LookupError("no such consult")  # the caller verified it exists; a bug otherwise
    return platform_id
