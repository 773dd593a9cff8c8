"""The webhook outbox: the events a platform can subscribe to, what each says (ids and codes
only, never clinical text, names or scores), and their rows, each written in the transaction
of the change it reports, so a platform hears of every committed change and of none that was
rolled back. Delivery reads the outbox later (`server/webhooks/dispatcher.py`)."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ..db.models import WebhookEvent

# A value of an event's data: an id, a code, a count or a flag. Never free text.
DataValue = str | int | bool | None


class WebhookEventType(StrEnum):
    """Every event type. The string is the contract (the body's `type`); never rename one."""

    CONSULT_LIVE = "consult.live"
    PARTICIPANT_ADMITTED = "participant.admitted"
    PARTICIPANT_LEFT = "participant.left"
    CONSULT_ENDED = "consult.ended"
    PLAN_SAVED = "plan.saved"
    CONSENT_GIVEN = "consent.given"
    CONSENT_WITHDRAWN = "consent.withdrawn"
    SAFETY_FLAG_RAISED = "safety_flag.raised"


# The keys each event's data may carry beside `consult_id` (which every event carries). Data
# is built from what the change recorded, filtered to these, so a detail added to an audit
# event later does not reach a platform unseen.
DATA_KEYS: dict[WebhookEventType, tuple[str, ...]] = {
    WebhookEventType.CONSULT_LIVE: (),
    WebhookEventType.PARTICIPANT_ADMITTED: ("participant_id", "role"),
    WebhookEventType.PARTICIPANT_LEFT: ("participant_id", "role", "reason"),
    WebhookEventType.CONSULT_ENDED: ("ended_by",),
    WebhookEventType.PLAN_SAVED: ("plan_id", "version"),
    WebhookEventType.CONSENT_GIVEN: ("consent_id", "kind", "role"),
    WebhookEventType.CONSENT_WITHDRAWN: ("consent_id", "kind", "role"),
    WebhookEventType.SAFETY_FLAG_RAISED: ("measure_id", "participant_id"),
}


def event_data(
    event_type: WebhookEventType, consult_id: str, facts: Mapping[str, object]
) -> dict[str, DataValue]:
    """The event's data: `consult_id` and the allowed keys of `facts` that are plain values."""
    data: dict[str, DataValue] = {"consult_id": consult_id}
    for key in DATA_KEYS[event_type]:
        value = facts.get(key)
        if isinstance(value, str | int | bool):
            data[key] = value
    return data


def new_message_id() -> str:
    # The `webhook-id`: unique per event, the same on every delivery attempt of it.
    return f"msg_{secrets.token_urlsafe(18)}"


def event_row(
    event_type: WebhookEventType,
    *,
    consult_id: str,
    platform_id: str,
    at: datetime,
    facts: Mapping[str, object],
) -> dict[str, Any]:
    return {
        "id": new_message_id(),
        "platform_id": platform_id,
        "consult_id": consult_id,
        "type": WebhookEventType(event_type).value,
        "data": event_data(event_type, consult_id, facts),
        "created_at": at,
        "fanned_out": False,
    }


def add(
    session: AsyncSession,
    event_type: WebhookEventType,
    *,
    consult_id: str,
    platform_id: str,
    at: datetime,
    facts: Mapping[str, object],
) -> None:
    """The event, in the session's transaction (flushed with it)."""
    row = event_row(event_type, consult_id=consult_id, platform_id=platform_id, at=at, facts=facts)
    session.add(WebhookEvent(**row))


async def insert_event(
    conn: AsyncConnection,
    event_type: WebhookEventType,
    *,
    consult_id: str,
    platform_id: str,
    at: datetime,
    facts: Mapping[str, object],
) -> None:
    """The event, on a Core connection inside its transaction."""
    row = event_row(event_type, consult_id=consult_id, platform_id=platform_id, at=at, facts=facts)
    await conn.execute(insert(WebhookEvent).values(**row))
