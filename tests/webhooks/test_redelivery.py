"""A failed event: given up after the retry window, readable as failed, sent again by hand
(one attempt, recorded as manual); refused while still pending; deleting an endpoint cancels
what it had pending."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from server.db.models import WebhookDelivery
from server.services import Services
from tests.apiclient import Api
from tests.conftest import PlatformKey
from tests.databases import snapshot
from tests.waiting import wait_for
from tests.webhooks.receiver import Receiver

ENDPOINTS = "/api/v1/webhook-endpoints"


async def deliveries(api: Api, platform: PlatformKey, endpoint_id: str, **query: str) -> list[Any]:
    answer = await api.call(
        "GET", f"{ENDPOINTS}/{endpoint_id}/deliveries", bearer=platform.secret, query=query
    )
    assert answer.status == 200, answer.body
    found: list[Any] = answer.body["deliveries"]
    return found


async def end(api: Api, platform: PlatformKey, consult: dict[str, Any]) -> None:
    answer = await api.call("POST", f"/api/v1/consults/{consult['id']}/end", bearer=platform.secret)
    assert answer.status == 200


@pytest.mark.room_settings(webhook_retry_window_seconds=0.5)
async def test_a_failed_event_is_sent_again_by_hand(
    api: Api,
    platform: PlatformKey,
    services: Services,
    consult: dict[str, Any],
    endpoint: dict[str, Any],
    receiver: Receiver,
) -> None:
    endpoint_id = endpoint["endpoint"]["id"]
    receiver.failing = True
    await end(api, platform, consult)

    async def both_failed() -> bool:
        return len(await deliveries(api, platform, endpoint_id, state="failed")) == 2

    await wait_for(both_failed, what="both events failed for good")
    failed = await deliveries(api, platform, endpoint_id, state="failed")
    assert [d["event_type"] for d in failed] == ["consult.ended", "plan.saved"]
    assert all(d["attempts"] >= 1 and d["next_attempt_at"] is None for d in failed)
    refused = len(receiver.requests)

    receiver.failing = False
    message_id = failed[0]["message_id"]
    path = f"{ENDPOINTS}/{endpoint_id}/deliveries/{message_id}/redeliver"
    answer = await api.call("POST", path, bearer=platform.secret)
    assert answer.status == 202, answer.body
    assert answer.body["state"] == "pending"
    await wait_for(lambda: len(receiver.delivered()) >= 1, what="the redelivery")
    assert receiver.delivered()[0].message_id == message_id
    assert len(receiver.requests) >= refused + 1
    attempts = await api.call("GET", f"{ENDPOINTS}/{endpoint_id}/attempts", bearer=platform.secret)
    manual = [a for a in attempts.body["attempts"] if a["manual"]]
    assert [(a["message_id"], a["succeeded"]) for a in manual] == [(message_id, True)]


async def test_redelivering_an_unknown_event_is_not_found(
    api: Api, platform: PlatformKey, endpoint: dict[str, Any]
) -> None:
    path = f"{ENDPOINTS}/{endpoint['endpoint']['id']}/deliveries/msg_nothing/redeliver"
    answer = await api.call("POST", path, bearer=platform.secret)
    assert (answer.status, answer.code) == (404, "webhook_delivery_not_found")


# The first retry is far off: nothing moves while the test looks.
@pytest.mark.room_settings(webhook_retry_base_seconds=60, webhook_retry_cap_seconds=60)
async def test_a_pending_delivery_cannot_be_redelivered_and_deleting_cancels_it(
    api: Api,
    platform: PlatformKey,
    services: Services,
    consult: dict[str, Any],
    endpoint: dict[str, Any],
    receiver: Receiver,
) -> None:
    endpoint_id = endpoint["endpoint"]["id"]
    receiver.failing = True
    await end(api, platform, consult)

    async def first_refused() -> bool:
        pending = await deliveries(api, platform, endpoint_id, state="pending")
        return [d["attempts"] for d in pending] == [1, 0]

    await wait_for(first_refused, what="the first event refused once")
    pending = await deliveries(api, platform, endpoint_id, state="pending")
    assert [d["event_type"] for d in pending] == ["consult.ended", "plan.saved"]
    before = await snapshot(services.db)
    path = f"{ENDPOINTS}/{endpoint_id}/deliveries/{pending[1]['message_id']}/redeliver"
    answer = await api.call("POST", path, bearer=platform.secret)
    assert (answer.status, answer.code) == (409, "webhook_delivery_pending")
    assert await snapshot(services.db) == before
    # The second waits behind the first: nothing but the first was ever attempted.
    assert {r.type for r in receiver.requests} == {"consult.ended"}

    assert (
        await api.call("DELETE", f"{ENDPOINTS}/{endpoint_id}", bearer=platform.secret)
    ).status == 204
    # Cancelled: nothing of it is attempted again.
    async with services.db.sessions() as session:
        states = set(await session.scalars(select(WebhookDelivery.state)))
    assert states == {"cancelled"}
    assert len(receiver.requests) == 1
