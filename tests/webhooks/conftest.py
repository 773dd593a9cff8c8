"""Webhooks against a real receiver on loopback: the app's dispatcher polls often and retries
soon, and endpoints may be on loopback (`TRIAD_WEBHOOK_ALLOW_PRIVATE_ADDRESSES`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from server.settings import Settings
from tests.apiclient import Api
from tests.conftest import PlatformKey, make_settings
from tests.rooms.conftest import People
from tests.webhooks.receiver import Receiver, receiving

ALL_TYPES = [
    "consult.live",
    "participant.admitted",
    "participant.left",
    "consult.ended",
    "plan.saved",
    "consent.given",
    "consent.withdrawn",
    "safety_flag.raised",
]
FAST_DELIVERY: dict[str, Any] = {
    "webhook_delivery": True,
    "webhook_allow_private_addresses": True,
    "webhook_poll_seconds": 0.05,
    "webhook_retry_base_seconds": 0.05,
    "webhook_retry_cap_seconds": 0.2,
}


@pytest.fixture
def settings(request: pytest.FixtureRequest, tmp_path: Path, database_url: str) -> Settings:
    """`@pytest.mark.room_settings(...)` overrides settings per test, as in tests/rooms."""
    marker = request.node.get_closest_marker("room_settings")
    return make_settings(
        tmp_path, database_url, **{**FAST_DELIVERY, **(marker.kwargs if marker else {})}
    )


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with receiving() as running:
        yield running


async def register(
    api: Api, platform: PlatformKey, url: str, event_types: list[str] | None = None
) -> dict[str, Any]:
    answer = await api.call(
        "POST",
        "/api/v1/webhook-endpoints",
        bearer=platform.secret,
        json_body={"url": url, "event_types": event_types or ALL_TYPES},
    )
    assert answer.status == 201, answer.body
    body: dict[str, Any] = answer.body
    return body


@pytest.fixture
async def endpoint(api: Api, platform: PlatformKey, receiver: Receiver) -> dict[str, Any]:
    """The platform's endpoint at the receiver, which verifies with its secret."""
    created = await register(api, platform, receiver.url)
    receiver.secrets = [created["secret"]]
    return created


@pytest.fixture
def base_url(client: Any) -> str:
    return str(client.make_url("")).rstrip("/")


@pytest.fixture
async def people(base_url: str, consult: dict[str, Any], api: Api) -> AsyncIterator[People]:
    group = People(base_url, consult, api)
    yield group
    await group.close()
