"""Revocation is an event the owner of the socket acts on: two app instances share one database
and one Redis, the socket lives on one, the revocation is made through the other."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server.api.context import SERVICES
from server.api.routes import OPENAPI_KEY
from server.app import SETTINGS, create_app
from server.consults.access_events import (
    AccessChange,
    AccessEvent,
    RedisAccessEvents,
    channel_for,
)
from server.consults.model import Actor
from server.ids import KeyId, ParticipantId
from server.settings import Settings
from tests.apiclient import Api
from tests.conftest import PlatformKey, make_settings, new_platform, require_service
from tests.rooms.conftest import People
from tests.rooms.test_access import WITHIN, closed_with, refused_at_connect, run_cli
from tests.waiting import wait_for


@pytest.fixture
def settings(request: pytest.FixtureRequest, tmp_path: Path, database_url: str) -> Settings:
    redis_url = require_service("TRIAD_TEST_REDIS_URL")
    marker = request.node.get_closest_marker("room_settings")
    extra = marker.kwargs if marker else {}
    return make_settings(tmp_path, database_url, redis_url=redis_url, **extra)


@pytest.fixture
async def other(aiohttp_client: Any, settings: Settings) -> TestClient[Any, Any]:
    """A second instance of the server: its own process state, the same database and Redis."""
    second: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    return second


@pytest.fixture
async def other_people(
    other: TestClient[Any, Any], consult: dict[str, Any]
) -> AsyncIterator[People]:
    base_url = str(other.make_url("")).rstrip("/")
    group = People(base_url, consult, Api(other, other.app[OPENAPI_KEY].model_dump()))
    yield group
    await group.close()


async def test_a_revocation_made_on_one_instance_closes_a_socket_on_another(
    people: People,
    other_people: People,
    other: TestClient[Any, Any],
    api: Api,
    platform: PlatformKey,
) -> None:
    therapist = await other_people.joined("therapist")  # served by the second instance
    psychiatrist = await other_people.joined("psychiatrist")
    path = f"/api/v1/consults/{people.consult['id']}/participants/{people.id('therapist')}/tokens"
    answer = await api.call("DELETE", path, bearer=platform.secret)  # the first instance
    assert answer.status == 200, answer.body

    await closed_with(therapist, "token_revoked")
    await psychiatrist.wait_event("peer-left", lambda d: d["reason"] == "revoked")
    assert not psychiatrist.disconnected
    assert await refused_at_connect(other_people, "therapist", people.token("therapist")) == (
        "token_revoked"
    )


async def test_an_api_key_revoked_on_one_instance_closes_its_sockets_on_another(
    people: People, other_people: People, client: Any, platform: PlatformKey
) -> None:
    second = await new_platform(client.app[SERVICES], "Acme Health")
    therapist = await other_people.connect(
        "therapist", await people.new_link("therapist", second.secret)
    )
    await therapist.join()
    # As `triad apikey revoke` would, from a process that serves no socket of this consult.
    assert await client.app[SERVICES].keys.revoke(KeyId(second.key_id), Actor("operator", "t"))
    await closed_with(therapist, "token_invalid", within=WITHIN)


async def test_malformed_messages_on_the_channel_are_ignored(
    other: TestClient[Any, Any], client: Any, people: People
) -> None:
    """Anyone who can publish on Redis is already inside; still, garbage there closes nothing
    and stops nothing."""
    therapist = await people.joined("therapist")
    services = client.app[SERVICES]
    events = services.access_events
    assert isinstance(events, RedisAccessEvents)
    redis = services.redis
    assert redis is not None
    for garbage in (b"", b"{", b"[]", b'{"change":"nope","at":1}', b"x" * 5000):
        await redis.publish(events.channel, garbage)
    # A real event for someone else, published after the garbage, arrives: the reader lives.
    await marker_heard(events)
    assert not therapist.disconnected
    assert (await therapist.call("media-state", {"audio": True, "video": True}))["ok"]


async def test_another_deployments_revocation_is_not_heard(client: Any, people: People) -> None:
    """Pub/sub ignores Redis database numbers: the channel is the deployment's own
    (`TRIAD_CLUSTER_NAME`), so a deployment sharing the Redis server closes nothing here."""
    therapist = await people.joined("therapist")
    services = client.app[SERVICES]
    events = services.access_events
    assert isinstance(events, RedisAccessEvents)
    assert events.channel == channel_for(client.app[SETTINGS].cluster_name)
    redis = services.redis
    assert redis is not None
    therapist_id = ParticipantId(people.id("therapist"))
    later = time.time() + 60  # tokens issued before it are refused: the therapist's is
    revoked = AccessEvent(AccessChange.TOKENS_REVOKED, later, participant_id=therapist_id)
    await redis.publish(channel_for("another-deployment"), revoked.encode())
    # A marker published on ours after it has arrived: had the other channel been heard, its
    # event (Redis delivered it before the marker was sent) would have been read before it.
    seen, marker = await marker_heard(events)
    assert seen == [marker]
    assert not therapist.disconnected
    assert (await therapist.call("media-state", {"audio": True, "video": True}))["ok"]
    # The same event on this deployment's channel closes the socket: the one above could have.
    await redis.publish(events.channel, revoked.encode())
    await therapist.wait_disconnected()


@pytest.mark.room_settings(socket_access_recheck_seconds=3600)
async def test_a_key_revoked_from_the_command_line_reaches_sockets_through_redis(
    people: People, client: Any, settings: Settings
) -> None:
    """The command line is a process of its own: with Redis its revocation is an event every
    server process hears at once (the sweep, an hour away here, plays no part)."""
    second = await new_platform(client.app[SERVICES], "Acme Health")
    therapist = await people.connect("therapist", await people.new_link("therapist", second.secret))
    await therapist.join()
    await run_cli(
        settings, "apikey", "revoke", second.key_id, TRIAD_REDIS_URL=str(settings.redis_url)
    )
    await closed_with(therapist, "token_invalid")


async def marker_heard(events: RedisAccessEvents) -> tuple[list[AccessEvent], AccessEvent]:
    """Publish an event for nobody on our channel and wait until it is read: what the reader
    delivered up to and with it, and the marker."""
    seen: list[AccessEvent] = []

    async def record(event: AccessEvent) -> None:
        seen.append(event)

    unsubscribe = events.subscribe(record)
    try:
        marker = AccessEvent(
            AccessChange.TOKENS_REVOKED, 0.0, participant_id=ParticipantId("p_nobody")
        )
        await events.publish(marker)
        await wait_for(lambda: marker in seen, 5, "the marker event")
    finally:
        unsubscribe()
    return seen, marker
