"""Operations a participant calls with their join token."""

from __future__ import annotations

from datetime import UTC, datetime

from ..consults.audit import AuditAction
from ..consults.model import ConsultStatus
from .context import CLUSTER, SERVICES
from .operations import Call, Reply
from .reads import log_read
from .schemas import (
    DeclaredWithYouOut,
    ParticipantOut,
    SessionConsultOut,
    SessionOut,
    SessionYouOut,
    WorkerOut,
)


async def read_session(call: Call) -> Reply:
    """Who am I in this consult, and with whom: what the join page shows before the room."""
    identity, consult = call.participant, call.participant_consult
    if identity is None or consult is None:  # auth="join_token" guarantees both
        raise RuntimeError("operation has no participant")
    services = call.request.app[SERVICES]
    care = await services.care.care_state(consult.id)
    declared = await services.care.declarations(identity)
    worker = None
    member = call.request.app[CLUSTER]
    if member is not None and consult.status != ConsultStatus.ENDED:
        owner = await member.placement.owner(consult.id)
        worker = WorkerOut(id=owner.worker_id, url=owner.url)
    await log_read(call, consult.id, AuditAction.SESSION_READ)  # the names are PHI
    return Reply(
        200,
        SessionOut(
            consult=SessionConsultOut(
                id=consult.id,
                status=consult.status,
                auto_admit=consult.auto_admit,
                scheduled_start=consult.scheduled_start,
                scheduled_end=consult.scheduled_end,
                client_is_minor=consult.client_is_minor,
            ),
            you=SessionYouOut(
                participant_id=identity.participant_id,
                role=identity.role,
                name=identity.name,
                token_expires_at=datetime.fromtimestamp(identity.expires_at, tz=UTC),
                present_with=list(care.present_with.get(identity.participant_id, ())),
                declared=[d.participant_id for d in declared],
                declared_with_you=[
                    DeclaredWithYouOut(declarer_id=p.declarer.id)
                    for p in care.pending_presence
                    if p.declared.id == identity.participant_id
                ],
            ),
            participants=[
                ParticipantOut(id=p.id, role=p.role, name=p.name) for p in consult.participants
            ],
            worker=worker,
        ),
    )
