"""The `*.read` audit event every handler that answers with PHI writes before it answers."""

from __future__ import annotations

from ..consults.audit import AuditAction
from ..consults.model import Actor
from ..ids import ConsultId
from .context import SERVICES
from .operations import Call


def reader(call: Call) -> Actor:
    """Who is reading: the participant (join token) or the platform (its API key)."""
    if call.participant is not None:
        return Actor("participant", call.participant.participant_id)
    return Actor("platform", call.caller().key_id)


async def log_read(
    call: Call, consult_id: ConsultId, action: AuditAction, **details: str | int | None
) -> None:
    await call.request.app[SERVICES].reads.read(consult_id, reader(call), action, details)
