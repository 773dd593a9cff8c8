"""The OpenAPI document's `webhooks`: one POST per event type, its body's schema built from
the outbox's declaration of each event's data (`consults/outbox.py`)."""

from __future__ import annotations

from typing import Any

from ..consults.outbox import DATA_FIELDS, WebhookEventType
from .operations import JSON_TYPE

_JSON_TYPES = {str: "string", int: "integer"}
_HEADERS = {
    "webhook-id": "The event's id: the same on every attempt (deduplicate on it).",
    "webhook-timestamp": "This attempt's time, in seconds since the epoch.",
    "webhook-signature": "`v1,<base64 HMAC-SHA256 of id.timestamp.body>`, space-separated "
    "when two secrets sign (a rotation's overlap).",
}


def _body_schema(event_type: WebhookEventType) -> dict[str, Any]:
    fields = DATA_FIELDS[event_type]
    properties: dict[str, Any] = {"consult_id": {"type": "string"}}
    for key, (kind, description) in fields.items():
        properties[key] = {"type": _JSON_TYPES[kind], "description": description}
    return {
        "type": "object",
        "required": ["type", "timestamp", "data"],
        "additionalProperties": False,
        "properties": {
            "type": {"const": event_type.value},
            "timestamp": {"type": "string", "format": "date-time"},
            "data": {
                "type": "object",
                "required": ["consult_id"],
                "additionalProperties": False,
                "properties": properties,
            },
        },
    }


def webhooks() -> dict[str, Any]:
    return {
        event_type.value: {
            "post": {
                "operationId": "webhook_" + event_type.value.replace(".", "_"),
                "summary": f"`{event_type.value}`, signed per Standard Webhooks",
                "tags": ["webhooks"],
                "parameters": [
                    {
                        "name": name,
                        "in": "header",
                        "required": True,
                        "description": description,
                        "schema": {"type": "string"},
                    }
                    for name, description in _HEADERS.items()
                ],
                "requestBody": {
                    "required": True,
                    "content": {JSON_TYPE: {"schema": _body_schema(event_type)}},
                },
                "responses": {
                    "2XX": {"description": "Accepted: the event will not be sent again."},
                    "default": {"description": "Not accepted: retried with backoff."},
                },
            }
        }
        for event_type in WebhookEventType
    }
