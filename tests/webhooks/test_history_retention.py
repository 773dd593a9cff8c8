"""Webhook history is pruned once nothing waits on it: events delivered (or failed for good)
past `TRIAD_WEBHOOK_HISTORY_DAYS` go with their deliveries and attempts; an event a delivery
still waits on stays, however old."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from server.consults.retention import Retention, RetentionPolicy
from server.db.models import WebhookAttempt, WebhookDelivery, WebhookEvent
from server.services import Services
from tests.apiclient import Api
from tests.conftest import PlatformKey, consult_body
from tests.waiting import wait_for
from tests.webhooks.receiver import Receiver


async def ended_consult(api: Api, platform: PlatformKey) -> str:
    made = await api.call(
        "POST", "/api/v1/consults", bearer=platform.secret, json_body=consult_body()
    )
    ended = await api.call(
        "POST", f"/api/v1/consults/{made.body['id']}/end", bearer=platform.secret
    )
    assert ended.status == 200
    consult_id: str = made.body["id"]
    return consult_id


async def rows(services: Services) -> dict[str, int]:
    async with services.db.sessions() as session:
        return {
            model.__tablename__: int(
                await session.scalar(select(func.count()).select_from(model)) or 0
            )
            for model in (WebhookEvent, WebhookDelivery, WebhookAttempt)
        }


async def test_delivered_history_goes_after_its_retention_and_waiting_events_stay(
    api: Api,
    platform: PlatformKey,
    services: Services,
    endpoint: dict[str, Any],
    receiver: Receiver,
) -> None:
    delivered = await ended_consult(api, platform)
    await wait_for(
        lambda: len(receiver.of_consult(delivered)) == 2, what="the first consult's events"
    )
    receiver.failing = True
    waiting = await ended_consult(api, platform)
    await wait_for(lambda: len(receiver.requests) >= 4, what="the second consult refused")
    before = await rows(services)
    assert before["webhook_events"] == 4

    def later(days: int) -> Retention:
        now = datetime.now(UTC) + timedelta(days=days)
        policy = RetentionPolicy(timedelta(hours=48), None, timedelta(days=30), batch=1)
        return Retention(services.db, policy, lambda: now)

    assert (await later(29).prune()).webhook_events == 0
    pruned = await later(31).prune()
    assert pruned.webhook_events == 2
    after = await rows(services)
    assert after["webhook_events"] == 2
    assert after["webhook_deliveries"] == 2  # the waiting consult's
    async with services.db.sessions() as session:
        kept = set(await session.scalars(select(WebhookEvent.consult_id)))
    assert kept == {waiting}
    assert (await later(31).prune()).webhook_events == 0  # idempotent
