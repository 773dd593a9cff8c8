"""A worker remembers the consults it ended for a while (a join that read the row just before
the end is still refused), not for as long as it runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web

from server.app import create_app
from server.ids import ConsultId
from server.rooms.registry import ENDED_MEMORY
from server.services import Services
from server.settings import Settings
from tests.apiclient import Api
from tests.conftest import PlatformKey, consult_body
from tests.waiting import wait_for


class MovableClock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def app(settings: Settings, clock: MovableClock) -> web.Application:
    return create_app(settings, clock=clock)


async def ended_consult(api: Api, platform: PlatformKey, services: Services) -> ConsultId:
    created = await api.call(
        "POST", "/api/v1/consults", bearer=platform.secret, json_body=consult_body()
    )
    assert created.status == 201, created.body
    consult_id = ConsultId(created.body["id"])
    ended = await api.call("POST", f"/api/v1/consults/{consult_id}/end", bearer=platform.secret)
    assert ended.status == 200, ended.body
    await wait_for(lambda: services.rooms.ended_here(consult_id), 10, "the end remembered")
    return consult_id


async def test_an_end_is_remembered_for_a_while_then_forgotten(
    api: Api, platform: PlatformKey, services: Services, clock: MovableClock
) -> None:
    first = await ended_consult(api, platform, services)
    clock.now += ENDED_MEMORY - timedelta(seconds=1)
    second = await ended_consult(api, platform, services)
    assert services.rooms.ended_here(first)  # not yet past its time
    clock.now += timedelta(seconds=2)
    third = await ended_consult(api, platform, services)
    assert not services.rooms.ended_here(first)
    assert services.rooms.ended_here(second)
    assert services.rooms.ended_here(third)
