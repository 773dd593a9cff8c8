"""The audit trail as the database holds it, sealed details opened with the server's key ring:
what a test needs to check that a clinical fact went into the sealed part and nowhere else."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from server.consults.audit import open_details
from server.db.models import AuditEvent
from server.services import Services


@dataclass(frozen=True)
class StoredEvent:
    action: str
    actor_type: str
    actor_id: str | None
    details: dict[str, Any]
    sealed: dict[str, object]


async def stored_events(services: Services, consult_id: str) -> list[StoredEvent]:
    async with services.db.sessions() as session:
        rows = await session.scalars(
            select(AuditEvent).where(AuditEvent.consult_id == consult_id).order_by(AuditEvent.id)
        )
        return [
            StoredEvent(
                row.action,
                row.actor_type,
                row.actor_id,
                row.details,
                open_details(services.keys.keyring, row.id, row.sealed),
            )
            for row in rows
        ]
