"""Screen share over the real Socket.IO server and SFU: a clinician shares (every other aiortc
peer decodes the screen beside the cameras, the server decodes nothing), one share at a time, a
host stops another's, the client shares once a host allows it and stops when it is taken back;
roles that never share and hostile payloads are refused with codes and change nothing; a late
joiner sees who shares; leaving ends a share; the audit trail records it all by id."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.apiclient import Api
from tests.conftest import PlatformKey
from tests.roomclient import RoomClient
from tests.rooms.conftest import People
from tests.rooms.mediapeople import MediaParticipant, enter, room_sfu, sees_and_hears
from tests.rooms.test_lobby_and_roles import audit_actions
from tests.waiting import wait_for

pytestmark = [
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
    # Each share event draws on the socket's costly bucket (1 a second, bursts of 5): these
    # tests send more than that on purpose; the budget is test_budgets.py's.
    pytest.mark.room_settings(socket_joins_per_second=100, socket_join_burst=100),
]

# Three encoders, a screen and the decoders of all of it share this process with the server.
PICTURE = {"size": (320, 240), "fps": 15}
SCREEN = (640, 360)


def code(ack: dict[str, Any]) -> str:
    assert ack["ok"] is False, ack
    found: str = ack["error"]["code"]
    return found


def share_of(room: RoomClient, who: str | None, *, client_may_share: bool = False) -> Any:
    """The `share` event saying `who` shares (None: nobody)."""
    return room.wait_event(
        "share",
        lambda d: d == {"participant_id": who, "client_may_share": client_may_share},
    )


def offered_screens(participant: MediaParticipant) -> set[str]:
    """Whose screens the last offer this participant received maps (their own included)."""
    tracks = participant.room.received("signal")[-1]["tracks"]
    return {t["participant_id"] for t in tracks if t["source"] == "screen"}


async def share_actions(api: Api, platform: PlatformKey, consult_id: str) -> list[Any]:
    events = await audit_actions(api, platform, consult_id)
    return [
        (e["action"], e["actor_id"], e["details"])
        for e in events
        if e["action"].startswith("share.")
    ]


@pytest.mark.timeout(150)
async def test_a_clinician_shares_a_host_stops_it_and_the_client_shares_when_allowed(
    people: People,
    media_people: dict[str, MediaParticipant],
    client: Any,
    api: Api,
    platform: PlatformKey,
) -> None:
    therapist = await enter(people, media_people, "therapist", "silence", **PICTURE)
    psychiatrist = await enter(people, media_people, "psychiatrist", "silence", **PICTURE)
    patient = await enter(people, media_people, "client", "silence", **PICTURE)
    await people.consent()
    assert (await therapist.room.call("admit", {"participant_id": patient.participant_id}))["ok"]
    everyone = [therapist, psychiatrist, patient]
    await wait_for(
        lambda: all(sees_and_hears(p, [o for o in everyone if o is not p], 10) for p in everyone),
        60,
        "first frames",
    )
    t_id, p_id, c_id = (p.participant_id for p in everyone)

    # The therapist's page captures a screen, then asks to share it.
    therapist.peer.share_screen(SCREEN)
    assert await therapist.room.call("share-start") == {"ok": True}
    for p in everyone:
        await share_of(p.room, t_id)
    # One at a time; the client only when a host allows it.
    assert code(await psychiatrist.room.call("share-start")) == "share_in_progress"
    assert code(await patient.room.call("share-start")) == "share_not_allowed"
    assert await therapist.room.call("share-start") == {"ok": True}  # already theirs

    def screen_seen(owner: MediaParticipant, frames: int) -> bool:
        return all(
            p.peer.decoded(owner.participant_id, "screen") >= frames
            for p in everyone
            if p is not owner
        )

    await wait_for(lambda: screen_seen(therapist, 15), 60, "the others to decode the screen")
    for p in (psychiatrist, patient):
        assert p.peer.screen_sizes[t_id] == {SCREEN}
        assert offered_screens(p) == {t_id}
    assert offered_screens(therapist) == {t_id}  # its own line to send it on
    assert therapist.peer.decoded(t_id, "screen") == 0
    sfu = room_sfu(client, people.consult["id"])
    assert sfu.stats().decoded_frames == 0
    assert sfu.stats().forwarded_frames[(t_id, "screen")] > 0

    # The client may not stop a clinician's share; the psychiatrist (a host) may.
    assert code(await patient.room.call("share-stop", {"participant_id": t_id})) == "forbidden_role"
    stopped = await psychiatrist.room.call("share-stop", {"participant_id": t_id})
    assert stopped == {"ok": True, "stopped": True}
    for p in everyone:
        await share_of(p.room, None)
    await wait_for(
        lambda: all(offered_screens(p) == set() for p in everyone), 20, "offers without it"
    )
    again = await psychiatrist.room.call("share-stop", {"participant_id": t_id})
    assert again == {"ok": True, "stopped": False}  # a race with its end: nothing to do
    therapist.peer.stop_screen()

    # A host lets the client share; the client shares; taking it back stops the share.
    assert code(await patient.room.call("share-permission", {"client_may_share": True})) == (
        "forbidden_role"
    )
    assert await therapist.room.call("share-permission", {"client_may_share": True}) == {"ok": True}
    await share_of(patient.room, None, client_may_share=True)
    patient.peer.share_screen(SCREEN)
    assert await patient.room.call("share-start") == {"ok": True}
    await share_of(therapist.room, c_id, client_may_share=True)
    await wait_for(lambda: screen_seen(patient, 10), 60, "the clinicians to decode the client's")
    assert await psychiatrist.room.call("share-permission", {"client_may_share": False}) == {
        "ok": True
    }
    for p in everyone:
        await share_of(p.room, None)
    assert not sfu.sharing(patient.participant_id)

    # The trail, by id: who started, who stopped it and why, who changed the permission.
    assert await share_actions(api, platform, people.consult["id"]) == [
        ("share.started", t_id, {"participant_id": t_id}),
        ("share.stopped", p_id, {"participant_id": t_id, "reason": "host"}),
        ("share.permission_changed", t_id, {"client_may_share": True}),
        ("share.started", c_id, {"participant_id": c_id}),
        ("share.permission_changed", p_id, {"client_may_share": False}),
        ("share.stopped", p_id, {"participant_id": c_id, "reason": "permission"}),
    ]


async def test_roles_that_never_share_and_hostile_payloads_are_refused_and_change_nothing(
    seated_people: People, client: Any, api: Api, platform: PlatformKey
) -> None:
    people = seated_people
    therapist = await people.joined("therapist")
    psychiatrist = await people.joined("psychiatrist")
    await people.consent()
    seats = {role: await people.joined(role) for role in ("client", "guardian", "interpreter")}
    # In the lobby: not admitted, whatever the role.
    for seat in seats.values():
        assert code(await seat.call("share-start")) == "not_admitted"
        assert code(await seat.call("share-stop")) == "not_admitted"
    for role, seat in seats.items():
        assert (await therapist.call("admit", {"participant_id": people.id(role)}))["ok"]
        await seat.wait_event("admitted")
    # The guardian and the interpreter never share, nor stop others' or change who may.
    for role in ("guardian", "interpreter"):
        seat = seats[role]
        assert code(await seat.call("share-start")) == "forbidden_role"
        assert code(await seat.call("share-permission", {"client_may_share": True})) == (
            "forbidden_role"
        )
    assert code(await seats["client"].call("share-start")) == "share_not_allowed"
    hostile: list[tuple[str, Any]] = [
        ("share-start", {"participant_id": people.id("therapist")}),
        ("share-start", [1]),
        ("share-start", "now"),
        ("share-stop", {"participant_id": 7}),
        ("share-stop", {"participant_id": ""}),
        ("share-stop", {"participant_id": "p" * 65}),
        ("share-stop", {"participant_id": None, "also": 1}),
        ("share-stop", {"participant_id": ["p_x"]}),
        ("share-permission", {}),
        ("share-permission", {"client_may_share": "yes"}),
        ("share-permission", {"client_may_share": 1}),
        ("share-permission", {"client_may_share": True, "participant_id": "p_x"}),
        ("share-permission", None),
    ]
    for event, payload in hostile:
        ack = await therapist.call(event, payload, raw=True)
        assert code(ack) == "validation_failed", (event, payload, ack)
    # Nothing changed: nobody was told of a share, no offer asked for a screen, no audit row.
    everyone = [therapist, psychiatrist, *seats.values()]
    for room in everyone:
        assert room.received("share") == []
        for offer in room.received("signal"):
            assert all(t["source"] != "screen" for t in offer["tracks"])
    assert await share_actions(api, platform, people.consult["id"]) == []

    # A host stopping a share when nobody shares, and a host naming someone unknown: nothing.
    assert await psychiatrist.call("share-stop", {"participant_id": "p_nobody"}) == {
        "ok": True,
        "stopped": False,
    }
    # The therapist shares (nobody's page answers here: the offers asking for it wait behind
    # the first ones); a participant joining later learns it from the state, and the share ends
    # when the therapist leaves.
    assert await therapist.call("share-start") == {"ok": True}
    sfu = room_sfu(client, people.consult["id"])
    assert sfu.sharing(people.id("therapist"))
    assert (await psychiatrist.call("leave"))["ok"]
    back = await people.connect("psychiatrist")
    state = await back.join()
    assert state["share"] == {"participant_id": people.id("therapist"), "client_may_share": False}
    assert (await therapist.call("leave"))["ok"]
    await back.wait_event("share", lambda d: d["participant_id"] is None)
    assert not sfu.sharing(people.id("therapist"))
    actions = await share_actions(api, platform, people.consult["id"])
    t_id = people.id("therapist")
    assert actions == [
        ("share.started", t_id, {"participant_id": t_id}),
        ("share.stopped", t_id, {"participant_id": t_id, "reason": "left"}),
    ]
    # Ids and codes only: no name of anyone in the trail's share rows.
    names = [p["name"] for p in people.consult["participants"]]
    written = json.dumps(actions)
    assert not any(name in written for name in names)


async def test_a_page_that_lost_its_capture_ends_the_share_at_the_next_offer(
    people: People,
    media_people: dict[str, MediaParticipant],
    client: Any,
    api: Api,
    platform: PlatformKey,
) -> None:
    """What a reloaded page (or a closed shared window) does: its answer leaves the screen's
    line inactive; the room ends the share for everyone (audited `ended`)."""
    therapist = await enter(people, media_people, "therapist", "silence", **PICTURE)
    psychiatrist = await enter(people, media_people, "psychiatrist", "silence", **PICTURE)
    therapist.peer.share_screen(SCREEN)
    assert await therapist.room.call("share-start") == {"ok": True}
    t_id = therapist.participant_id
    await wait_for(
        lambda: psychiatrist.peer.decoded(t_id, "screen") >= 10, 60, "the psychiatrist to see it"
    )
    therapist.peer.stop_screen()  # the capture ends; the server is not told
    await people.consent()
    patient = await enter(people, media_people, "client", "silence", **PICTURE)
    assert (await therapist.room.call("admit", {"participant_id": patient.participant_id}))["ok"]
    for p in (therapist, psychiatrist, patient):
        await share_of(p.room, None)
    assert not room_sfu(client, people.consult["id"]).sharing(t_id)
    await wait_for(
        lambda: all(offered_screens(p) == set() for p in (therapist, psychiatrist, patient)),
        20,
        "offers without the screen",
    )
    assert await share_actions(api, platform, people.consult["id"]) == [
        ("share.started", t_id, {"participant_id": t_id}),
        ("share.stopped", t_id, {"participant_id": t_id, "reason": "ended"}),
    ]
