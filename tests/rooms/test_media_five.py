"""A room of five over the real Socket.IO server and SFU: a minor's consult with the client,
the therapist, the psychiatrist, the guardian and an interpreter, each a real aiortc peer that
decodes what the server forwards. The hosts admit each waiting person by role; every peer
decodes the four others' video and hears their audio; while the clinicians write in their own
document, the client's, the guardian's and the interpreter's sockets never receive a byte of it;
at the end the plan and its FHIR export name all five."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pycrdt
import pytest

from tests.apiclient import Api
from tests.conftest import PlatformKey
from tests.media.peers import counts
from tests.notes.yencode import awareness
from tests.rooms.conftest import People
from tests.rooms.mediapeople import MediaParticipant, enter, room_sfu, sees_and_hears
from tests.rooms.notesclient import NotesClient, append_text, insert
from tests.waiting import wait_for

# Media is the expensive part; the database backend is covered by the other room tests.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

HOSTS = ("therapist", "psychiatrist")
WAITING = ("client", "guardian", "interpreter")
EVERYONE = HOSTS + WAITING
# Five encoders and twenty decoders share this process with the server: a smaller, slower
# picture than the three-party test's, the same path through the SFU.
PICTURE = {"size": (320, 240), "fps": 15}
PRIVATE = "Clinicians-only 5e1d: ask about the school report"


def binary_and_text(value: Any) -> Iterator[bytes]:
    """Every bytes or str value in an event payload, however nested, as bytes."""
    if isinstance(value, bytes | bytearray):
        yield bytes(value)
    elif isinstance(value, str):
        yield value.encode()
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from binary_and_text(key)
            yield from binary_and_text(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from binary_and_text(item)


@pytest.mark.timeout(150)
async def test_five_people_see_and_hear_each_other_and_the_clinicians_notes_stay_theirs(
    seated_people: People,
    seated_media_people: dict[str, MediaParticipant],
    client: Any,
    api: Api,
    platform: PlatformKey,
) -> None:
    people, joined = seated_people, seated_media_people
    # Only the interpreter makes a sound: the active speaker must follow the audio levels.
    for role in EVERYONE:
        audio = "tone" if role == "interpreter" else "silence"
        await enter(people, joined, role, audio, **PICTURE)
    therapist, psychiatrist = joined["therapist"], joined["psychiatrist"]

    # The hosts see each waiting person with their role; nobody waiting gets media.
    lobby = await therapist.room.wait_event("lobby", lambda d: len(d["waiting"]) == 3)
    assert {p["participant_id"]: p["role"] for p in lobby["waiting"]} == {
        people.id(role): role for role in WAITING
    }
    for role in WAITING:
        assert joined[role].room.received("signal") == []
    # The minor waits for the guardian's consent; the hosts admit each one, either host.
    refused = await therapist.room.call("admit", {"participant_id": people.id("client")})
    assert refused["error"]["code"] == "consent_required"
    await people.consent()
    for host, role in (
        (psychiatrist, "interpreter"),
        (therapist, "guardian"),
        (psychiatrist, "client"),
    ):
        assert await host.room.call("admit", {"participant_id": people.id(role)}) == {"ok": True}
        await joined[role].room.wait_event("admitted")
    await therapist.room.wait_event("lobby", lambda d: d["waiting"] == [])

    everyone = [joined[role] for role in EVERYONE]

    def all_flowing() -> bool:
        return all(sees_and_hears(p, [o for o in everyone if o is not p], 20) for p in everyone)

    peers = {p.role: p.peer for p in everyone}
    await wait_for(all_flowing, 90, f"every participant to decode the four others {counts(peers)}")
    for p in everyone:
        others = {o.participant_id for o in everyone if o is not p}
        assert {who for who, kinds in p.peer.frames.items() if kinds["video"]} == others
        for other in others:
            assert p.peer.sizes[other] == {PICTURE["size"]}, counts(peers)
        assert p.peer.decoded(p.participant_id, "video") == 0  # never their own back
        # The last offer maps eight remote tracks and the participant's own two.
        tracks = p.room.received("signal")[-1]["tracks"]
        assert sorted((t["participant_id"], t["kind"]) for t in tracks) == sorted(
            (o.participant_id, kind) for o in everyone for kind in ("audio", "video")
        )
    interpreter_id = people.id("interpreter")
    for p in everyone:
        if p.role != "interpreter":
            await p.room.wait_event(
                "active-speaker", lambda d: d["participant_id"] == interpreter_id
            )
    sfu = room_sfu(client, people.consult["id"])
    stats = sfu.stats()
    assert stats.peers == 5
    assert stats.decoded_frames == 0  # forwarded as encoded frames, never decoded
    for p in everyone:
        for kind in ("audio", "video"):
            assert stats.forwarded_frames[(p.participant_id, kind)] > 0

    # The clinicians write in their own document (and move their cursors in it) while the
    # guardian writes in the client's and media flows.
    notes = {role: NotesClient(joined[role].room) for role in EVERYONE}
    t, p = notes["therapist"], notes["psychiatrist"]
    for person in (t, p):
        assert (await person.sync("clinicians"))["ok"]
    assert (await t.edit("clinicians", insert("notes", 0, PRIVATE)))["ok"]

    def question(doc: pycrdt.Doc[Any]) -> None:
        doc.get("questions", type=pycrdt.Array).append("Can school know?")

    assert (await notes["guardian"].edit("client", question))["ok"]

    def psychiatrist_reads(text: str) -> bool:
        p.apply_received()
        return p.text("clinicians", "notes") == text

    await wait_for(lambda: psychiatrist_reads(PRIVATE), 15, "the therapist's notes")
    assert (await p.edit("clinicians", append_text("notes", " Agreed.")))["ok"]
    cursor = awareness([(7001, 1, {"user": {"name": "T"}, "section": "notes"})])
    assert (await t.room.call("notes-awareness", {"doc": "clinicians", "update": cursor}))["ok"]
    await t.room.wait_event("notes-update", lambda d: d["doc"] == "clinicians")
    await p.room.wait_event("notes-awareness", lambda d: d["doc"] == "clinicians")
    # What the clinicians' document went out as: every update and awareness relay of it.
    relayed = [
        data["update"]
        for room in (t.room, p.room)
        for event, data in room.events
        if event in ("notes-update", "notes-awareness") and data["doc"] == "clinicians"
    ]
    assert len(relayed) >= 3, relayed
    await notes["client"].room.wait_event(
        "notes-update", lambda d: d["doc"] == "client" and b"Can school know?" in d["update"]
    )
    for role in WAITING:
        room = notes[role].room
        # Each relay went out before its sender's acknowledgement, and this answer comes after
        # anything sent on this socket before it: every leak would be recorded by now.
        denied = await room.call("notes-sync", {"doc": "clinicians", "state_vector": b"\x00"})
        assert denied["error"]["code"] == "forbidden_role"
        assert room.events, role
        for event, data in room.events:
            assert not (isinstance(data, dict) and data.get("doc") == "clinicians"), (role, event)
            for chunk in binary_and_text(data):
                assert PRIVATE.encode() not in chunk, (role, event)
                assert not any(update in chunk for update in relayed), (role, event)
    interpreter_events = {event for event, _ in notes["interpreter"].room.events}
    assert not interpreter_events & {"notes-update", "notes-awareness"}

    # The end: every peer connection closes, and the plan and its FHIR export name all five.
    server_pcs = [session.peer.pc for session in sfu._sessions.values()]
    assert len(server_pcs) == 5
    assert all(pc.connectionState == "connected" for pc in server_pcs)
    assert (await therapist.room.call("end"))["ok"]
    for person in everyone:
        await person.room.wait_event("ended")
    assert sfu.participants == ()
    assert all(pc.connectionState == "closed" for pc in server_pcs)

    base = f"/api/v1/consults/{people.consult['id']}"
    plan = await api.call("GET", base + "/plan", bearer=platform.secret)
    assert plan.status == 200, plan.body
    attended = {a["role"]: a["attended"] for a in plan.body["attendance"]}
    assert attended == dict.fromkeys(EVERYONE, True)
    assert PRIVATE not in str(plan.body)
    fhir = await api.call("GET", base + "/plan/fhir", bearer=platform.secret)
    assert fhir.status == 200, fhir.body
    resources = {e["fullUrl"]: e["resource"] for e in fhir.body["entry"]}
    (team,) = [r for r in resources.values() if r["resourceType"] == "CareTeam"]
    members = {
        member["role"][0]["text"]: resources[member["member"]["reference"]]
        for member in team["participant"]
    }
    assert set(members) == {"Therapist", "Psychiatrist", "Guardian", "Interpreter"}
    assert members["Guardian"]["resourceType"] == "RelatedPerson"
    assert members["Interpreter"]["resourceType"] == "Practitioner"
    assert PRIVATE not in str(fhir.body)
