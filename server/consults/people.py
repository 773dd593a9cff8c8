"""A participant's sealed fields: the name (PHI) and the same-room declarations, each bound to
the participant and consult it belongs to, so a value copied onto another row does not open."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..auth.roles import Role
from ..crypto import KeyRing
from ..db.models import Participant
from ..db.sealing import SealedColumn
from ..ids import ParticipantId
from .model import JoinIdentity
from .presence import Declaration


def _name_aad(participant_id: str, consult_id: str) -> bytes:
    return f"participant-name:{participant_id}:{consult_id}".encode()


def _presence_aad(participant_id: str, consult_id: str) -> bytes:
    return f"participant-presence:{participant_id}:{consult_id}".encode()


SEALED_COLUMNS = (
    SealedColumn("participants", "name_sealed", ("id", "consult_id"), _name_aad),
    SealedColumn("participants", "presence_sealed", ("id", "consult_id"), _presence_aad),
)


def seal_name(keyring: KeyRing, participant_id: str, consult_id: str, name: str) -> bytes:
    return keyring.seal(name.encode(), _name_aad(participant_id, consult_id))


def open_name(keyring: KeyRing, participant_id: str, consult_id: str, sealed: bytes) -> str:
    return keyring.open(sealed, _name_aad(participant_id, consult_id)).decode()


def seal_presence(
    keyring: KeyRing, participant_id: str, consult_id: str, declarations: tuple[Declaration, ...]
) -> bytes | None:
    if not declarations:
        return None
    payload = json.dumps([d.to_json() for d in declarations]).encode()
    return keyring.seal(payload, _presence_aad(participant_id, consult_id))


def open_presence(
    keyring: KeyRing, participant_id: str, consult_id: str, sealed: bytes | None
) -> tuple[Declaration, ...]:
    if sealed is None:
        return ()
    items: list[dict[str, Any]] = json.loads(
        keyring.open(sealed, _presence_aad(participant_id, consult_id))
    )
    return tuple(Declaration.from_json(item) for item in items)


async def client_at_device(
    session: AsyncSession, keyring: KeyRing, who: JoinIdentity
) -> ParticipantId | None:
    """The client, when the client's presence at `who`'s device is in effect (confirmed by the
    client or attested by the other clinician: see `presence`); None otherwise."""
    rows = (
        await session.scalars(select(Participant).where(Participant.consult_id == who.consult_id))
    ).all()
    client = next((row.id for row in rows if row.role == Role.CLIENT), None)
    mine = next((row for row in rows if row.id == who.participant_id), None)
    if client is None or mine is None:
        return None
    declarations = open_presence(keyring, mine.id, mine.consult_id, mine.presence_sealed)
    in_effect = any(d.participant_id == client and d.in_effect for d in declarations)
    return ParticipantId(client) if in_effect else None
