"""A delivery's body and its Standard Webhooks headers, signed by the `standardwebhooks`
library (the same one a receiver verifies with)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from standardwebhooks import Webhook


def body(event_type: str, created_at: datetime, data: Mapping[str, object]) -> str:
    """The JSON body: the same bytes on every attempt of an event."""
    return json.dumps(
        {
            "type": event_type,
            "timestamp": created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "data": dict(data),
        },
        separators=(",", ":"),
        sort_keys=True,
    )


def headers(message_id: str, secrets: Sequence[str], at: datetime, payload: str) -> dict[str, str]:
    """`webhook-id`, `webhook-timestamp` (this attempt's, whole seconds) and a `v1,` signature
    per secret, space-separated (during a rotation's overlap both secrets sign)."""
    at = datetime.fromtimestamp(int(at.timestamp()), UTC)
    signatures = " ".join(Webhook(secret).sign(message_id, at, payload) for secret in secrets)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
        "Content-Type": "application/json",
    }
