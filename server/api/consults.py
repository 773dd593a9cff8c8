"""Platform operations on consults (API key)."""

from __future__ import annotations

import re
from datetime import timedelta

from pydantic import Field

from ..consults.audit import AuditAction
from ..consults.model import (
    Actor,
    AuditEntry,
    Brief,
    ConsultSpec,
    ConsultView,
    IssuedToken,
    ParticipantSpec,
)
from ..errors import ErrorCode, FieldError, TriadError
from ..ids import ConsultId, ParticipantId
from .context import SERVICES
from .operations import Call, Reply
from .reads import log_read
from .schemas import (
    AuditEventOut,
    AuditPageOut,
    Body,
    ConsultCreatedOut,
    ConsultOut,
    CreateConsultIn,
    IssuedTokenOut,
    MintTokenIn,
    ParticipantWithTokenOut,
    RevokedOut,
)

MAX_AUDIT_PAGE = 500
IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# 1-255 visible ASCII characters: room for a UUID or the platform's own request id. One pattern
# for the check and the OpenAPI schema, so the document says exactly what is accepted.
_IDEMPOTENCY_PATTERN = r"^[\x21-\x7e]{1,255}$"
_IDEMPOTENCY_KEY = re.compile(_IDEMPOTENCY_PATTERN)

CREATE_REQUEST_HEADERS = {
    IDEMPOTENCY_HEADER: {
        "required": False,
        "description": (
            "Makes retries safe: a repeat of the same request with the same key answers with the "
            "consult the first created (and fresh join tokens) instead of creating another; the "
            "key with a different request is refused."
        ),
        "schema": {"type": "string", "pattern": _IDEMPOTENCY_PATTERN},
    }
}
CREATE_RESPONSE_HEADERS = {
    REPLAYED_HEADER: {
        "description": "`true` when the answer is a replay of an earlier request.",
        "schema": {"type": "string", "enum": ["true"]},
    }
}


class AuditQuery(Body):
    after: int = Field(default=0, ge=0, le=2**63 - 1, description="Return events with a larger id.")
    limit: int = Field(default=100, ge=1, le=MAX_AUDIT_PAGE)


def consult_out(view: ConsultView) -> ConsultOut:
    return ConsultOut.model_validate(view, from_attributes=True)


def token_out(token: IssuedToken) -> IssuedTokenOut:
    return IssuedTokenOut.model_validate(token, from_attributes=True)


def audit_out(entry: AuditEntry) -> AuditEventOut:
    return AuditEventOut.model_validate(entry, from_attributes=True)


def idempotency_key(call: Call) -> str | None:
    key = call.request.headers.get(IDEMPOTENCY_HEADER)
    if key is not None and not _IDEMPOTENCY_KEY.fullmatch(key):
        raise TriadError(
            ErrorCode.VALIDATION_FAILED,
            "the Idempotency-Key header is not valid",
            [FieldError(f"/headers/{IDEMPOTENCY_HEADER}", "1-255 visible ASCII characters")],
        )
    return key


async def create_consult(call: Call) -> Reply:
    body = call.body_as(CreateConsultIn)
    key = idempotency_key(call)
    spec = ConsultSpec(
        participants=tuple(ParticipantSpec(p.role, p.name) for p in body.participants),
        auto_admit=body.auto_admit,
        scheduled_start=body.scheduled_start,
        scheduled_end=body.scheduled_end,
        external_id=body.external_id,
        follows=ConsultId(body.follows) if body.follows else None,
        brief=Brief(**body.brief.model_dump()) if body.brief else None,
        client_is_minor=body.client_is_minor,
    )
    created = await call.request.app[SERVICES].consults.create(call.caller(), spec, key)
    participants = [
        ParticipantWithTokenOut(
            id=p.id, role=p.role, name=p.name, join=token_out(created.tokens[p.id])
        )
        for p in created.consult.participants
    ]
    base = consult_out(created.consult).model_dump(exclude={"participants"})
    return Reply(
        201,
        ConsultCreatedOut(**base, participants=participants),
        headers={REPLAYED_HEADER: "true"} if created.replayed else {},
    )


async def get_consult(call: Call) -> Reply:
    view = await call.request.app[SERVICES].consults.get(call.caller(), call.consult_id())
    await log_read(call, view.id, AuditAction.CONSULT_READ)  # the names are PHI
    return Reply(200, consult_out(view))


async def end_consult(call: Call) -> Reply:
    services, caller = call.request.app[SERVICES], call.caller()
    view = await services.consults.end(caller, call.consult_id())
    # Then save the plan and close the live room (on whichever worker holds it); both are
    # idempotent, like the end itself.
    await services.relay.finish(view.id, Actor("platform", caller.key_id))
    return Reply(200, consult_out(view))


async def mint_token(call: Call) -> Reply:
    body = call.body_as(MintTokenIn)
    ttl = timedelta(seconds=body.ttl_seconds) if body.ttl_seconds else None
    token = await call.request.app[SERVICES].consults.mint_token(
        call.caller(), call.consult_id(), ParticipantId(call.path("participant_id")), ttl
    )
    return Reply(201, token_out(token))


async def revoke_tokens(call: Call) -> Reply:
    participant_id = ParticipantId(call.path("participant_id"))
    revoked_at = await call.request.app[SERVICES].consults.revoke_tokens(
        call.caller(), call.consult_id(), participant_id
    )
    return Reply(200, RevokedOut(participant_id=participant_id, revoked_at=revoked_at))


async def read_audit(call: Call) -> Reply:
    query = call.query_as(AuditQuery)
    entries = await call.request.app[SERVICES].consults.audit_trail(
        call.caller(), call.consult_id(), after=query.after, limit=query.limit
    )
    next_after = entries[-1].id if len(entries) == query.limit else None
    return Reply(200, AuditPageOut(events=[audit_out(e) for e in entries], next_after=next_after))
