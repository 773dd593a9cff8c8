"""The audit trail: append-only events of who did what to a consult.

The clear columns hold ids, codes and the action; an action never names a clinical fact (a
check-in that raised the safety flag is a `measure.recorded` like any other). What an event
must say that is clinical (which instrument, whether it flagged, who sat with whom) goes in
`sealed`, sealed with the key ring and bound to the event's row id.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..crypto import KeyRing
from ..db.engine import Database
from ..db.models import AuditEvent, Consult
from ..db.sealing import SealedColumn
from . import outbox
from .model import Actor, AuditEntry
from .outbox import WebhookEventType

# What a detail may be: ids, codes, counts, flags, lists or maps of ids. Never free text.
DetailValue = str | int | bool | None | list[str] | dict[str, str]
Details = Mapping[str, DetailValue]


class AuditAction(StrEnum):
    """Every action the trail records. The stored string is the value; never rename one."""

    CONSULT_CREATED = "consult.created"
    CONSULT_LIVE = "consult.live"
    CONSULT_ENDED = "consult.ended"
    TOKEN_MINTED = "token.minted"  # noqa: S105 (an action name, not a secret)
    TOKENS_REVOKED = "tokens.revoked"
    API_KEY_CREATED = "api_key.created"
    API_KEY_REVOKED = "api_key.revoked"
    PARTICIPANT_JOINED = "participant.joined"
    PARTICIPANT_ADMITTED = "participant.admitted"
    PARTICIPANT_DENIED = "participant.denied"
    PARTICIPANT_REMOVED = "participant.removed"
    PARTICIPANT_LEFT = "participant.left"
    # Same room: a declaration (pending), and its confirmation or attestation (in effect).
    PARTICIPANT_PRESENT_WITH = "participant.present_with"
    PRESENCE_CONFIRMED = "presence.confirmed"
    CONSENT_GIVEN = "consent.given"
    CONSENT_WITHDRAWN = "consent.withdrawn"
    # A minor's own assent beside the guardian's consent (the actor says who: the minor, or
    # the therapist attesting their spoken word).
    ASSENT_GIVEN = "assent.given"
    ASSENT_WITHDRAWN = "assent.withdrawn"
    # Screen share in the room: started, stopped (the reason says by whom or why), and a host
    # letting the client share or taking it back.
    SHARE_STARTED = "share.started"
    SHARE_STOPPED = "share.stopped"
    SHARE_PERMISSION_CHANGED = "share.permission_changed"
    BRIEF_SAVED = "brief.saved"
    MEASURE_RECORDED = "measure.recorded"
    # Reads of PHI (HIPAA audit controls): who read what, never what it said.
    BRIEF_READ = "brief.read"
    CONSULT_READ = "consult.read"  # the consult with its participants' names (platform)
    SESSION_READ = "session.read"  # the join page's view of the consult, names included
    PLAN_READ = "plan.read"
    NOTES_READ = "notes.read"
    MEASURES_READ = "measures.read"
    CONSENT_READ = "consent.read"
    SERIES_READ = "series.read"
    PLAN_DIFF_READ = "plan_diff.read"
    # A platform's webhook endpoints (no consult): registered, secret rotated, deleted.
    WEBHOOK_ENDPOINT_CREATED = "webhook_endpoint.created"
    WEBHOOK_ENDPOINT_SECRET_ROTATED = "webhook_endpoint.secret_rotated"  # noqa: S105 (an action)
    WEBHOOK_ENDPOINT_DELETED = "webhook_endpoint.deleted"
    WEBHOOK_REDELIVERY_REQUESTED = "webhook.redelivery_requested"


# The audited changes a platform hears of by webhook, written to the outbox in the same
# transaction (a check-in's safety flag and the plan's save have their own writes, as their
# audit events do not say them in clear).
WEBHOOK_EVENTS: dict[AuditAction, WebhookEventType] = {
    AuditAction.CONSULT_LIVE: WebhookEventType.CONSULT_LIVE,
    AuditAction.CONSULT_ENDED: WebhookEventType.CONSULT_ENDED,
    AuditAction.PARTICIPANT_ADMITTED: WebhookEventType.PARTICIPANT_ADMITTED,
    AuditAction.PARTICIPANT_LEFT: WebhookEventType.PARTICIPANT_LEFT,
    AuditAction.PARTICIPANT_REMOVED: WebhookEventType.PARTICIPANT_LEFT,
    AuditAction.CONSENT_GIVEN: WebhookEventType.CONSENT_GIVEN,
    AuditAction.ASSENT_GIVEN: WebhookEventType.CONSENT_GIVEN,
    AuditAction.CONSENT_WITHDRAWN: WebhookEventType.CONSENT_WITHDRAWN,
    AuditAction.ASSENT_WITHDRAWN: WebhookEventType.CONSENT_WITHDRAWN,
}
_ASSENT = frozenset({AuditAction.ASSENT_GIVEN, AuditAction.ASSENT_WITHDRAWN})


def record(
    session: AsyncSession,
    *,
    at: datetime,
    actor: Actor,
    action: AuditAction,
    consult_id: str | None = None,
    platform_id: str | None = None,
    details: Details | None = None,
    keyring: KeyRing | None = None,
) -> AuditEvent:
    """The event, in the session's transaction; and for an action a platform hears of by
    webhook (`WEBHOOK_EVENTS`), its outbox event, sealed with `keyring` (which such an action
    must be given)."""
    event = AuditEvent(
        consult_id=consult_id,
        platform_id=platform_id,
        at=at,
        actor_type=actor.type,
        actor_id=actor.id,
        action=AuditAction(action).value,
        details=dict(details or {}),
    )
    session.add(event)
    webhook = WEBHOOK_EVENTS.get(action)
    if webhook is not None and consult_id is not None and platform_id is not None:
        if keyring is None:
            raise TypeError(f"{action} writes a webhook event: pass the key ring to seal it")
        facts: dict[str, object] = {
            **event.details,
            "kind": "assent" if action in _ASSENT else "consent",
            "ended_by": actor.label(),
        }
        outbox.add(
            session,
            keyring,
            webhook,
            consult_id=consult_id,
            platform_id=platform_id,
            at=at,
            facts=facts,
        )
    return event


def _aad(event_id: int) -> bytes:
    return f"audit:{event_id}".encode()


SEALED_COLUMNS = (SealedColumn("audit_events", "sealed", ("id",), _aad),)


async def record_sealed(
    session: AsyncSession,
    keyring: KeyRing,
    sealed: Details,
    *,
    at: datetime,
    actor: Actor,
    action: AuditAction,
    consult_id: str | None = None,
    platform_id: str | None = None,
    details: Details | None = None,
) -> None:
    """An event with a sealed detail; flushed first, so the seal can name the row's id."""
    event = record(
        session,
        at=at,
        actor=actor,
        action=action,
        consult_id=consult_id,
        platform_id=platform_id,
        details=details,
    )
    await session.flush()
    event.sealed = seal_details(keyring, event.id, sealed)


def seal_details(keyring: KeyRing, event_id: int, sealed: Details) -> bytes:
    return keyring.seal(json.dumps(dict(sealed)).encode(), _aad(event_id))


def open_details(keyring: KeyRing, event_id: int, sealed: bytes | None) -> dict[str, object]:
    if sealed is None:
        return {}
    opened = json.loads(keyring.open(sealed, _aad(event_id)))
    return opened if isinstance(opened, dict) else {}


async def page(
    session: AsyncSession, consult_id: str, *, after: int, limit: int
) -> list[AuditEntry]:
    rows = await session.scalars(
        select(AuditEvent)
        .where(AuditEvent.consult_id == consult_id, AuditEvent.id > after)
        .order_by(AuditEvent.id)
        .limit(limit)
    )
    return [
        AuditEntry(
            id=row.id,
            at=row.at,
            actor_type=row.actor_type,
            actor_id=row.actor_id,
            action=row.action,
            details=row.details,
        )
        for row in rows
    ]


async def platform_of(session: AsyncSession, consult_id: str) -> str:
    """The consult's platform, which every audit event of the consult names."""
    platform_id = await session.scalar(select(Consult.platform_id).where(Consult.id == consult_id))
    if platform_id is None:
        raise LookupError("no such consult")  # the caller verified it exists; a bug otherwise
    return platform_id


class ReadLog:
    """Who read PHI, and what (HIPAA audit controls): one `*.read` event per read, in its own
    transaction, written before the answer leaves."""

    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._clock = clock

    async def read(
        self,
        consult_id: str,
        actor: Actor,
        action: AuditAction,
        details: Details | None = None,
    ) -> None:
        if not action.endswith(".read"):
            raise ValueError(f"{action} is not a read")
        async with self._db.sessions.begin() as session:
            record(
                session,
                at=self._clock(),
                actor=actor,
                action=action,
                consult_id=consult_id,
                platform_id=await platform_of(session, consult_id),
                details=details,
            )
