"""The webhook endpoints' operations (part of the one table in `routes.py`)."""

from __future__ import annotations

from ..errors import ErrorCode
from . import webhooks
from .operations import Operation
from .webhook_schemas import (
    AttemptsQuery,
    CreateWebhookEndpointIn,
    DeliveriesQuery,
    RotateWebhookSecretIn,
    WebhookAttemptsOut,
    WebhookDeliveriesOut,
    WebhookDeliveryOut,
    WebhookEndpointOut,
    WebhookEndpointSecretOut,
    WebhookEndpointsOut,
)

ENDPOINTS = "/api/v1/webhook-endpoints"
ENDPOINT = ENDPOINTS + "/{endpoint_id}"
TAGS = ("webhooks",)
NOT_FOUND = (ErrorCode.WEBHOOK_ENDPOINT_NOT_FOUND,)

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "POST",
        ENDPOINTS,
        "createWebhookEndpoint",
        "Register a webhook endpoint; its signing secret is answered this once",
        webhooks.create_endpoint,
        auth="api_key",
        body=CreateWebhookEndpointIn,
        responses={201: ("The endpoint and its secret", WebhookEndpointSecretOut)},
        errors=(ErrorCode.WEBHOOK_URL_REFUSED, ErrorCode.WEBHOOK_ENDPOINTS_LIMIT_REACHED),
        tags=TAGS,
    ),
    Operation(
        "GET",
        ENDPOINTS,
        "listWebhookEndpoints",
        "The platform's webhook endpoints",
        webhooks.list_endpoints,
        auth="api_key",
        responses={200: ("The endpoints (no secrets)", WebhookEndpointsOut)},
        tags=TAGS,
    ),
    Operation(
        "GET",
        ENDPOINT,
        "getWebhookEndpoint",
        "Read a webhook endpoint",
        webhooks.get_endpoint,
        auth="api_key",
        responses={200: ("The endpoint (no secret)", WebhookEndpointOut)},
        errors=NOT_FOUND,
        tags=TAGS,
    ),
    Operation(
        "DELETE",
        ENDPOINT,
        "deleteWebhookEndpoint",
        "Delete a webhook endpoint; its pending deliveries are cancelled",
        webhooks.delete_endpoint,
        auth="api_key",
        responses={204: ("Deleted", None)},
        errors=NOT_FOUND,
        tags=TAGS,
    ),
    Operation(
        "POST",
        ENDPOINT + "/secret",
        "rotateWebhookSecret",
        "Rotate the signing secret; the previous one keeps signing beside it for the overlap",
        webhooks.rotate_secret,
        auth="api_key",
        body=RotateWebhookSecretIn,
        body_required=False,
        responses={200: ("The endpoint and its new secret", WebhookEndpointSecretOut)},
        errors=NOT_FOUND,
        tags=TAGS,
    ),
    Operation(
        "GET",
        ENDPOINT + "/deliveries",
        "listWebhookDeliveries",
        "The endpoint's deliveries (one per event), oldest first",
        webhooks.list_deliveries,
        auth="api_key",
        query=DeliveriesQuery,
        responses={200: ("A page of deliveries", WebhookDeliveriesOut)},
        errors=NOT_FOUND,
        tags=TAGS,
    ),
    Operation(
        "GET",
        ENDPOINT + "/attempts",
        "listWebhookAttempts",
        "Every delivery attempt at the endpoint: status, latency and error code",
        webhooks.list_attempts,
        auth="api_key",
        query=AttemptsQuery,
        responses={200: ("A page of attempts", WebhookAttemptsOut)},
        errors=NOT_FOUND,
        tags=TAGS,
    ),
    Operation(
        "POST",
        ENDPOINT + "/deliveries/{message_id}/redeliver",
        "redeliverWebhook",
        "Send a failed (or delivered) event to the endpoint again, now: one attempt",
        webhooks.redeliver,
        auth="api_key",
        responses={202: ("The delivery, pending again", WebhookDeliveryOut)},
        errors=(
            ErrorCode.WEBHOOK_ENDPOINT_NOT_FOUND,
            ErrorCode.WEBHOOK_DELIVERY_NOT_FOUND,
            ErrorCode.WEBHOOK_DELIVERY_PENDING,
        ),
        tags=TAGS,
    ),
)
