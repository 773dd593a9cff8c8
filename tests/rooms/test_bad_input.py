"""Bad input on the consult namespace: each gets a coded error; the room and the others go on."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from server.app import SETTINGS
from tests.roomclient import RoomClient
from tests.rooms.conftest import People

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def code(ack: dict[str, Any]) -> str:
    assert ack["ok"] is False, ack
    found: str = ack["error"]["code"]
    return found


async def still_working(sender: RoomClient, watcher: RoomClient) -> None:
    """The room carries on: an ordinary event from `sender` reaches `watcher`."""
    mark = len(watcher.events)
    assert (await sender.call("media-state", {"audio": False, "video": True}))["ok"]
    await watcher.wait_event(
        "peer-updated", lambda d: d["participant"]["audio"] is False, after=mark
    )


async def test_events_before_join_and_unknown_events(people: People) -> None:
    therapist = await people.connect("therapist")
    assert code(await therapist.call("media-state", {"audio": True, "video": True})) == "not_joined"
    assert code(await therapist.call("admit", {"participant_id": "p_x"})) == "not_joined"
    await therapist.join()
    assert code(await therapist.call("no-such-event", {})) == "unknown_event"
    assert code(await therapist.call("join-room", {})) == "unknown_event"


@pytest.mark.parametrize(
    ("event", "payload", "location"),
    [
        ("media-state", {"audio": "yes", "video": True}, "/audio"),
        ("media-state", {"audio": 1, "video": True}, "/audio"),
        ("media-state", {"audio": True}, "/video"),
        ("media-state", {"audio": True, "video": True, "extra": 1}, "/extra"),
        ("admit", {"participant_id": 42}, "/participant_id"),
        ("admit", {"participant_id": "p" * 500}, "/participant_id"),
        ("signal", {"type": "answer", "sdp": 7, "pc": 0}, "/sdp"),
        ("signal", {"type": "rollback", "sdp": "v=0", "pc": 0}, "/type"),
        ("notes-update", {"doc": "plan", "update": "not bytes"}, "/update"),
        ("media-state", "a string", ""),
        ("media-state", [1, 2], ""),
    ],
)
async def test_payloads_of_the_wrong_shape_are_refused(
    people: People, event: str, payload: Any, location: str
) -> None:
    therapist = await people.joined("therapist")
    psychiatrist = await people.joined("psychiatrist")
    ack = await therapist.call(event, payload, raw=True)
    assert code(ack) == "validation_failed"
    assert location in [e["location"] for e in ack["error"]["errors"]]
    await still_working(therapist, psychiatrist)


async def test_bad_sdp_and_answers_without_an_offer(people: People, client: Any) -> None:
    therapist = await people.joined("therapist")
    psychiatrist = await people.joined("psychiatrist")
    offer = await therapist.wait_event("signal")
    pc = offer["pc"]
    max_sdp = client.app[SETTINGS].max_sdp_bytes

    cases = [
        ({"type": "answer", "sdp": "this is not sdp", "pc": pc}, "sdp_invalid"),
        (
            {"type": "answer", "sdp": "v=0\r\n" + "a=x\r\n" * (max_sdp // 5), "pc": pc},
            "sdp_invalid",
        ),
        ({"type": "offer", "sdp": offer["sdp"], "pc": pc}, "sdp_invalid"),
        ({"type": "answer", "sdp": "v=0\r\n", "pc": pc + 7}, "no_pending_offer"),
    ]
    for payload, expected in cases:
        assert code(await therapist.call("signal", payload)) == expected, payload["sdp"][:20]
    bad_candidate = {"candidate": {"candidate": "candidate:garbage"}, "pc": pc}
    assert code(await therapist.call("candidate", bad_candidate)) == "candidate_invalid"
    await still_working(therapist, psychiatrist)


async def test_a_client_in_the_lobby_cannot_signal(people: People) -> None:
    await people.joined("therapist")
    patient = await people.joined("client")
    ack = await patient.call("signal", {"type": "answer", "sdp": "v=0\r\n", "pc": 0})
    assert code(ack) == "not_admitted"


@pytest.mark.room_settings(socket_events_per_second=5, socket_event_burst=10)
async def test_a_flood_from_one_socket_is_rate_limited_and_the_room_goes_on(
    people: People,
) -> None:
    therapist = await people.joined("therapist")
    psychiatrist = await people.joined("psychiatrist")
    acks = await asyncio.gather(
        *(therapist.call("media-state", {"audio": True, "video": True}) for _ in range(60))
    )
    outcomes = {"ok" if a["ok"] else a["error"]["code"] for a in acks}
    assert outcomes <= {"ok", "rate_limited"}
    assert sum(1 for a in acks if not a["ok"]) >= 1
    # The others are unaffected, and the flooder itself recovers once it slows down.
    await still_working(psychiatrist, therapist)


@pytest.mark.room_settings(socket_max_message_bytes=8192)
async def test_an_oversized_message_closes_only_that_socket(people: People) -> None:
    therapist = await people.joined("therapist")
    psychiatrist = await people.joined("psychiatrist")
    await therapist.sio.emit(
        "notes-update", {"doc": "plan", "update": b"x" * 20_000}, namespace="/consult"
    )
    await therapist.wait_disconnected()
    assert not psychiatrist.disconnected
    left = await people.joined("therapist")
    await still_working(left, psychiatrist)
