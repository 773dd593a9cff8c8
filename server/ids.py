"""Typed identifiers. Ids are opaque random strings with a prefix saying what they name."""

from __future__ import annotations

import secrets
from typing import NewType

PlatformId = NewType("PlatformId", str)
KeyId = NewType("KeyId", str)
ConsultId = NewType("ConsultId", str)
ParticipantId = NewType("ParticipantId", str)
TokenId = NewType("TokenId", str)
PlanId = NewType("PlanId", str)
MeasureId = NewType("MeasureId", str)
# A worker process of a deployment: `<node id>-<index>` (server/cluster/).
WorkerId = NewType("WorkerId", str)

_ID_BYTES = 12  # 96 bits: unguessable, short enough for URLs and logs


def _new(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(_ID_BYTES)}"


def new_platform_id() -> PlatformId:
    return PlatformId(_new("pf"))


def new_key_id() -> KeyId:
    return KeyId(_new("key"))


def new_consult_id() -> ConsultId:
    return ConsultId(_new("c"))


def new_participant_id() -> ParticipantId:
    return ParticipantId(_new("p"))


def new_token_id() -> TokenId:
    return TokenId(secrets.token_urlsafe(16))


def new_plan_id() -> PlanId:
    return PlanId(_new("pl"))


def new_measure_id() -> MeasureId:
    return MeasureId(_new("msr"))


WebhookEndpointId = NewType("WebhookEndpointId", str)


def new_webhook_endpoint_id() -> WebhookEndpointId:
    return WebhookEndpointId(_new("we"))
