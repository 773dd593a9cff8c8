"""The client's consent: to the session, and to the two clinicians sharing information with
each other. Given by the client, or attested by a therapist the client sits with (same-room
mode); withdrawable; every change audited. The wording is versioned here, in code, so the
version a record names always has its text.

For a minor whose consult seats a guardian, the guardian consents (that is what admits the
client) and the minor's own word is assent, recorded beside it: not required, but a withdrawn
assent stops what it names as the guardian's withdrawal would (the wording the minor agreed to
says sharing stops when they withdraw). A minor without a guardian seat consents as any client.
The interpreter is bound by the session consent and consents for nobody."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..auth.roles import Role
from ..crypto import KeyRing
from ..db.engine import Database
from ..db.models import ConsentRecord, Participant
from ..db.sealing import SealedColumn
from ..errors import ErrorCode, TriadError
from ..ids import ConsultId, ParticipantId
from . import audit
from .audit import AuditAction
from .model import Actor, JoinIdentity
from .people import client_at_device


class ConsentScope(StrEnum):
    SESSION = "session"
    INFORMATION_SHARING = "information_sharing"


class ConsentKind(StrEnum):
    """The stored `consents.kind` (migration 0007)."""

    CONSENT = "consent"  # what admits the client: the client's, or a minor's guardian's
    ASSENT = "assent"  # a minor's own, beside the guardian's consent


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
    given_by: ParticipantId  # the client, or a minor's guardian (the row's participant)
    attested_by: ParticipantId | None
    withdrawn_at: datetime | None
    withdrawn_by: ParticipantId | None
    kind: ConsentKind = ConsentKind.CONSENT  # the row's clear `kind`, not sealed

    @property
    def active(self) -> bool:
        return self.withdrawn_at is None

    def to_json(self) -> dict[str, Any]:
        """What the sealed column holds (everything but who gave it and the kind, which are
        the row's)."""
        return {
            "scope": self.scope.value,
            "wording_version": self.wording_version,
            "given_at": self.given_at.isoformat(),
            "attested_by": self.attested_by,
            "withdrawn_at": self.withdrawn_at.isoformat() if self.withdrawn_at else None,
            "withdrawn_by": self.withdrawn_by,
        }

    @classmethod
    def from_json(
        cls, given_by: str, data: dict[str, Any], kind: ConsentKind = ConsentKind.CONSENT
    ) -> ConsentFact:
        def pid(value: object) -> ParticipantId | None:
            return ParticipantId(str(value)) if value is not None else None

        withdrawn_at = data.get("withdrawn_at")
        return cls(
            scope=ConsentScope(data["scope"]),
            wording_version=str(data["wording_version"]),
            given_at=datetime.fromisoformat(data["given_at"]),
            given_by=ParticipantId(given_by),
            attested_by=pid(data.get("attested_by")),
            withdrawn_at=datetime.fromisoformat(withdrawn_at) if withdrawn_at else None,
            withdrawn_by=pid(data.get("withdrawn_by")),
            kind=kind,
        )


@dataclass(frozen=True)
class ConsentState:
    wording: ConsentWording
    # The latest consent per scope (a consent given again after a withdrawal supersedes it).
    records: tuple[ConsentFact, ...]
    # Whose consent admits the client: the guardian when the consult seats one, else the client.
    consenting_role: Role = Role.CLIENT
    # A minor's assent, the latest per scope (always empty when the client consents themself).
    assent: tuple[ConsentFact, ...] = ()

    @property
    def complete(self) -> bool:
        """Every scope consented and in force, and no scope's assent withdrawn (assent never
        given does not hold anything back: it is not required)."""
        active = {r.scope for r in self.records if r.active}
        dissent = any(not a.active for a in self.assent)
        return active == set(ConsentScope) and not dissent

    def summary(self) -> ConsentSummary:
        """What every participant may know of it (the room's `consent`)."""

        def states(kind: ConsentKind) -> dict[ConsentScope, ScopeStatus | None]:
            return {scope: ScopeStatus.of(self.latest(scope, kind)) for scope in ConsentScope}

        minor = self.consenting_role == Role.GUARDIAN
        return ConsentSummary(
            complete=self.complete,
            sharing_withdrawn=self.sharing_withdrawn,
            consenting_role=self.consenting_role,
            consent=states(ConsentKind.CONSENT),
            assent=states(ConsentKind.ASSENT) if minor else None,
        )

    @property
    def sharing_withdrawn(self) -> bool:
        return any(
            fact is not None and not fact.active
            for fact in (
                self.latest(ConsentScope.INFORMATION_SHARING),
                self.latest(ConsentScope.INFORMATION_SHARING, ConsentKind.ASSENT),
            )
        )

    def latest(
        self, scope: ConsentScope, kind: ConsentKind = ConsentKind.CONSENT
    ) -> ConsentFact | None:
        facts = self.records if kind is ConsentKind.CONSENT else self.assent
        return next((r for r in facts if r.scope == scope), None)


class ScopeStatus(StrEnum):
    """Where a scope stands (no record at all is None)."""

    GIVEN = "given"
    WITHDRAWN = "withdrawn"

    @classmethod
    def of(cls, fact: ConsentFact | None) -> ScopeStatus | None:
        if fact is None:
            return None
        return cls.GIVEN if fact.active else cls.WITHDRAWN


@dataclass(frozen=True)
class ConsentSummary:
    """The consent as every participant of the room may know it: complete or not, sharing
    stopped or not, whose consent admits the client, and each scope of that consent and of a
    minor's assent as given, withdrawn or never given (no wording, times or ids)."""

    complete: bool = False
    sharing_withdrawn: bool = False
    consenting_role: Role = Role.CLIENT
    consent: Mapping[ConsentScope, ScopeStatus | None] = field(default_factory=dict)
    # A minor's assent beside the guardian's consent; None when the client consents themself.
    assent: Mapping[ConsentScope, ScopeStatus | None] | None = None

    def to_json(self) -> dict[str, Any]:
        def scopes(states: Mapping[ConsentScope, ScopeStatus | None]) -> dict[str, str | None]:
            return {s.value: (v.value if (v := states.get(s)) else None) for s in ConsentScope}

        return {
            "complete": self.complete,
            "sharing_withdrawn": self.sharing_withdrawn,
            "consenting_role": self.consenting_role.value,
            "consent": scopes(self.consent),
            "assent": scopes(self.assent) if self.assent is not None else None,
        }


def parse_scopes(scopes: Iterable[str]) -> tuple[ConsentScope, ...]:
    try:
        parsed = tuple(dict.fromkeys(ConsentScope(s) for s in scopes))
    except ValueError as exc:
        raise TriadError(ErrorCode.VALIDATION_FAILED, f"unknown consent scope: {exc}") from exc
    if not parsed:
        raise TriadError(ErrorCode.VALIDATION_FAILED, "name at least one consent scope")
    return parsed


class ConsentBook:
    def __init__(self, db: Database, keyring: KeyRing, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._keyring = keyring
        self._clock = clock

    async def state(self, consult_id: ConsultId) -> ConsentState:
        async with self._db.sessions() as session:
            return await consent_state(session, self._keyring, consult_id)

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
            current = await consent_state(session, self._keyring, who.consult_id)
            giver, attester, kind = await self._whose(session, who, current, attested)
            for scope in wanted:
                latest = current.latest(scope, kind)
                if latest is not None and latest.active:
                    continue  # already given: giving twice changes nothing
                fact = ConsentFact(scope, wording_version, now, giver, attester, None, None, kind)
                row = ConsentRecord(
                    consult_id=who.consult_id, participant_id=giver, kind=kind, sealed=b""
                )
                session.add(row)
                await session.flush()  # the seal names the row id
                row.sealed = seal_consent(self._keyring, row.id, who.consult_id, fact)
                audit.record(
                    session,
                    at=now,
                    actor=Actor("participant", who.participant_id),
                    action=_GIVEN[kind],
                    consult_id=who.consult_id,
                    platform_id=await audit.platform_of(session, who.consult_id),
                    details={"consent_id": row.id, "role": who.role.value},
                    keyring=self._keyring,
                )
            await session.flush()
            return await consent_state(session, self._keyring, who.consult_id)

    async def withdraw(self, who: JoinIdentity, *, scopes: Iterable[str]) -> ConsentState:
        wanted = parse_scopes(scopes)
        now = self._clock()
        async with self._db.sessions.begin() as session:
            current = await consent_state(session, self._keyring, who.consult_id)
            # Each withdraws their own; a therapist the client sits with may relay the client's.
            _, _, kind = await self._whose(
                session, who, current, attested=who.role not in (Role.CLIENT, Role.GUARDIAN)
            )
            rows = await session.scalars(
                select(ConsentRecord)
                .where(ConsentRecord.consult_id == who.consult_id, ConsentRecord.kind == kind)
                .with_for_update()
            )
            for row in rows:
                fact = open_consent(self._keyring, row)
                if fact.scope not in wanted or not fact.active:
                    continue
                withdrawn = replace(fact, withdrawn_at=now, withdrawn_by=who.participant_id)
                row.sealed = seal_consent(self._keyring, row.id, row.consult_id, withdrawn)
                audit.record(
                    session,
                    at=now,
                    actor=Actor("participant", who.participant_id),
                    action=_WITHDRAWN[kind],
                    consult_id=who.consult_id,
                    platform_id=await audit.platform_of(session, who.consult_id),
                    details={"consent_id": row.id, "role": who.role.value},
                    keyring=self._keyring,
                )
            await session.flush()
            return await consent_state(session, self._keyring, who.consult_id)

    async def _whose(
        self, session: AsyncSession, who: JoinIdentity, current: ConsentState, attested: bool
    ) -> tuple[ParticipantId, ParticipantId | None, ConsentKind]:
        """Who gives (or withdraws) what: the guardian their consent; the client (or the
        therapist attesting for them) the client's consent, or a minor's assent when the
        guardian consents. Anyone else is refused, before anything is written."""
        if who.role == Role.INTERPRETER:
            raise TriadError(
                ErrorCode.FORBIDDEN_ROLE,
                "the interpreter is bound by the session consent and consents for nobody",
            )
        if who.role == Role.GUARDIAN and not attested:
            return who.participant_id, None, ConsentKind.CONSENT
        client, attester = await self._client_and_attester(session, who, attested)
        if current.consenting_role == Role.GUARDIAN:
            return client, attester, ConsentKind.ASSENT
        return client, attester, ConsentKind.CONSENT

    async def _client_and_attester(
        self, session: AsyncSession, who: JoinIdentity, attested: bool
    ) -> tuple[ParticipantId, ParticipantId | None]:
        """Whose consent this is, and who attests it: the client themself, or the therapist
        whose declaration that the client sits with them is in effect (the client confirmed
        it, or the psychiatrist attested it: never the therapist's word alone)."""
        if not attested:
            if who.role != Role.CLIENT:
                raise TriadError(
                    ErrorCode.FORBIDDEN_ROLE,
                    "only the client (or a minor's guardian) consents; a therapist may attest "
                    "(attested)",
                )
            return who.participant_id, None
        if who.role != Role.THERAPIST:
            raise TriadError(ErrorCode.FORBIDDEN_ROLE, "only the therapist may attest consent")
        client = await client_at_device(session, self._keyring, who)
        if client is None:
            raise TriadError(
                ErrorCode.SAME_ROOM_REQUIRED,
                "the client's presence with you must be confirmed by the client or attested by "
                "the psychiatrist before you attest",
            )
        return client, who.participant_id


_GIVEN = {
    ConsentKind.CONSENT: AuditAction.CONSENT_GIVEN,
    ConsentKind.ASSENT: AuditAction.ASSENT_GIVEN,
}
_WITHDRAWN = {
    ConsentKind.CONSENT: AuditAction.CONSENT_WITHDRAWN,
    ConsentKind.ASSENT: AuditAction.ASSENT_WITHDRAWN,
}


def _aad(consent_id: int, consult_id: str) -> bytes:
    return f"consent:{consent_id}:{consult_id}".encode()


SEALED_COLUMNS = (SealedColumn("consents", "sealed", ("id", "consult_id"), _aad),)


def seal_consent(keyring: KeyRing, consent_id: int, consult_id: str, fact: ConsentFact) -> bytes:
    return keyring.seal(json.dumps(fact.to_json()).encode(), _aad(consent_id, consult_id))


def open_consent(keyring: KeyRing, row: ConsentRecord) -> ConsentFact:
    data = json.loads(keyring.open(row.sealed, _aad(row.id, row.consult_id)))
    return ConsentFact.from_json(row.participant_id, data, ConsentKind(row.kind))


async def consent_state(
    session: AsyncSession, keyring: KeyRing, consult_id: ConsultId
) -> ConsentState:
    rows = await session.scalars(
        select(ConsentRecord).where(ConsentRecord.consult_id == consult_id)
    )
    facts = sorted(
        ((open_consent(keyring, row), row.id) for row in rows),
        key=lambda pair: (pair[0].given_at, pair[1]),
        reverse=True,
    )
    latest: dict[tuple[ConsentKind, ConsentScope], ConsentFact] = {}
    for fact, _ in facts:
        latest.setdefault((fact.kind, fact.scope), fact)

    def ordered(kind: ConsentKind) -> tuple[ConsentFact, ...]:
        return tuple(latest[kind, s] for s in ConsentScope if (kind, s) in latest)

    guardian = await session.scalar(
        select(Participant.id).where(
            Participant.consult_id == consult_id, Participant.role == Role.GUARDIAN.value
        )
    )
    return ConsentState(
        CONSENT_WORDING,
        ordered(ConsentKind.CONSENT),
        consenting_role=Role.GUARDIAN if guardian is not None else Role.CLIENT,
        assent=ordered(ConsentKind.ASSENT),
    )
