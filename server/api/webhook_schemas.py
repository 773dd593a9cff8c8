"""Bodies of the webhook endpoints' REST operations (also their OpenAPI schemas)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from ..consults.outbox import WebhookEventType
from ..webhooks.history import AttemptError, DeliveryState
from ..webhooks.urls import MAX_URL_CHARS
from .schemas import Body

MAX_PAGE = 200
MAX_OVERLAP_SECONDS = 7 * 24 * 3600


class CreateWebhookEndpointIn(Body):
    url: str = Field(
        min_length=1,
        max_length=MAX_URL_CHARS,
        description="Where events are POSTed: https (http only outside production), a public "
        "address unless the server allows private ones.",
    )
    event_types: list[WebhookEventType] = Field(
        min_length=1,
        max_length=len(WebhookEventType),
        description="The event types this endpoint receives.",
    )


class RotateWebhookSecretIn(Body):
    overlap_seconds: int = Field(
        default=24 * 3600,
        ge=0,
        le=MAX_OVERLAP_SECONDS,
        description="How long the previous secret keeps signing beside the new one.",
    )


class WebhookEndpointOut(Body):
    id: str
    url: str
    event_types: list[WebhookEventType]
    created_at: datetime
    previous_secret_until: datetime | None = Field(
        description="Until then, deliveries carry a signature by the previous secret too."
    )


class WebhookEndpointSecretOut(Body):
    endpoint: WebhookEndpointOut
    secret: str = Field(
        description="The signing secret (`whsec_...`), shown this once: store it now."
    )


class WebhookEndpointsOut(Body):
    endpoints: list[WebhookEndpointOut]


class DeliveriesQuery(Body):
    # Literal, not the enum: a query parameter's schema is inlined (no $defs to refer to).
    state: Literal["pending", "succeeded", "failed", "cancelled"] | None = Field(
        default=None, description="Only deliveries in this state."
    )
    after: int = Field(default=0, ge=0, le=2**63 - 1, description="The page cursor.")
    limit: int = Field(default=50, ge=1, le=MAX_PAGE)


class AttemptsQuery(Body):
    after: int = Field(
        default=0, ge=0, le=2**63 - 1, description="Return attempts with a larger id."
    )
    limit: int = Field(default=50, ge=1, le=MAX_PAGE)


class WebhookDeliveryOut(Body):
    message_id: str = Field(description="The event's `webhook-id`.")
    event_type: WebhookEventType
    consult_id: str
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    finished_at: datetime | None


class WebhookDeliveriesOut(Body):
    deliveries: list[WebhookDeliveryOut]
    next_after: int | None = Field(description="Pass as `after` for the next page; null at end.")


class WebhookAttemptOut(Body):
    id: int
    message_id: str
    event_type: WebhookEventType
    at: datetime
    succeeded: bool
    status_code: int | None = Field(description="The receiver's HTTP status, when it answered.")
    latency_ms: int
    error: AttemptError | None
    manual: bool = Field(description="A redelivery asked for by hand.")


class WebhookAttemptsOut(Body):
    attempts: list[WebhookAttemptOut]
    next_after: int | None = Field(description="Pass as `after` for the next page; null at end.")
