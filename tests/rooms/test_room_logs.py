"""A consult room's logs: ids and codes, never names, tokens or what people type."""

from __future__ import annotations

import io

from tests.rooms.conftest import People
from tests.rooms.notesclient import NotesClient, insert

TYPED = "Lithium-Periwinkle-4412"


async def test_a_room_with_notes_leaves_no_name_token_or_note_in_the_log(
    people: People, log_stream: io.StringIO
) -> None:
    therapist, psychiatrist, patient = await people.all_in_room()
    notes = NotesClient(psychiatrist)
    assert (await notes.edit("plan", insert("summary", 0, TYPED)))["ok"]
    assert (await notes.edit("clinicians", insert("notes", 0, TYPED)))["ok"]
    refused = await patient.call("notes-update", {"doc": "plan", "update": TYPED.encode()})
    assert refused["error"]["code"] == "forbidden_role"
    bad = await therapist.call("media-state", {"audio": TYPED, "video": True})
    assert bad["error"]["code"] == "validation_failed"
    assert (await psychiatrist.call("end"))["ok"]
    await patient.wait_event("ended")

    text = log_stream.getvalue()
    assert '"event": "socket.connected"' in text
    assert people.consult["id"] in text
    assert TYPED not in text
    for p in people.consult["participants"]:
        assert p["name"] not in text
        assert p["join"]["token"] not in text
    assert "eyJ" not in text
