"""Ending, the empty-room timer, leaving, dropping and coming back."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from server.api.context import SERVICES
from server.consults.model import Actor
from tests.apiclient import Api
from tests.conftest import PlatformKey
from tests.rooms.conftest import People
from tests.rooms.test_lobby_and_roles import audit_actions
from tests.waiting import wait_for


async def consult_status(api: Api, platform: PlatformKey, consult_id: str) -> str:
    answer = await api.call("GET", f"/api/v1/consults/{consult_id}", bearer=platform.secret)
    status: str = answer.body["status"]
    return status


async def test_a_host_ends_the_consult_for_everyone_once(
    people: People, api: Api, platform: PlatformKey, client: Any
) -> None:
    therapist, psychiatrist, patient = await people.all_in_room()

    # Both hosts press End at the same moment: one end, one plan, the same answer to both.
    first, second = await asyncio.gather(psychiatrist.call("end"), therapist.call("end"))
    assert first["ok"], first
    assert second["ok"], second
    assert first["plan_id"] == second["plan_id"]
    for person in (therapist, psychiatrist, patient):
        ended = await person.wait_event("ended")
        assert ended["plan_id"] == first["plan_id"]
        await person.wait_disconnected()

    consult_id = people.consult["id"]
    assert await consult_status(api, platform, consult_id) == "ended"
    events = await audit_actions(api, platform, consult_id)
    assert [e["action"] for e in events].count("consult.ended") == 1
    # The platform's end afterwards is a no-op, and the room is gone from the server.
    again = await api.call("POST", f"/api/v1/consults/{consult_id}/end", bearer=platform.secret)
    assert again.status == 200
    assert client.app[SERVICES].rooms.get(consult_id) is None
    events_after = await audit_actions(api, platform, consult_id)
    assert [e["action"] for e in events_after].count("consult.ended") == 1
    # A token for an ended consult no longer connects.
    late = people.client("client")
    with pytest.raises(Exception):  # noqa: B017, PT011 (socketio's ConnectionError)
        await late.connect()
    assert late.connect_error["data"]["code"] == "consult_ended"


async def test_the_platform_ending_a_live_consult_closes_the_room(
    people: People, api: Api, platform: PlatformKey
) -> None:
    therapist = await people.joined("therapist")
    consult_id = people.consult["id"]
    answer = await api.call("POST", f"/api/v1/consults/{consult_id}/end", bearer=platform.secret)
    assert answer.status == 200
    ended = await therapist.wait_event("ended")
    assert ended["ended_by"].startswith("platform:")
    await therapist.wait_disconnected()


@pytest.mark.room_settings(reconnect_grace_seconds=0.2, empty_room_grace_seconds=0.3)
async def test_a_room_nobody_is_connected_to_ends_by_itself(
    people: People, api: Api, platform: PlatformKey, client: Any
) -> None:
    therapist = await people.joined("therapist")
    await therapist.close()
    consult_id = people.consult["id"]
    services = client.app[SERVICES]
    await wait_for(lambda: services.rooms.get(consult_id) is None)
    assert await consult_status(api, platform, consult_id) == "ended"
    events = await audit_actions(api, platform, consult_id)
    ended = [e for e in events if e["action"] == "consult.ended"]
    assert len(ended) == 1
    assert ended[0]["actor_type"] == "system"


@pytest.mark.room_settings(reconnect_grace_seconds=30)
async def test_a_dropped_socket_that_returns_keeps_its_seat(people: People) -> None:
    therapist = await people.joined("therapist")
    await people.consent()
    patient = await people.joined("client")
    assert (await therapist.call("admit", {"participant_id": people.id("client")}))["ok"]
    await patient.wait_event("admitted")

    mark = len(therapist.events)
    await patient.close()  # the network drops: no `leave`
    await therapist.wait_event(
        "peer-updated",
        lambda d: (
            d["participant"]["participant_id"] == people.id("client")
            and not d["participant"]["connected"]
        ),
        after=mark,
    )
    back = await people.connect("client")
    state = await back.join()
    assert state["you"]["place"] == "room"  # straight back in: no lobby
    offer = await back.wait_event("signal")
    assert offer["pc"] == 1  # a new peer connection for the new socket
    await therapist.wait_event(
        "peer-updated",
        lambda d: (
            d["participant"]["participant_id"] == people.id("client")
            and d["participant"]["connected"]
        ),
        after=mark,
    )
    assert therapist.received("peer-left") == []


@pytest.mark.room_settings(reconnect_grace_seconds=0.2, empty_room_grace_seconds=60)
async def test_a_seat_is_freed_when_the_grace_period_passes(people: People) -> None:
    therapist = await people.joined("therapist")
    await people.consent()
    patient = await people.joined("client")
    assert (await therapist.call("admit", {"participant_id": people.id("client")}))["ok"]
    await patient.wait_event("admitted")
    await patient.close()
    left = await therapist.wait_event("peer-left")
    assert left == {"participant_id": people.id("client"), "reason": "timeout"}
    back = await people.connect("client")
    assert (await back.join())["you"]["place"] == "lobby"  # the seat is gone: knock again
    await therapist.wait_event("lobby", lambda d: len(d["waiting"]) == 1)


async def test_a_second_connection_replaces_the_first(people: People) -> None:
    therapist = await people.joined("therapist")
    first = await people.joined("psychiatrist")
    second = await people.connect("psychiatrist")
    state = await second.join()
    assert state["you"]["place"] == "room"
    error = await first.wait_event("error")
    assert error["code"] == "connection_replaced"
    await first.wait_disconnected()
    # The replaced socket's disconnect does not free the seat the new one holds.
    assert (await second.call("media-state", {"audio": False, "video": False}))["ok"]
    update = await therapist.wait_event(
        "peer-updated", lambda d: d["participant"]["audio"] is False
    )
    assert update["participant"]["connected"] is True
    assert therapist.received("peer-left") == []


async def test_leave_frees_the_seat_and_others_are_told(people: People) -> None:
    therapist = await people.joined("therapist")
    psychiatrist = await people.joined("psychiatrist")
    assert await psychiatrist.call("leave") == {"ok": True}
    left = await therapist.wait_event("peer-left")
    assert left == {"participant_id": people.id("psychiatrist"), "reason": "left"}
    refused = await psychiatrist.call("media-state", {"audio": True, "video": True})
    assert refused["error"]["code"] == "not_joined"


async def test_end_racing_the_empty_room_timer_saves_one_plan(
    people: People, api: Api, platform: PlatformKey, client: Any
) -> None:
    """The timer's end and a host's end arrive together: one end event, one plan, one id."""
    therapist = await people.joined("therapist")
    rooms = client.app[SERVICES].rooms
    consult_id = people.consult["id"]
    host_end = therapist.call("end")
    timer_end = rooms.end_consult(consult_id, Actor("system", "empty-room"))
    platform_end = api.call("POST", f"/api/v1/consults/{consult_id}/end", bearer=platform.secret)
    by_host, by_timer, by_platform = await asyncio.gather(host_end, timer_end, platform_end)
    assert by_host["ok"], by_host
    assert by_host["plan_id"] == by_timer
    assert by_platform.status == 200
    events = await audit_actions(api, platform, consult_id)
    assert [e["action"] for e in events].count("consult.ended") == 1
    plan = await api.call("GET", f"/api/v1/consults/{consult_id}/plan", bearer=platform.secret)
    assert plan.body["id"] == by_timer


async def test_a_browser_whose_peer_connection_failed_asks_for_a_new_one(people: People) -> None:
    therapist, _psychiatrist, client = await people.all_in_room()
    first = await client.wait_event("signal", lambda s: s["type"] == "offer")
    assert first["pc"] == 0
    mark = len(client.events)
    assert await client.call("media-restart", {"pc": 0}) == {"ok": True, "pc": 1}
    offer = await client.wait_event("signal", lambda s: s["pc"] == 1, after=mark)
    assert offer["type"] == "offer"
    # Asked twice (a retry racing the first answer): the second finds pc 0 already replaced.
    assert await client.call("media-restart", {"pc": 0}) == {"ok": True, "pc": 1}
    ahead = await client.call("media-restart", {"pc": 7})
    assert ahead["error"]["code"] == "no_pending_offer"
    assert [s["pc"] for s in client.received("signal")] == [0, 1]
    lobby = await people.connect("client")  # replaces the socket; still admitted
    assert (await lobby.join())["pc"] == 2
    assert therapist.received("error") == []
