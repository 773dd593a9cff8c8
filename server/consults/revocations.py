"""Revoking a participant's join tokens: the one path the platform's `DELETE .../tokens` and a
host's `remove` share. The row is stamped and audited in one transaction, then the change is
published so that every process closes that participant's live sockets."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from ..db.engine import Database
from ..db.models import Consult, Participant
from ..errors import ErrorCode, TriadError
from ..ids import ConsultId, ParticipantId, PlatformId
from . import audit
from .access_events import AccessChange, AccessEvent, AccessEvents
from .audit import AuditAction
from .model import Actor


class TokenRevocations:
    def __init__(self, db: Database, events: AccessEvents, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._events = events
        self._clock = clock

    async def revoke(
        self,
        consult_id: ConsultId,
        participant_id: ParticipantId,
        actor: Actor,
        *,
        platform_id: PlatformId | None = None,
        removed: bool = False,
    ) -> datetime:
        """Refuse every join token of this participant issued until now; returns that instant.
        With `platform_id`, a consult of another platform is reported as missing. `removed`
        says a host removed them (their sockets are told `removed`, not `token_revoked`)."""
        now = self._clock()
        async with self._db.sessions.begin() as session:
            consult = await session.get(Consult, consult_id)
            if consult is None or (platform_id is not None and consult.platform_id != platform_id):
                raise TriadError(ErrorCode.CONSULT_NOT_FOUND, "no such consult")
            participant = await session.get(Participant, participant_id)
            if participant is None or participant.consult_id != consult_id:
                raise TriadError(
                    ErrorCode.PARTICIPANT_NOT_FOUND, "no such participant in this consult"
                )
            participant.tokens_revoked_at = now
            details: dict[str, str] = {"participant_id": participant_id}
            if removed:
                details["reason"] = "removed"
            audit.record(
                session,
                at=now,
                actor=actor,
                action=AuditAction.TOKENS_REVOKED,
                consult_id=consult_id,
                platform_id=consult.platform_id,
                details=details,
            )
        change = AccessChange.PARTICIPANT_REMOVED if removed else AccessChange.TOKENS_REVOKED
        await self._events.publish(AccessEvent(change, now.timestamp(), participant_id))
        return now
