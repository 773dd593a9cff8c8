"""The webhook outbox: the events a platform can subscribe to, what each says (ids and codes
only, never clinical text, names or scores), and their rows, each written in the transaction
of the change it reports, so a platform hears of every committed change and of none that was
rolled back. Delivery reads the outbox later (`server/webhooks/dispatcher.py`)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ..crypto import KeyRing
from ..db.models import WebhookEvent
from ..db.sealing import SealedColumn

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


# What each event's data carries beside `consult_id` (which every event carries): each key
# with its JSON type, and what it says. Data is built from what the change recorded, filtered
# to these, so a detail added to an audit event later does not reach a platform unseen. The
# OpenAPI document's `webhooks` are built from this too.
FieldSpec = tuple[type[str] | type[int], str]
_CONSENT_FIELDS: dict[str, FieldSpec] = {
    "consent_id": (int, "the consent record (one per scope)"),
    "kind": (str, "consent, or a minor's assent"),
    "role": (str, "the role of who gave or withdrew it"),
}
DATA_FIELDS: dict[WebhookEventType, dict[str, FieldSpec]] = {
    WebhookEventType.CONSULT_LIVE: {},
    WebhookEventType.PARTICIPANT_ADMITTED: {
        "participant_id": (str, "who entered the room"),
        "role": (str, "their role"),
    },
    WebhookEventType.PARTICIPANT_LEFT: {
        "participant_id": (str, "who left"),
        "role": (str, "their role"),
        "reason": (str, "left, timeout, removed, revoked or expired"),
    },
    WebhookEventType.CONSULT_ENDED: {
        "ended_by": (str, "participant:<id>, platform:<key id> or system"),
    },
    WebhookEventType.PLAN_SAVED: {
        "plan_id": (str, "the saved plan (GET .../plan)"),
        "version": (int, "the plan's version in its follow-up series"),
    },
    WebhookEventType.CONSENT_GIVEN: _CONSENT_FIELDS,
    WebhookEventType.CONSENT_WITHDRAWN: _CONSENT_FIELDS,
    WebhookEventType.SAFETY_FLAG_RAISED: {
        "measure_id": (str, "the check-in whose answer raised the flag"),
        "participant_id": (str, "the client"),
    },
}


def event_data(
    event_type: WebhookEventType, consult_id: str, facts: Mapping[str, object]
) -> dict[str, DataValue]:
    """The event's data: `consult_id` and each declared field `facts` holds with its type."""
    data: dict[str, DataValue] = {"consult_id": consult_id}
    for key, (kind, _) in DATA_FIELDS[event_type].items():
        value = facts.get(key)
        if isinstance(value, kind) and not isinstance(value, bool):
            data[key] = value
    return data


def new_message_id() -> str:
    # The `webhook-id`: unique per event, the same on every delivery attempt of it.
    return f"msg_{secrets.token_urlsafe(18)}"


def _aad(message_id: str) -> bytes:
    return f"webhook-event:{message_id}".encode()


SEALED_COLUMNS = (SealedColumn("webhook_events", "sealed", ("id",), _aad),)


@dataclass(frozen=True)
class OutboxEvent:
    """An event as the outbox holds it, opened."""

    message_id: str
    type: WebhookEventType
    data: dict[str, DataValue]


def open_event(keyring: KeyRing, row: WebhookEvent) -> OutboxEvent:
    opened = json.loads(keyring.open(row.sealed, _aad(row.id)))
    return OutboxEvent(row.id, WebhookEventType(opened["type"]), dict(opened["data"]))


def event_row(
    keyring: KeyRing,
    event_type: WebhookEventType,
    *,
    consult_id: str,
    platform_id: str,
    at: datetime,
    facts: Mapping[str, object],
) -> dict[str, Any]:
    message_id = new_message_id()
    said = {
        "type": WebhookEventType(event_type).value,
        "data": event_data(event_type, consult_id, facts),
    }
    return {
        "id": message_id,
        "platform_id": platform_id,
        "consult_id": consult_id,
        "sealed": keyring.seal(json.dumps(said).encode(), _aad(message_id)),
        "created_at": at,
        "fanned_out": False,
    }


def add(
    session: AsyncSession,
    keyring: KeyRing,
    event_type: WebhookEventType,
    *,
    consult_id: str,
    platform_id: str,
    at: datetime,
    facts: Mapping[str, object],
) -> None:
    """The event, in the session's transaction (flushed with it)."""
    row = event_row(
        keyring, event_type, consult_id=consult_id, platform_id=platform_id, at=at, facts=facts
    )
    session.add(WebhookEvent(**row))


async def insert_event(
    conn: AsyncConnection,
    keyring: KeyRing,
    event_type: WebhookEventType,
    *,
    consult_id: str,
    platform_id: str,
    at: datetime,
    facts: Mapping[str, object],
) -> None:
    """The event, on a Core connection inside its transaction."""
    row = event_row(
        keyring, event_type, consult_id=consult_id, platform_id=platform_id, at=at, facts=facts
    )
    await conn.execute(insert(WebhookEvent).values(**row))
