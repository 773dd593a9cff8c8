"""Same-room mode: the client sits with their therapist on one device. The therapist declares
it, the client confirms it, the room shows it on the therapist's tile, the therapist attests the
client's spoken consent, and the saved plan's attendance says the client attended in the same
room and how that was established."""

from __future__ import annotations

from tests.apiclient import Api
from tests.conftest import PlatformKey
from tests.rooms.conftest import People


async def test_one_device_carries_two_people_into_the_room_and_the_plan(
    people: People, api: Api, platform: PlatformKey
) -> None:
    base = f"/api/v1/consults/{people.consult['id']}"
    psychiatrist = await people.joined("psychiatrist")
    therapist = await people.joined("therapist")
    assert (await therapist.join())["you"]["present_with"] == []

    bad = await api.call(
        "PUT",
        base + "/session/present-with",
        bearer=people.token("therapist"),
        json_body={"participant_ids": [people.id("therapist"), "p_nobody"]},
    )
    assert bad.status == 422
    assert bad.body["code"] == "validation_failed"

    mark = len(psychiatrist.events)
    declared = await api.call(
        "PUT",
        base + "/session/present-with",
        bearer=people.token("therapist"),
        json_body={"participant_ids": [people.id("client")]},
    )
    assert declared.status == 200
    session = await api.call("GET", base + "/session", bearer=people.token("therapist"))
    assert session.body["you"]["present_with"] == []  # pending: shown nowhere yet
    confirmed = await api.call(
        "POST",
        base + "/session/present-with/confirmations",
        bearer=people.token("client"),
        json_body={"declarer_id": people.id("therapist"), "participant_id": people.id("client")},
    )
    assert confirmed.status == 200, confirmed.body
    session = await api.call("GET", base + "/session", bearer=people.token("therapist"))
    assert session.body["you"]["present_with"] == [people.id("client")]  # kept across a reload
    update = await psychiatrist.wait_event(
        "peer-updated",
        lambda d: d["participant"]["participant_id"] == people.id("therapist"),
        after=mark,
    )
    assert update["participant"]["present_with"] == [people.id("client")]

    version = await api.call("GET", base + "/session/consent", bearer=people.token("therapist"))
    attested = await api.call(
        "POST",
        base + "/session/consent",
        bearer=people.token("therapist"),
        json_body={
            "wording_version": version.body["wording"]["version"],
            "scopes": ["session", "information_sharing"],
            "attested": True,
        },
    )
    assert attested.body["complete"] is True
    changed = await psychiatrist.wait_event("consent-changed")
    assert changed["complete"] is True

    # The therapist may also enter the client's spoken check-in answers.
    measure = await api.call(
        "POST",
        base + "/session/measures",
        bearer=people.token("therapist"),
        json_body={"instrument": "gad7", "answers": [1, 1, 1, 1, 1, 0, 0]},
    )
    assert measure.status == 201
    assert measure.body["total"] == 5

    ended = await therapist.call("end")
    assert ended["ok"], ended
    plan = await api.call("GET", base + "/plan", bearer=platform.secret)
    attendance = {a["role"]: a for a in plan.body["attendance"]}
    assert attendance["client"]["attended"] is True
    assert attendance["client"]["present_via"] == people.id("therapist")
    assert attendance["client"]["confirmed_by"] == people.id("client")
    assert attendance["client"]["attested_by"] is None
    assert attendance["therapist"]["present_via"] is None
    markdown = await api.call(
        "GET", base + "/plan", bearer=platform.secret, headers={"Accept": "text/markdown"}
    )
    assert "in the same room as Sam Okafor" in markdown.body.decode()


async def test_a_client_who_never_joined_and_was_not_declared_did_not_attend(
    people: People, api: Api, platform: PlatformKey
) -> None:
    therapist = await people.joined("therapist")
    assert (await therapist.call("end"))["ok"]
    plan = await api.call(
        "GET", f"/api/v1/consults/{people.consult['id']}/plan", bearer=platform.secret
    )
    client = next(a for a in plan.body["attendance"] if a["role"] == "client")
    assert client["attended"] is False
    assert client["present_via"] is None
