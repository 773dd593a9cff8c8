"""Who is told of a pending same-room declaration, so a page can offer to confirm or attest it:
the person declared (the session's `declared_with_you`, the room's `presence_pending` and
`presence-pending`) and, when the client is declared, the clinician who is not the declarer.
The declarer and anyone else are never told; the prompt goes away once it counts."""

from __future__ import annotations

from typing import Any

from tests.apiclient import Api
from tests.rooms.conftest import People


async def test_the_person_declared_and_the_other_clinician_are_asked(
    people: People, api: Api
) -> None:
    base = f"/api/v1/consults/{people.consult['id']}/session"
    psychiatrist = await people.joined("psychiatrist")
    therapist = await people.joined("therapist")
    client = await people.joined("client")  # waits in the lobby (no consent yet)
    declared = await api.call(
        "PUT",
        base + "/present-with",
        bearer=people.token("therapist"),
        json_body={"participant_ids": [people.id("client")]},
    )
    assert declared.status == 200, declared.body
    pending = [{"declarer_id": people.id("therapist"), "participant_id": people.id("client")}]

    def listed(data: dict[str, Any]) -> bool:
        return bool(data["pending"] == pending)

    await psychiatrist.wait_event("presence-pending", listed)
    await client.wait_event("presence-pending", listed)

    async def session(role: str) -> dict[str, Any]:
        answer = await api.call("GET", base, bearer=people.token(role))
        assert answer.status == 200, answer.body
        you: dict[str, Any] = answer.body["you"]
        return you

    assert (await session("client"))["declared_with_you"] == [
        {"declarer_id": people.id("therapist")}
    ]
    assert (await session("psychiatrist"))["declared_with_you"] == []
    assert (await session("therapist"))["declared_with_you"] == []

    # A late joiner finds it in the join state: the psychiatrist joins again from elsewhere.
    again = await people.connect("psychiatrist")
    assert (await again.join())["presence_pending"] == pending

    # The psychiatrist attests: every prompt is withdrawn, and the tile shows the client.
    mark = len(therapist.events)
    attested = await api.call(
        "POST",
        base + "/present-with/confirmations",
        bearer=people.token("psychiatrist"),
        json_body={"declarer_id": people.id("therapist"), "participant_id": people.id("client")},
    )
    assert attested.status == 200, attested.body
    await again.wait_event("presence-pending", lambda d: d["pending"] == [])
    await client.wait_event("presence-pending", lambda d: d["pending"] == [])
    # The declarer is sent the pending prompts before the tile update, on the same socket:
    # once the update is here, the therapist was never asked to confirm their own word.
    await therapist.wait_event(
        "peer-updated",
        lambda d: d["participant"]["present_with"] == [people.id("client")],
        after=mark,
    )
    assert therapist.received("presence-pending") == []
    assert (await session("client"))["declared_with_you"] == []


async def test_a_clinician_declared_by_the_client_is_asked_alone(people: People, api: Api) -> None:
    """A clinician's presence counts on their own word only: the other clinician is not asked
    to attest it, and the client (the declarer) is not asked either."""
    base = f"/api/v1/consults/{people.consult['id']}/session"
    psychiatrist = await people.joined("psychiatrist")
    therapist = await people.joined("therapist")
    mark = len(therapist.events)
    declared = await api.call(
        "PUT",
        base + "/present-with",
        bearer=people.token("client"),
        json_body={"participant_ids": [people.id("psychiatrist")]},
    )
    assert declared.status == 200, declared.body
    mine = [{"declarer_id": people.id("client"), "participant_id": people.id("psychiatrist")}]
    await psychiatrist.wait_event("presence-pending", lambda d: d["pending"] == mine)
    session = await api.call("GET", base, bearer=people.token("psychiatrist"))
    assert session.body["you"]["declared_with_you"] == [{"declarer_id": people.id("client")}]
    # Withdrawn by the declarer: the prompt goes away.
    cleared = await api.call(
        "PUT",
        base + "/present-with",
        bearer=people.token("client"),
        json_body={"participant_ids": []},
    )
    assert cleared.status == 200, cleared.body
    await psychiatrist.wait_event("presence-pending", lambda d: d["pending"] == [])
    # Each change ends with the hosts' `lobby`, after any prompt meant for them: none was.
    lobbies = [i for i, (name, _) in enumerate(therapist.events) if name == "lobby" and i >= mark]
    while len(lobbies) < 2:
        await therapist.wait_event("lobby", after=lobbies[-1] + 1 if lobbies else mark)
        lobbies = [
            i for i, (name, _) in enumerate(therapist.events) if name == "lobby" and i >= mark
        ]
    assert therapist.received("presence-pending") == []
