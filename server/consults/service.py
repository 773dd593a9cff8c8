"""Consults: create, read, end, mint and revoke join tokens, read the audit trail.

Every method that changes state writes its audit event in the same transaction, so the trail
cannot miss a change nor record one that did not happen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ..auth import tokens
from ..auth.roles import Role
from ..crypto import KeyRing
from ..db.engine import Database
from ..db.models import ApiKey, Consult, IdempotencyKey, Participant, Plan
from ..errors import ErrorCode, TriadError
from ..ids import ConsultId, KeyId, ParticipantId, new_consult_id, new_participant_id, new_token_id
from . import audit
from .access_events import LocalAccessEvents
from .audit import AuditAction
from .brief import add_brief
from .lifecycle import end_row
from .model import (
    Actor,
    AuditEntry,
    ConsultSpec,
    ConsultStatus,
    ConsultView,
    CreatedConsult,
    IssuedToken,
    ParticipantView,
    PlatformCaller,
)
from .people import open_name, seal_name
from .revocations import TokenRevocations

# Revocation compares `iat` to the revocation instant; a token minted right after a revocation
# is stamped at least this much later so that it is not caught by it.
_AFTER_REVOCATION = 0.001


class ConsultService:
    def __init__(
        self,
        db: Database,
        keyring: KeyRing,
        *,
        public_base_url: str,
        token_ttl: timedelta,
        clock: Callable[[], datetime],
        revocations: TokenRevocations | None = None,
    ) -> None:
        self._db = db
        # Without a bus (a tool using the service alone) revocation reaches this process only.
        self._revocations = revocations or TokenRevocations(db, LocalAccessEvents(), clock)
        self._keyring = keyring
        self._base_url = public_base_url
        self._token_ttl = token_ttl
        self._clock = clock

    def join_url(self, consult_id: ConsultId, token: str) -> str:
        # The token rides in the fragment: browsers never send it, so no server or proxy logs it.
        return f"{self._base_url}/c/{consult_id}#token={token}"

    async def create(
        self, caller: PlatformCaller, spec: ConsultSpec, idempotency_key: str | None = None
    ) -> CreatedConsult:
        """Create the consult and its participants' join tokens. With an idempotency key, a
        retry of the same request answers with the consult the first one created (and fresh
        tokens: the first ones are not stored), and the key with another request is refused."""
        digest = spec.digest()
        if idempotency_key is not None:
            replay = await self._replay(caller, idempotency_key, digest)
            if replay is not None:
                return replay
        try:
            return await self._create(caller, spec, idempotency_key, digest)
        except IntegrityError:
            if idempotency_key is None:
                raise
            # A concurrent request with the same key committed first: answer as its replay.
            replay = await self._replay(caller, idempotency_key, digest)
            if replay is None:
                raise
            return replay

    async def _create(
        self,
        caller: PlatformCaller,
        spec: ConsultSpec,
        idempotency_key: str | None,
        digest: bytes,
    ) -> CreatedConsult:
        now = self._clock()
        consult_id = new_consult_id()
        actor = Actor("platform", caller.key_id)
        async with self._db.sessions.begin() as session:
            session.add(
                Consult(
                    id=consult_id,
                    platform_id=caller.platform_id,
                    status=ConsultStatus.SCHEDULED,
                    auto_admit=spec.auto_admit,
                    external_id=spec.external_id,
                    scheduled_start=spec.scheduled_start,
                    scheduled_end=spec.scheduled_end,
                    created_at=now,
                    follows_id=spec.follows,
                    series_id=await self._series_of(session, caller, spec.follows) or consult_id,
                    client_is_minor=spec.client_is_minor,
                )
            )
            await session.flush()  # the consult row must exist before rows that refer to it
            if spec.brief is not None:
                add_brief(session, self._keyring, consult_id, spec.brief, "platform", now)
            if idempotency_key is not None:
                session.add(
                    IdempotencyKey(
                        platform_id=caller.platform_id,
                        key=idempotency_key,
                        request_digest=digest,
                        consult_id=consult_id,
                        created_at=now,
                    )
                )
            participants = []
            for p in spec.participants:
                participant_id = new_participant_id()
                participants.append(
                    Participant(
                        id=participant_id,
                        consult_id=consult_id,
                        role=p.role,
                        name_sealed=seal_name(self._keyring, participant_id, consult_id, p.name),
                        created_at=now,
                    )
                )
            session.add_all(participants)
            audit.record(
                session,
                at=now,
                actor=actor,
                action=AuditAction.CONSULT_CREATED,
                consult_id=consult_id,
                platform_id=caller.platform_id,
                details={"participants": {p.role: p.id for p in participants}},
            )
            issued = self._issue_all(session, caller, consult_id, participants, now, actor)
            await session.flush()
            view = await self._view(session, caller, consult_id)
        return CreatedConsult(view, issued)

    async def _series_of(
        self, session: AsyncSession, caller: PlatformCaller, follows: ConsultId | None
    ) -> ConsultId | None:
        """The series a follow-up joins: that of the consult it follows, which must be this
        platform's, ended, and have its plan saved (the new plan starts from it)."""
        if follows is None:
            return None
        previous = await session.get(Consult, follows)
        if previous is None or previous.platform_id != caller.platform_id:
            raise TriadError(ErrorCode.PREVIOUS_CONSULT_INVALID, "no such earlier consult")
        saved = await session.scalar(select(Plan.id).where(Plan.consult_id == follows))
        if previous.status != ConsultStatus.ENDED or saved is None:
            raise TriadError(
                ErrorCode.PREVIOUS_CONSULT_INVALID,
                "the earlier consult has not ended with a saved plan yet",
            )
        return ConsultId(previous.series_id)

    async def _replay(
        self, caller: PlatformCaller, idempotency_key: str, digest: bytes
    ) -> CreatedConsult | None:
        now = self._clock()
        async with self._db.sessions.begin() as session:
            row = await session.get(IdempotencyKey, (caller.platform_id, idempotency_key))
            if row is None:
                return None
            if row.request_digest != digest:
                raise TriadError(
                    ErrorCode.IDEMPOTENCY_KEY_REUSED,
                    "this Idempotency-Key was used for a different consult",
                )
            consult_id = ConsultId(row.consult_id)
            view = await self._view(session, caller, consult_id)
            if view.status == ConsultStatus.ENDED:
                raise TriadError(ErrorCode.CONSULT_ENDED, "the consult has ended")
            participants = await session.scalars(
                select(Participant).where(Participant.consult_id == consult_id)
            )
            actor = Actor("platform", caller.key_id)
            issued = self._issue_all(session, caller, consult_id, participants, now, actor)
        return CreatedConsult(view, issued, replayed=True)

    async def get(self, caller: PlatformCaller, consult_id: ConsultId) -> ConsultView:
        async with self._db.sessions() as session:
            return await self._view(session, caller, consult_id)

    async def end(self, caller: PlatformCaller, consult_id: ConsultId) -> ConsultView:
        """End the consult; ending an ended consult changes nothing and records nothing."""
        async with self._db.sessions.begin() as session:
            await self._owned(session, caller, consult_id)
            actor = Actor("platform", caller.key_id)
            await end_row(
                session, consult_id, actor, self._clock(), caller.platform_id, self._keyring
            )
            session.expire_all()
            return await self._view(session, caller, consult_id)

    async def mint_token(
        self,
        caller: PlatformCaller,
        consult_id: ConsultId,
        participant_id: ParticipantId,
        ttl: timedelta | None,
        actor: Actor | None = None,
    ) -> IssuedToken:
        now = self._clock()
        actor = actor or Actor("platform", caller.key_id)
        async with self._db.sessions.begin() as session:
            consult = await self._owned(session, caller, consult_id)
            if consult.status == ConsultStatus.ENDED:
                raise TriadError(ErrorCode.CONSULT_ENDED, "the consult has ended")
            participant = await self._participant(session, consult_id, participant_id)
            token = self._issue(caller, consult_id, participant, now, ttl or self._token_ttl)
            _record_minted(session, now, actor, caller, consult_id, token, participant.role)
        return token

    async def revoke_tokens(
        self, caller: PlatformCaller, consult_id: ConsultId, participant_id: ParticipantId
    ) -> datetime:
        """Refuse every join token of this participant issued until now, live sockets too."""
        return await self._revocations.revoke(
            consult_id,
            participant_id,
            Actor("platform", caller.key_id),
            platform_id=caller.platform_id,
        )

    async def audit_trail(
        self, caller: PlatformCaller, consult_id: ConsultId, *, after: int, limit: int
    ) -> list[AuditEntry]:
        async with self._db.sessions() as session:
            await self._owned(session, caller, consult_id)
            return await audit.page(session, consult_id, after=after, limit=limit)

    async def operator_lookup(
        self, consult_id: ConsultId, role: Role
    ) -> tuple[KeyId, ParticipantId]:
        """For the operator's command line: the newest live key of the consult's platform and the
        participant holding `role`."""
        async with self._db.sessions() as session:
            row = (
                await session.execute(
                    select(ApiKey.id, Participant.id)
                    .join(Consult, Consult.platform_id == ApiKey.platform_id)
                    .join(Participant, Participant.consult_id == Consult.id)
                    .where(
                        Consult.id == consult_id,
                        Participant.role == role,
                        ApiKey.revoked_at.is_(None),
                    )
                    .order_by(ApiKey.created_at.desc())
                    .limit(1)
                )
            ).first()
        if row is None:
            raise TriadError(
                ErrorCode.CONSULT_NOT_FOUND, "no such consult with a live platform key"
            )
        return KeyId(row[0]), ParticipantId(row[1])

    def _issue_all(
        self,
        session: AsyncSession,
        caller: PlatformCaller,
        consult_id: ConsultId,
        participants: Iterable[Participant],
        now: datetime,
        actor: Actor,
    ) -> dict[ParticipantId, IssuedToken]:
        """A join token for each participant, each recorded in the audit trail."""
        issued = {}
        for participant in participants:
            token = self._issue(caller, consult_id, participant, now, self._token_ttl)
            issued[token.participant_id] = token
            _record_minted(session, now, actor, caller, consult_id, token, participant.role)
        return issued

    def _issue(
        self,
        caller: PlatformCaller,
        consult_id: ConsultId,
        participant: Participant,
        now: datetime,
        ttl: timedelta,
    ) -> IssuedToken:
        iat = now.timestamp()
        if participant.tokens_revoked_at is not None:
            iat = max(iat, participant.tokens_revoked_at.timestamp() + _AFTER_REVOCATION)
        exp = iat + ttl.total_seconds()
        claims = tokens.JoinClaims(
            iss=caller.key_id,
            sub=ParticipantId(participant.id),
            consult=consult_id,
            role=Role(participant.role),
            name=open_name(self._keyring, participant.id, consult_id, participant.name_sealed),
            iat=iat,
            nbf=iat,
            exp=exp,
            jti=new_token_id(),
        )
        token = tokens.mint(claims, caller.secret)
        return IssuedToken(
            participant_id=ParticipantId(participant.id),
            token=token,
            jti=claims.jti,
            expires_at=datetime.fromtimestamp(exp, tz=now.tzinfo),
            join_url=self.join_url(consult_id, token),
        )

    async def _owned(
        self, session: AsyncSession, caller: PlatformCaller, consult_id: ConsultId
    ) -> Consult:
        consult = await session.get(Consult, consult_id)
        # Another platform's consult is reported exactly like a missing one: no existence leak.
        if consult is None or consult.platform_id != caller.platform_id:
            raise TriadError(ErrorCode.CONSULT_NOT_FOUND, "no such consult")
        return consult

    async def _participant(
        self, session: AsyncSession, consult_id: ConsultId, participant_id: ParticipantId
    ) -> Participant:
        participant = await session.get(Participant, participant_id)
        if participant is None or participant.consult_id != consult_id:
            raise TriadError(ErrorCode.PARTICIPANT_NOT_FOUND, "no such participant in this consult")
        return participant

    async def _view(
        self, session: AsyncSession, caller: PlatformCaller, consult_id: ConsultId
    ) -> ConsultView:
        consult = await self._owned(session, caller, consult_id)
        return await consult_view(session, consult, self._keyring)


async def consult_view(session: AsyncSession, consult: Consult, keyring: KeyRing) -> ConsultView:
    rows = await session.scalars(select(Participant).where(Participant.consult_id == consult.id))
    order = {role: i for i, role in enumerate(Role)}
    participants = sorted(
        (
            ParticipantView(
                ParticipantId(p.id),
                Role(p.role),
                open_name(keyring, p.id, consult.id, p.name_sealed),
            )
            for p in rows
        ),
        key=lambda p: order[p.role],
    )
    return ConsultView(
        id=ConsultId(consult.id),
        status=ConsultStatus(consult.status),
        auto_admit=consult.auto_admit,
        external_id=consult.external_id,
        scheduled_start=consult.scheduled_start,
        scheduled_end=consult.scheduled_end,
        created_at=consult.created_at,
        started_at=consult.started_at,
        ended_at=consult.ended_at,
        participants=tuple(participants),
        follows_id=ConsultId(consult.follows_id) if consult.follows_id else None,
        series_id=ConsultId(consult.series_id),
        client_is_minor=consult.client_is_minor,
    )


def _record_minted(
    session: AsyncSession,
    now: datetime,
    actor: Actor,
    caller: PlatformCaller,
    consult_id: ConsultId,
    token: IssuedToken,
    role: str,
) -> None:
    audit.record(
        session,
        at=now,
        actor=actor,
        action=AuditAction.TOKEN_MINTED,
        consult_id=consult_id,
        platform_id=caller.platform_id,
        details={
            "participant_id": token.participant_id,
            "role": role,
            "jti": token.jti,
            "expires_at": token.expires_at.isoformat(),
        },
    )
