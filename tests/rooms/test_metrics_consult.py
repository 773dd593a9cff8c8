"""`/metrics` moves during a real consult: joins (and a refused one, by its code), rooms and
seats by state, notes updates with their apply and fan-out histograms, media forwarded between
real aiortc peers, keyframe requests, peer connections by state; and after it, not one label
holds an id, a name or a token of the consult."""

from __future__ import annotations

from typing import Any

import pytest

from tests.apiclient import Api
from tests.metricsread import Scrape, label_problems
from tests.rooms.conftest import People
from tests.rooms.mediapeople import MediaParticipant, enter, sees_and_hears
from tests.rooms.notesclient import NotesClient, insert
from tests.test_metrics import scrape
from tests.waiting import wait_for

# Media is the expensive part: SQLite only, as the other media room tests.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

MOVING_COUNTERS = (
    ("triad_media_forwarded_packets_total", {"kind": "audio"}),
    ("triad_media_forwarded_packets_total", {"kind": "video"}),
    ("triad_media_forwarded_frames_total", {"kind": "audio"}),
    ("triad_media_forwarded_frames_total", {"kind": "video"}),
    ("triad_media_keyframe_requests_total", {"stage": "asked"}),
    ("triad_media_keyframe_requests_total", {"stage": "sent"}),
)


@pytest.mark.room_settings(socket_join_burst=1, socket_joins_per_second=0.01)
async def test_metrics_move_during_a_consult_and_no_label_names_it(
    people: People, media_people: dict[str, MediaParticipant], api: Api
) -> None:
    before = await scrape(api)
    therapist = await enter(people, media_people, "therapist", "silence", size=(160, 120))
    psychiatrist = await enter(people, media_people, "psychiatrist", "tone", size=(160, 120))
    patient = await enter(people, media_people, "client", "silence", size=(160, 120))
    await therapist.room.wait_event("lobby", lambda d: len(d["waiting"]) == 1)

    # Waiting: no host admitted anyone yet, the client sits in the lobby.
    waiting = await scrape(api)
    assert waiting.value("triad_participants", state="lobby") == 1
    assert waiting.value("triad_participants", state="room") == 2
    # A second join on the socket is past its join budget (one): refused by its code.
    refused = await therapist.room.call("join")
    assert refused["error"]["code"] == "rate_limited"

    await people.consent()
    assert (await therapist.room.call("admit", {"participant_id": patient.participant_id}))["ok"]
    everyone = [therapist, psychiatrist, patient]
    await wait_for(
        lambda: all(sees_and_hears(p, [o for o in everyone if o is not p], 10) for p in everyone),
        45,
        "every participant decoding both others",
    )
    notes = NotesClient(therapist.room)
    assert (await notes.sync("plan"))["ok"]
    assert (await notes.edit("plan", insert("summary", 0, "Sleep hygiene first")))["ok"]
    refused_update = await notes.edit("nonsense", insert("summary", 0, "x"))
    assert refused_update["error"]["code"] == "notes_document_unknown"

    async def moved() -> bool:
        now = await scrape(api)
        return all(now.value(n, **ls) > before.value(n, **ls) for n, ls in MOVING_COUNTERS)

    await wait_for(moved, 30, "the media counters moving")
    during = await scrape(api)
    assert (
        during.value("triad_rooms", state="live") == before.value("triad_rooms", state="live") + 1
    )
    assert during.value("triad_participants", state="room") == 3
    assert during.value("triad_participants", state="lobby") == 0
    assert during.value("triad_peer_connections", state="connected") >= (
        before.value("triad_peer_connections", state="connected") + 3
    )
    assert grew(before, during, "triad_socket_joins_total", result="joined") == 3
    assert grew(before, during, "triad_socket_joins_total", result="rate_limited") == 1
    assert grew(before, during, "triad_notes_updates_total", result="applied") == 1
    assert grew(before, during, "triad_notes_updates_total", result="notes_document_unknown") == 1
    assert grew(before, during, "triad_notes_apply_seconds_count") == 1
    assert grew(before, during, "triad_notes_fanout_seconds_count") == 1
    consent_route = "/api/v1/consults/{consult_id}/session/consent"
    assert grew(before, during, "triad_http_requests_total", route=consent_route) >= 2

    assert (await psychiatrist.room.call("end"))["ok"]
    for p in everyone:
        await p.room.wait_event("ended")
    after = await scrape(api)
    assert grew(before, after, "triad_rooms", state="live") == 0
    assert after.value("triad_peer_connections", state="connected") == (
        before.value("triad_peer_connections", state="connected")
    )
    assert label_problems(after) == []
    assert not [secret for secret in consult_secrets(people.consult) if secret in after.text]


def grew(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    return after.total(name, **labels) - before.total(name, **labels)


def consult_secrets(consult: dict[str, Any]) -> list[str]:
    """What identifies the consult or its people: ids, names, tokens, links."""
    found = [consult["id"]]
    for person in consult["participants"]:
        found += [person["id"], person["name"], person["join"]["token"], person["join"]["join_url"]]
    return found


async def test_a_room_without_a_host_waits_and_a_dropped_seat_is_away(
    people: People, api: Api
) -> None:
    patient = await people.joined("client")  # no host yet: the room waits, the client too
    waiting = await scrape(api)
    assert waiting.value("triad_rooms", state="waiting") == 1
    assert waiting.value("triad_rooms", state="live") == 0
    assert waiting.value("triad_participants", state="lobby") == 1
    await patient.close()  # the seat is held for the reconnect grace

    async def away() -> bool:
        return (await scrape(api)).value("triad_participants", state="away") == 1

    await wait_for(away, 10, "the dropped seat counted away")
    assert (await scrape(api)).value("triad_participants", state="lobby") == 0
