"""REST handlers of a platform's webhook endpoints: register, list, read, rotate the secret,
delete; read deliveries and attempts; redeliver an event by hand."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta

from ..webhooks.endpoints import EndpointSecret, EndpointView
from ..webhooks.history import DeliveryState
from .context import SERVICES
from .operations import Call, Reply
from .webhook_schemas import (
    AttemptsQuery,
    CreateWebhookEndpointIn,
    DeliveriesQuery,
    RotateWebhookSecretIn,
    WebhookAttemptOut,
    WebhookAttemptsOut,
    WebhookDeliveriesOut,
    WebhookDeliveryOut,
    WebhookEndpointOut,
    WebhookEndpointSecretOut,
    WebhookEndpointsOut,
)


def endpoint_out(view: EndpointView) -> WebhookEndpointOut:
    return WebhookEndpointOut.model_validate(asdict(view))


def secret_out(created: EndpointSecret) -> WebhookEndpointSecretOut:
    return WebhookEndpointSecretOut(endpoint=endpoint_out(created.endpoint), secret=created.secret)


async def create_endpoint(call: Call) -> Reply:
    body = call.body_as(CreateWebhookEndpointIn)
    created = await call.request.app[SERVICES].webhooks.create(
        call.caller(), body.url, body.event_types
    )
    return Reply(201, secret_out(created))


async def list_endpoints(call: Call) -> Reply:
    views = await call.request.app[SERVICES].webhooks.list(call.caller())
    return Reply(200, WebhookEndpointsOut(endpoints=[endpoint_out(v) for v in views]))


async def get_endpoint(call: Call) -> Reply:
    view = await call.request.app[SERVICES].webhooks.get(call.caller(), call.path("endpoint_id"))
    return Reply(200, endpoint_out(view))


async def rotate_secret(call: Call) -> Reply:
    body = call.body_as(RotateWebhookSecretIn)
    rotated = await call.request.app[SERVICES].webhooks.rotate(
        call.caller(), call.path("endpoint_id"), timedelta(seconds=body.overlap_seconds)
    )
    return Reply(200, secret_out(rotated))


async def delete_endpoint(call: Call) -> Reply:
    await call.request.app[SERVICES].webhooks.delete(call.caller(), call.path("endpoint_id"))
    return Reply(204)


async def list_deliveries(call: Call) -> Reply:
    query = call.query_as(DeliveriesQuery)
    views, cursor = await call.request.app[SERVICES].deliveries.deliveries(
        call.caller(),
        call.path("endpoint_id"),
        state=DeliveryState(query.state) if query.state else None,
        after=query.after,
        limit=query.limit,
    )
    return Reply(
        200,
        WebhookDeliveriesOut(
            deliveries=[WebhookDeliveryOut.model_validate(asdict(v)) for v in views],
            next_after=cursor if len(views) == query.limit else None,
        ),
    )


async def list_attempts(call: Call) -> Reply:
    query = call.query_as(AttemptsQuery)
    views = await call.request.app[SERVICES].deliveries.attempts(
        call.caller(), call.path("endpoint_id"), after=query.after, limit=query.limit
    )
    return Reply(
        200,
        WebhookAttemptsOut(
            attempts=[WebhookAttemptOut.model_validate(asdict(v)) for v in views],
            next_after=views[-1].id if len(views) == query.limit else None,
        ),
    )


async def redeliver(call: Call) -> Reply:
    view = await call.request.app[SERVICES].deliveries.redeliver(
        call.caller(), call.path("endpoint_id"), call.path("message_id")
    )
    return Reply(202, WebhookDeliveryOut.model_validate(asdict(view)))
