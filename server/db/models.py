"""Tables. Later capabilities add theirs by migration; never edit an applied migration."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .types import BigIntId, UTCDateTime

# Deterministic constraint names so migrations can refer to them on every backend.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Platform(Base):
    __tablename__ = "platforms"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    platform_id: Mapped[str] = mapped_column(ForeignKey("platforms.id"), index=True)
    secret_digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    secret_sealed: Mapped[bytes] = mapped_column(LargeBinary())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Consult(Base):
    __tablename__ = "consults"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    platform_id: Mapped[str] = mapped_column(ForeignKey("platforms.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    auto_admit: Mapped[bool] = mapped_column(Boolean())
    external_id: Mapped[str | None] = mapped_column(String(200))
    scheduled_start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    scheduled_end: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_by: Mapped[str | None] = mapped_column(String(64))
    # Follow-ups: the earlier consult this one continues, and the first consult of the series
    # (a consult that follows none is its own series).
    follows_id: Mapped[str | None] = mapped_column(ForeignKey("consults.id"), index=True)
    series_id: Mapped[str] = mapped_column(String(32), index=True)
    # Only a consult whose client is a minor may seat a guardian (migration 0006).
    client_is_minor: Mapped[bool] = mapped_column(Boolean(), server_default=false())


class IdempotencyKey(Base):
    """A platform's `Idempotency-Key` for consult creation: a retried request finds its consult."""

    __tablename__ = "idempotency_keys"

    platform_id: Mapped[str] = mapped_column(ForeignKey("platforms.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_digest: Mapped[bytes] = mapped_column(LargeBinary(32))
    consult_id: Mapped[str] = mapped_column(ForeignKey("consults.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Participant(Base):
    __tablename__ = "participants"
    # One participant per role: the optional seats (guardian, interpreter) at most once too.
    __table_args__ = (UniqueConstraint("consult_id", "role"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    consult_id: Mapped[str] = mapped_column(ForeignKey("consults.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    # A person's name is PHI: sealed, bound to the participant (migration 0005).
    name_sealed: Mapped[bytes] = mapped_column(LargeBinary())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Join tokens issued at or before this instant are refused (see docs/architecture.md).
    tokens_revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Same-room mode, sealed: who this participant declared present at their device, and how
    # each declaration took effect (pending, confirmed, attested). None: nobody declared.
    presence_sealed: Mapped[bytes | None] = mapped_column(LargeBinary())


class ConsentRecord(Base):
    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    consult_id: Mapped[str] = mapped_column(ForeignKey("consults.id"), index=True)
    # Who gave it: the client, or for a minor with a guardian seat the guardian (consent) or
    # the minor (assent).
    participant_id: Mapped[str] = mapped_column(ForeignKey("participants.id"))
    # `consent` (what admits the client) or `assent` (a minor's own, beside the guardian's
    # consent; migration 0007). Clear: it names no clinical fact, and the consult's minor flag
    # is clear already.
    kind: Mapped[str] = mapped_column(String(8), server_default="consent")
    # Sealed, bound to the row id: scope, wording version, when given, who attested, when and
    # by whom withdrawn (migration 0005).
    sealed: Mapped[bytes] = mapped_column(LargeBinary())


class HandoffBrief(Base):
    """The therapist's hand-off brief for the psychiatrist: clinicians only, sealed."""

    __tablename__ = "handoff_briefs"

    consult_id: Mapped[str] = mapped_column(ForeignKey("consults.id"), primary_key=True)
    author_role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sealed: Mapped[bytes] = mapped_column(LargeBinary())


class MeasureResult(Base):
    """A scored PHQ-9 or GAD-7 check-in: an observation of the consult. The instrument, the
    time, the answers and the score are sealed like every clinical value (migration 0005)."""

    __tablename__ = "measure_results"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    consult_id: Mapped[str] = mapped_column(ForeignKey("consults.id"), index=True)
    participant_id: Mapped[str] = mapped_column(ForeignKey("participants.id"))
    sealed: Mapped[bytes] = mapped_column(LargeBinary())


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (Index(None, "consult_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    consult_id: Mapped[str | None] = mapped_column(ForeignKey("consults.id"))
    platform_id: Mapped[str | None] = mapped_column(ForeignKey("platforms.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    # Ids and codes only: never clinical text, names or tokens.
    details: Mapped[dict[str, Any]] = mapped_column(JSON())
    # What the event must say that is clinical, sealed and bound to the row id (migration 0005).
    sealed: Mapped[bytes | None] = mapped_column(LargeBinary())


# --- Shared notes (migration 0003) ------------------------------------------------------------


class NoteUpdate(Base):
    """The append-only log of CRDT updates, one row per acknowledged update, sealed. Rows a
    snapshot covers are deleted with the snapshot's write (see docs/notes.md)."""

    __tablename__ = "note_updates"

    consult_id: Mapped[str] = mapped_column(ForeignKey("consults.id"), primary_key=True)
    doc: Mapped[str] = mapped_column(String(16), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger(), primary_key=True, autoincrement=False)
    participant_id: Mapped[str] = mapped_column(ForeignKey("participants.id"))
    role: Mapped[str] = mapped_column(String(16))
    # Names of the top-level sections the update changed (schema names, never text).
    sections: Mapped[list[str]] = mapped_column(JSON())
    sealed: Mapped[bytes] = mapped_column(LargeBinary())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class NoteSnapshot(Base):
    """The newest full state of one document, sealed, and the last log seq it includes; plus who
    changed which section up to then, so the authors survive the log rows it replaces."""

    __tablename__ = "note_snapshots"

    consult_id: Mapped[str] = mapped_column(ForeignKey("consults.id"), primary_key=True)
    doc: Mapped[str] = mapped_column(String(16), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger())
    # section -> [[participant_id, role], ...]: ids and roles only.
    authors: Mapped[dict[str, Any]] = mapped_column(JSON())
    sealed: Mapped[bytes] = mapped_column(LargeBinary())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Plan(Base):
    """The treatment plan frozen when a consult ends: exactly one per consult."""

    __tablename__ = "plans"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    consult_id: Mapped[str] = mapped_column(ForeignKey("consults.id"), unique=True)
    version: Mapped[int] = mapped_column(Integer())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Sealed: the client-visible record (JSON: content, authors, attendance), its Markdown, and
    # the clinicians' private notes, kept apart so no client-facing path ever opens them.
    record_sealed: Mapped[bytes] = mapped_column(LargeBinary())
    markdown_sealed: Mapped[bytes] = mapped_column(LargeBinary())
    clinicians_sealed: Mapped[bytes] = mapped_column(LargeBinary())


# --- Webhooks (migration 0008) ----------------------------------------------------------------


class WebhookEndpoint(Base):
    """Where a platform wants its events, and the secret they are signed with (Standard
    Webhooks). A rotated secret keeps signing beside the new one until `previous_until`."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    platform_id: Mapped[str] = mapped_column(ForeignKey("platforms.id"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    # The event types it receives (names of `WebhookEventType`).
    event_types: Mapped[list[str]] = mapped_column(JSON())
    secret_sealed: Mapped[bytes] = mapped_column(LargeBinary())
    previous_secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary())
    previous_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebhookEvent(Base):
    """The outbox: one row per event, written in the transaction of the change it reports.
    `seq` orders a consult's events; `id` is the `webhook-id` every delivery of it carries."""

    __tablename__ = "webhook_events"
    __table_args__ = (Index(None, "fanned_out", "seq"),)

    seq: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    platform_id: Mapped[str] = mapped_column(ForeignKey("platforms.id"))
    consult_id: Mapped[str] = mapped_column(ForeignKey("consults.id"), index=True)
    # Its type and data (ids and codes), sealed and bound to `id`: even a type can be clinical
    # (`safety_flag.raised`), and what a consult's events say together is.
    sealed: Mapped[bytes] = mapped_column(LargeBinary())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Whether its deliveries (one per subscribed endpoint) have been written.
    fanned_out: Mapped[bool] = mapped_column(Boolean(), server_default=false())


class WebhookDelivery(Base):
    """One event to one endpoint: pending until it succeeds, or fails for good when its retry
    window has passed. A claim (`lease_until`, `lease`) lets one worker attempt it at a time."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("event_seq", "endpoint_id"),
        # The head of each endpoint's queue per consult (deliveries go in order per consult).
        Index(None, "endpoint_id", "consult_id", "state", "event_seq"),
        Index(None, "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    event_seq: Mapped[int] = mapped_column(ForeignKey("webhook_events.seq"))
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id"))
    consult_id: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer())
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Past this, a failed attempt fails the delivery for good.
    give_up_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Sent again by hand (`DeliveryHistory.redeliver`): its next attempt is recorded so.
    manual: Mapped[bool] = mapped_column(Boolean(), server_default=false())


class WebhookAttempt(Base):
    """One HTTP attempt of a delivery: its status, latency and error code (never a body)."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index(None, "endpoint_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id"), index=True)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    outcome: Mapped[str] = mapped_column(String(16))
    status_code: Mapped[int | None] = mapped_column(Integer())
    latency_ms: Mapped[int] = mapped_column(Integer())
    error: Mapped[str | None] = mapped_column(String(32))
    manual: Mapped[bool] = mapped_column(Boolean(), server_default=false())
