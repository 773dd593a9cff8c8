"""Per-socket budgets: `join`, `media-restart` and the screen share's events have their own
bucket, a socket must join soon after connecting, and a participant holds only a few sockets that
have not joined."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import socketio

from tests.apiclient import Api
from tests.conftest import PlatformKey
from tests.rooms.conftest import People
from tests.rooms.test_lobby_and_roles import audit_actions


def outcomes(acks: list[dict[str, Any]]) -> list[str]:
    return ["ok" if a["ok"] else a["error"]["code"] for a in acks]


async def joined_rows(api: Api, platform: PlatformKey, people: People) -> int:
    events = await audit_actions(api, platform, people.consult["id"])
    return sum(1 for e in events if e["action"] == "participant.joined")


# A bucket that does not refill during the test: exactly `burst` joins get through.
@pytest.mark.room_settings(socket_joins_per_second=0.001, socket_join_burst=3)
async def test_a_join_flood_is_refused_and_writes_no_audit_rows(
    people: People, api: Api, platform: PlatformKey
) -> None:
    therapist = await people.joined("therapist")  # one of the three
    before = await joined_rows(api, platform, people)
    acks = await asyncio.gather(*(therapist.call("join") for _ in range(20)))
    assert outcomes(acks).count("ok") == 2
    assert set(outcomes(acks)) == {"ok", "rate_limited"}
    assert await joined_rows(api, platform, people) == before + 2
    # Other events still go through: only the costly ones have run out.
    assert (await therapist.call("media-state", {"audio": True, "video": True}))["ok"]


@pytest.mark.room_settings(socket_joins_per_second=0.001, socket_join_burst=3)
async def test_a_media_restart_flood_is_refused_and_renegotiates_nothing(
    people: People,
) -> None:
    therapist = await people.joined("therapist")  # join: one of the three
    psychiatrist = await people.joined("psychiatrist")
    await therapist.wait_event("signal", lambda s: s["pc"] == 0)
    results = []
    pc = 0
    for _ in range(10):  # each asks for a new peer connection for the current one
        ack = await therapist.call("media-restart", {"pc": pc})
        results.append(ack)
        if ack["ok"]:
            pc = ack["pc"]
    assert outcomes(results) == ["ok", "ok"] + ["rate_limited"] * 8
    assert pc == 2
    await therapist.wait_event("signal", lambda s: s["pc"] == 2)
    # The server made exactly the two new peer connections: offers numbered 0, 1, 2 only.
    assert sorted({s["pc"] for s in therapist.received("signal")}) == [0, 1, 2]
    assert not psychiatrist.disconnected


@pytest.mark.room_settings(socket_join_timeout_seconds=0.5)
async def test_a_socket_that_does_not_join_is_closed(people: People) -> None:
    therapist = await people.joined("therapist")
    idle = await people.connect("psychiatrist")
    error = await idle.wait_event("error")
    assert error["code"] == "join_timeout"
    await idle.wait_disconnected()
    # The joined socket, connected earlier (its deadline came first), is still here.
    assert not therapist.disconnected
    assert (await therapist.call("media-state", {"audio": True, "video": True}))["ok"]


@pytest.mark.room_settings(socket_max_unjoined_per_participant=2)
async def test_a_participant_holds_only_a_few_sockets_that_have_not_joined(
    people: People,
) -> None:
    first = await people.connect("client")
    await people.connect("client")
    third = people.client("client")
    with pytest.raises(socketio.exceptions.ConnectionError):
        await third.connect()
    assert third.connect_error["data"]["code"] == "rate_limited"
    # Another participant is not counted against this one; a joined socket frees a place.
    await people.connect("therapist")
    await first.join()
    await people.connect("client")


@pytest.mark.parametrize("reserved", ["disconnect", "connect"])
async def test_a_client_sending_a_reserved_event_name_changes_nothing(
    people: People, reserved: str
) -> None:
    therapist = await people.joined("therapist")
    psychiatrist = await people.joined("psychiatrist")
    mark = len(therapist.events)
    ack = await psychiatrist.call(reserved, {})
    assert ack["error"]["code"] == "unknown_event"
    # Still seated and connected, as far as everyone can tell.
    assert (await psychiatrist.call("media-state", {"audio": False, "video": False}))["ok"]
    update = await therapist.wait_event(
        "peer-updated", lambda d: d["participant"]["audio"] is False, after=mark
    )
    assert update["participant"]["connected"] is True
    assert [e for e, _ in therapist.events[mark:] if e == "peer-left"] == []
    assert not psychiatrist.disconnected


@pytest.mark.room_settings(socket_joins_per_second=0.001, socket_join_burst=3)
async def test_a_screen_share_flood_is_refused_and_renegotiates_nothing_more(
    people: People, api: Api, platform: PlatformKey
) -> None:
    """Starting and stopping a share renegotiates everyone's media: it draws on the costly
    bucket with `join`, so a page toggling it in a loop is held to the budget."""
    therapist = await people.joined("therapist")  # join: one of the three
    psychiatrist = await people.joined("psychiatrist")
    results = []
    for _ in range(5):
        results.append(await therapist.call("share-start"))
        results.append(await therapist.call("share-stop"))
        results.append(await therapist.call("share-permission", {"client_may_share": True}))
    assert outcomes(results) == ["ok", "ok"] + ["rate_limited"] * 13
    events = await audit_actions(api, platform, people.consult["id"])
    shares = [e["action"] for e in events if e["action"].startswith("share.")]
    assert shares == ["share.started", "share.stopped"]
    await psychiatrist.wait_event("share", lambda d: d["participant_id"] is None)
    assert [s["participant_id"] for s in psychiatrist.received("share")] == [
        people.id("therapist"),
        None,
    ]
    # Other events still go through.
    assert (await therapist.call("media-state", {"audio": True, "video": True}))["ok"]
