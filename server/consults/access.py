"""Turning a join token into a participant: the checks that need the database."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from ..auth import tokens
from ..auth.roles import Role
from ..db.engine import Database
from ..db.models import ApiKey, Consult, Participant
from ..errors import ErrorCode, TriadError
from ..ids import ConsultId
from .model import ConsultStatus, ConsultView, JoinIdentity
from .platforms import PlatformKeys
from .service import consult_view


class ParticipantAccess:
    def __init__(self, db: Database, keys: PlatformKeys, leeway_seconds: float) -> None:
        self._db = db
        self._keys = keys
        self._leeway = leeway_seconds

    async def authenticate(
        self, token: str, consult_id: ConsultId | None = None, *, allow_ended: bool = False
    ) -> tuple[JoinIdentity, ConsultView]:
        """The participant this token proves, in the consult it names (and that the caller
        asked for, when given). Raises a token or consult error otherwise. `allow_ended` (for
        reading the saved plan after the end) accepts a token of an ended consult."""
        key_id = tokens.read_key_id(token)
        key = await self._keys.signing_key(key_id)
        if key is None:
            raise TriadError(ErrorCode.TOKEN_INVALID, "the join token's key is unknown or revoked")
        claims = tokens.verify(token, key_id=key_id, secret=key.secret, leeway=self._leeway)
        if consult_id is not None and claims.consult != consult_id:
            raise TriadError(ErrorCode.TOKEN_WRONG_CONSULT, "the join token is for another consult")
        async with self._db.sessions() as session:
            participant = await session.get(Participant, claims.sub)
            consult = await session.get(Consult, claims.consult)
            # One message for every mismatch: a signer learns nothing about others' consults.
            if (
                participant is None
                or consult is None
                or participant.consult_id != consult.id
                or consult.platform_id != key.platform_id
                or participant.role != claims.role
            ):
                raise TriadError(
                    ErrorCode.TOKEN_INVALID, "the join token names no such participant"
                )
            revoked_at = participant.tokens_revoked_at
            if revoked_at is not None and claims.iat <= revoked_at.timestamp():
                raise TriadError(ErrorCode.TOKEN_REVOKED, "the join token was revoked")
            if consult.status == ConsultStatus.ENDED and not allow_ended:
                raise TriadError(ErrorCode.CONSULT_ENDED, "the consult has ended")
            view = await consult_view(session, consult, self._keys.keyring)
        identity = JoinIdentity(
            consult_id=ConsultId(consult.id),
            participant_id=claims.sub,
            role=Role(claims.role),
            name=claims.name,
            jti=claims.jti,
            expires_at=claims.exp,
            key_id=key_id,
            issued_at=claims.iat,
        )
        return identity, view

    async def lapsed(self, held: Sequence[JoinIdentity]) -> list[ErrorCode | None]:
        """For each identity a live socket holds: the code its access lapsed with (tokens
        revoked at or after its `iat`, its signing key revoked), or None while it holds. Two
        queries whatever the number: the periodic re-check of every socket of a process."""
        if not held:
            return []
        pids = {i.participant_id for i in held}
        kids = {i.key_id for i in held}
        async with self._db.sessions() as session:
            rows = await session.execute(
                select(Participant.id, Participant.tokens_revoked_at).where(
                    Participant.id.in_(pids)
                )
            )
            revoked_at = {pid: stamp for pid, stamp in rows.all()}
            dead_keys = set(
                await session.scalars(
                    select(ApiKey.id).where(ApiKey.id.in_(kids), ApiKey.revoked_at.is_not(None))
                )
            )
        codes: list[ErrorCode | None] = []
        for identity in held:
            stamp = revoked_at.get(identity.participant_id)
            if identity.key_id in dead_keys:
                codes.append(ErrorCode.TOKEN_INVALID)
            elif stamp is not None and identity.issued_at <= stamp.timestamp():
                codes.append(ErrorCode.TOKEN_REVOKED)
            else:
                codes.append(None)
        return codes
