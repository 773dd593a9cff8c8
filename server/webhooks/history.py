"""What became of an endpoint's events: its deliveries (one per event) and each attempt, and
a failed (or delivered) event sent again by hand."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select

from ..consults import audit
from ..consults.audit import AuditAction
from ..consults.model import Actor, PlatformCaller
from ..consults.outbox import open_event
from ..crypto import KeyRing
from ..db.engine import Database
from ..db.models import WebhookAttempt, WebhookDelivery, WebhookEvent
from ..errors import ErrorCode, TriadError
from .endpoints import owned


class DeliveryState(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # its retry window passed without a 2xx
    CANCELLED = "cancelled"  # its endpoint was deleted


class AttemptError(StrEnum):
    """Why an attempt failed, as a code (never the receiver's words)."""

    HTTP_STATUS = "http_status"  # it answered, but not 2xx
    TIMEOUT = "timeout"
    CONNECT_FAILED = "connect_failed"
    ADDRESS_REFUSED = "address_refused"  # the URL's address is not public (urls.py)


@dataclass(frozen=True)
class DeliveryView:
    message_id: str
    event_type: str
    consult_id: str
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class AttemptView:
    id: int
    message_id: str
    event_type: str
    at: datetime
    succeeded: bool
    status_code: int | None
    latency_ms: int
    error: AttemptError | None
    manual: bool


def _delivery_view(
    keyring: KeyRing, delivery: WebhookDelivery, event: WebhookEvent
) -> DeliveryView:
    state = DeliveryState(delivery.state)
    return DeliveryView(
        message_id=event.id,
        event_type=open_event(keyring, event).type.value,
        consult_id=delivery.consult_id,
        state=state,
        attempts=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at if state is DeliveryState.PENDING else None,
        created_at=delivery.created_at,
        finished_at=delivery.finished_at,
    )


class DeliveryHistory:
    def __init__(self, db: Database, keyring: KeyRing, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._keyring = keyring
        self._clock = clock

    async def deliveries(
        self,
        caller: PlatformCaller,
        endpoint_id: str,
        *,
        state: DeliveryState | None,
        after: int,
        limit: int,
    ) -> tuple[list[DeliveryView], int]:
        """A page of the endpoint's deliveries, oldest first, and the cursor after it."""
        async with self._db.sessions() as session:
            endpoint = await owned(session, caller, endpoint_id)
            query = (
                select(WebhookDelivery, WebhookEvent)
                .join(WebhookEvent, WebhookEvent.seq == WebhookDelivery.event_seq)
                .where(WebhookDelivery.endpoint_id == endpoint.id, WebhookDelivery.id > after)
                .order_by(WebhookDelivery.id)
                .limit(limit)
            )
            if state is not None:
                query = query.where(WebhookDelivery.state == state.value)
            rows = (await session.execute(query)).all()
        cursor = rows[-1][0].id if rows else after
        return [_delivery_view(self._keyring, d, e) for d, e in rows], cursor

    async def attempts(
        self, caller: PlatformCaller, endpoint_id: str, *, after: int, limit: int
    ) -> list[AttemptView]:
        async with self._db.sessions() as session:
            endpoint = await owned(session, caller, endpoint_id)
            rows = (
                await session.execute(
                    select(WebhookAttempt, WebhookEvent)
                    .join(WebhookDelivery, WebhookDelivery.id == WebhookAttempt.delivery_id)
                    .join(WebhookEvent, WebhookEvent.seq == WebhookDelivery.event_seq)
                    .where(WebhookAttempt.endpoint_id == endpoint.id, WebhookAttempt.id > after)
                    .order_by(WebhookAttempt.id)
                    .limit(limit)
                )
            ).all()
        return [
            AttemptView(
                id=attempt.id,
                message_id=event.id,
                event_type=open_event(self._keyring, event).type.value,
                at=attempt.at,
                succeeded=attempt.outcome == DeliveryState.SUCCEEDED,
                status_code=attempt.status_code,
                latency_ms=attempt.latency_ms,
                error=AttemptError(attempt.error) if attempt.error else None,
                manual=attempt.manual,
            )
            for attempt, event in rows
        ]

    async def redeliver(
        self, caller: PlatformCaller, endpoint_id: str, message_id: str
    ) -> DeliveryView:
        """Send a finished delivery once more, now (one attempt: it fails for good if that
        one fails). Refused while the delivery is still pending."""
        now = self._clock()
        async with self._db.sessions.begin() as session:
            endpoint = await owned(session, caller, endpoint_id)
            found = (
                await session.execute(
                    select(WebhookDelivery, WebhookEvent)
                    .join(WebhookEvent, WebhookEvent.seq == WebhookDelivery.event_seq)
                    .where(
                        WebhookDelivery.endpoint_id == endpoint.id, WebhookEvent.id == message_id
                    )
                    .with_for_update(of=WebhookDelivery)
                )
            ).first()
            if found is None:
                raise TriadError(ErrorCode.WEBHOOK_DELIVERY_NOT_FOUND, "no such delivery")
            delivery, event = found
            if delivery.state == DeliveryState.PENDING:
                raise TriadError(
                    ErrorCode.WEBHOOK_DELIVERY_PENDING, "the delivery is still being attempted"
                )
            delivery.state = DeliveryState.PENDING.value
            delivery.next_attempt_at = now
            delivery.give_up_at = now
            delivery.finished_at = None
            delivery.lease = None
            delivery.lease_until = None
            delivery.manual = True
            audit.record(
                session,
                at=now,
                actor=Actor("platform", caller.key_id),
                action=AuditAction.WEBHOOK_REDELIVERY_REQUESTED,
                consult_id=delivery.consult_id,
                platform_id=caller.platform_id,
                details={"endpoint_id": endpoint.id, "message_id": event.id},
            )
            return _delivery_view(self._keyring, delivery, event)
