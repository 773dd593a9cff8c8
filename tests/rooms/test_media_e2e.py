"""Three people join from their tokens over the real Socket.IO server and see and hear each
other through the SFU: real aiortc peers sending synthetic 640x480 video and audio, decoding
what the server forwards (which it never decodes)."""

from __future__ import annotations

from typing import Any

import pytest

from server.ids import ParticipantId
from tests.media.peers import counts
from tests.rooms.conftest import People
from tests.rooms.mediapeople import MediaParticipant, both_flowing, enter, room_sfu, sees_and_hears
from tests.waiting import wait_for

# Media is the expensive part; the database backend is covered by the other room tests.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


async def test_three_people_see_and_hear_each_other_through_the_server(
    people: People, media_people: dict[str, MediaParticipant], client: Any
) -> None:
    # Only the psychiatrist makes a sound: the active speaker must follow the audio levels.
    therapist = await enter(people, media_people, "therapist", "silence")
    psychiatrist = await enter(people, media_people, "psychiatrist", "tone")
    patient = await enter(people, media_people, "client", "silence")
    await therapist.room.wait_event("lobby", lambda d: len(d["waiting"]) == 1)
    # In the lobby the client gets no offer, so no media at all.
    assert patient.room.received("signal") == []
    await people.consent()
    assert (await therapist.room.call("admit", {"participant_id": patient.participant_id}))["ok"]

    everyone = [therapist, psychiatrist, patient]

    def all_flowing() -> bool:
        return all(sees_and_hears(p, [o for o in everyone if o is not p], 20) for p in everyone)

    peers = {p.role: p.peer for p in everyone}
    await wait_for(all_flowing, 45, f"every participant to decode both others {counts(peers)}")
    for p in everyone:
        for other in everyone:
            if other is not p:
                assert p.peer.sizes[other.participant_id] == {(640, 480)}, counts(peers)
    for p in (therapist, patient):
        await p.room.wait_event(
            "active-speaker", lambda d: d["participant_id"] == psychiatrist.participant_id
        )
    sfu = room_sfu(client, people.consult["id"])
    stats = sfu.stats()
    assert stats.decoded_frames == 0  # forwarded as encoded frames, never decoded
    for p in everyone:
        assert stats.forwarded_frames[(p.participant_id, "video")] > 0
        assert stats.forwarded_frames[(p.participant_id, "audio")] > 0

    # Ending closes every server peer connection (aiortc stops their tasks when it closes).
    server_pcs = [session.peer.pc for session in sfu._sessions.values()]
    assert len(server_pcs) == 3
    assert all(pc.connectionState == "connected" for pc in server_pcs)
    assert (await psychiatrist.room.call("end"))["ok"]
    for p in everyone:
        await p.room.wait_event("ended")
    assert sfu.participants == ()
    assert all(pc.connectionState == "closed" for pc in server_pcs)


async def test_leave_and_rejoin_renegotiates_and_frames_resume(
    people: People, media_people: dict[str, MediaParticipant]
) -> None:
    therapist = await enter(people, media_people, "therapist")
    psychiatrist = await enter(people, media_people, "psychiatrist")
    await both_flowing(therapist, psychiatrist)
    offers_before = therapist.peer.offers
    assert (await psychiatrist.room.call("leave"))["ok"]
    await therapist.room.wait_event("peer-left")
    await wait_for(lambda: therapist.peer.offers > offers_before, 15, "a renegotiation on leave")
    await media_people.pop("psychiatrist").close()

    back = await enter(people, media_people, "psychiatrist")
    before = therapist.peer.decoded(back.participant_id, "video")
    await wait_for(
        lambda: (
            therapist.peer.decoded(back.participant_id, "video") >= before + 10
            and sees_and_hears(back, [therapist], 10)
        ),
        45,
        "frames from the rejoined participant",
    )


async def test_a_failed_server_connection_is_replaced_and_media_resumes(
    people: People, media_people: dict[str, MediaParticipant], client: Any
) -> None:
    therapist = await enter(people, media_people, "therapist")
    psychiatrist = await enter(people, media_people, "psychiatrist")
    await both_flowing(therapist, psychiatrist)
    sfu = room_sfu(client, people.consult["id"])
    failing = sfu._sessions[ParticipantId(psychiatrist.participant_id)].peer.pc
    # What ICE consent expiry does (aioice closes its connection, DTLS closes with it and
    # aiortc closes the peer connection), without the 30 s of unanswered checks it takes.
    ice = failing.getTransceivers()[0].receiver.transport.transport
    await ice._connection.close()
    await wait_for(lambda: failing.connectionState == "closed", 15, "the failure")

    offer = await psychiatrist.room.wait_event("signal", lambda s: s["pc"] == 1)
    assert offer["type"] == "offer"
    before = therapist.peer.decoded(psychiatrist.participant_id, "video")
    await wait_for(
        lambda: (
            therapist.peer.decoded(psychiatrist.participant_id, "video") >= before + 10
            and sees_and_hears(psychiatrist, [therapist], 10)
        ),
        45,
        "media over the new connection",
    )
    assert sfu._sessions[ParticipantId(psychiatrist.participant_id)].peer.pc is not failing
    assert sfu.generation(ParticipantId(psychiatrist.participant_id)) == 1
