"""The client's consent: to the session, and to the two clinicians sharing information with
each other. Given by the client, or attested by a therapist the client sits with (same-room
mode); withdrawable; every change audited. The wording is versioned here, in code, so the
version a record names always has its text."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..auth.roles import Role
from ..db.engine import Database
from ..db.models import ConsentRecord, Participant
from ..errors import ErrorCode, TriadError
from ..ids import ConsultId, ParticipantId
from . import audit
from .model import Actor, JoinIdentity


class ConsentScope(StrEnum):
    SESSION = "session"
    INFORMATION_SHARING = "information_sharing"


@dataclass(frozen=True)
class ConsentWording:
    version: str
    texts: dict[ConsentScope, str]

    def __post_init__(self) -> None:
        if set(self.texts) != set(ConsentScope):
            raise ValueError("the wording covers every scope")


# A new wording gets a new version; a record keeps naming the version its person agreed to.
CONSENT_WORDING = ConsentWording(
    version="2026-11-01",
    texts={
        ConsentScope.SESSION: (
            "I agree to take part in this video consult with my therapist and a psychiatrist. "
            "The video and sound are not recorded. A treatment plan is written during the "
            "consult and saved when it ends, and I can read it."
        ),
        ConsentScope.INFORMATION_SHARING: (
            "I agree that my therapist and the psychiatrist share information about my care "
            "with each other, including my therapist's hand-off notes, for this consult and "
            "its follow-ups. I can withdraw this at any time; sharing stops from then on."
        ),
    },
)


@dataclass(frozen=True)
class ConsentFact:
    scope: ConsentScope
    wording_version: str
    given_at: datetime
    given_by: ParticipantId  # the client the consent is of
    attested_by: ParticipantId | None
    withdrawn_at: datetime | None
    withdrawn_by: ParticipantId | None

    @property
    def active(self) -> bool:
        return self.withdrawn_at is None


@dataclass(frozen=True)
class ConsentState:
    wording: ConsentWording
    # The latest record per scope (a consent given again after a withdrawal supersedes it).
    records: tuple[ConsentFact, ...]

    @property
    def complete(self) -> bool:
        active = {r.scope for r in self.records if r.active}
        return active == set(ConsentScope)

    @property
    def sharing_withdrawn(self) -> bool:
        latest = self.latest(ConsentScope.INFORMATION_SHARING)
        return latest is not None and not latest.active

    def latest(self, scope: ConsentScope) -> ConsentFact | None:
        return next((r for r in self.records if r.scope == scope), None)


def parse_scopes(scopes: Iterable[str]) -> tuple[ConsentScope, ...]:
    try:
        parsed = tuple(dict.fromkeys(ConsentScope(s) for s in scopes))
    except ValueError as exc:
        raise TriadError(ErrorCode.VALIDATION_FAILED, f"unknown consent scope: {exc}") from exc
    if not parsed:
        raise TriadError(ErrorCode.VALIDATION_FAILED, "name at least one consent scope")
    return parsed


class ConsentBook:
    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._clock = clock

    async def state(self, consult_id: ConsultId) -> ConsentState:
        async with self._db.sessions() as session:
            return await consent_state(session, consult_id)

    async def give(
        self, who: JoinIdentity, *, wording_version: str, scopes: Iterable[str], attested: bool
    ) -> ConsentState:
        wanted = parse_scopes(scopes)
        if wording_version != CONSENT_WORDING.version:
            raise TriadError(
                ErrorCode.CONSENT_WORDING_OUTDATED,
                f"the current consent wording is version {CONSENT_WORDING.version}",
            )
        now = self._clock()
        async with self._db.sessions.begin() as session:
            client, attester = await self._client_and_attester(session, who, attested)
            current = await consent_state(session, who.consult_id)
            for scope in wanted:
                latest = current.latest(scope)
                if latest is not None and latest.active:
                    continue  # already given: giving twice changes nothing
                session.add(
                    ConsentRecord(
                        consult_id=who.consult_id,
                        participant_id=client,
                        scope=scope,
                        wording_version=wording_version,
                        given_at=now,
                        attested_by=attester,
                    )
                )
                audit.record(
                    session,
                    at=now,
                    actor=Actor("participant", who.participant_id),
                    action="consent.given",
                    consult_id=who.consult_id,
                    platform_id=await audit.platform_of(session, who.consult_id),
                    details={
                        "scope": str(scope),
                        "wording_version": wording_version,
                        "client": client,
                        "attested_by": attester,
                    },
                )
            await session.flush()
            return await consent_state(session, who.consult_id)

    async def withdraw(self, who: JoinIdentity, *, scopes: Iterable[str]) -> ConsentState:
        wanted = parse_scopes(scopes)
        now = self._clock()
        async with self._db.sessions.begin() as session:
            # The client withdraws their own; a therapist the client sits with may relay it.
            await self._client_and_attester(session, who, attested=who.role != Role.CLIENT)
            for scope in wanted:
                result = await session.execute(
                    update(ConsentRecord)
                    .where(
                        ConsentRecord.consult_id == who.consult_id,
                        ConsentRecord.scope == scope,
                        ConsentRecord.withdrawn_at.is_(None),
                    )
                    .values(withdrawn_at=now, withdrawn_by=who.participant_id)
                )
                if result.rowcount:  # type: ignore[attr-defined]
                    audit.record(
                        session,
                        at=now,
                        actor=Actor("participant", who.participant_id),
                        action="consent.withdrawn",
                        consult_id=who.consult_id,
                        platform_id=await audit.platform_of(session, who.consult_id),
                        details={"scope": str(scope)},
                    )
            await session.flush()
            return await consent_state(session, who.consult_id)

    async def _client_and_attester(
        self, session: AsyncSession, who: JoinIdentity, attested: bool
    ) -> tuple[ParticipantId, ParticipantId | None]:
        """Whose consent this is, and who attests it: the client themself, or the therapist
        who declared the client present at their device."""
        if not attested:
            if who.role != Role.CLIENT:
                raise TriadError(
                    ErrorCode.FORBIDDEN_ROLE,
                    "only the client consents for themself; a therapist may attest (attested)",
                )
            return who.participant_id, None
        if who.role != Role.THERAPIST:
            raise TriadError(ErrorCode.FORBIDDEN_ROLE, "only the therapist may attest consent")
        client = await client_present_with(session, who)
        if client is None:
            raise TriadError(
                ErrorCode.SAME_ROOM_REQUIRED,
                "declare the client present with you (present-with) before attesting",
            )
        return client, who.participant_id


async def client_present_with(session: AsyncSession, who: JoinIdentity) -> ParticipantId | None:
    """The client, when `who` declared the client present at their device."""
    rows = (
        await session.execute(
            select(Participant.id, Participant.role, Participant.present_with).where(
                Participant.consult_id == who.consult_id
            )
        )
    ).all()
    client = next((row.id for row in rows if row.role == Role.CLIENT), None)
    mine: list[str] = next((row.present_with for row in rows if row.id == who.participant_id), [])
    return ParticipantId(client) if client is not None and client in mine else None


async def consent_state(session: AsyncSession, consult_id: ConsultId) -> ConsentState:
    rows = await session.scalars(
        select(ConsentRecord)
        .where(ConsentRecord.consult_id == consult_id)
        .order_by(ConsentRecord.given_at.desc(), ConsentRecord.id.desc())
    )
    latest: dict[ConsentScope, ConsentFact] = {}
    for row in rows:
        scope = ConsentScope(row.scope)
        if scope in latest:
            continue
        latest[scope] = ConsentFact(
            scope=scope,
            wording_version=row.wording_version,
            given_at=row.given_at,
            given_by=ParticipantId(row.participant_id),
            attested_by=ParticipantId(row.attested_by) if row.attested_by else None,
            withdrawn_at=row.withdrawn_at,
            withdrawn_by=ParticipantId(row.withdrawn_by) if row.withdrawn_by else None,
        )
    ordered = tuple(latest[s] for s in ConsentScope if s in latest)
    return ConsentState(CONSENT_WORDING, ordered)
