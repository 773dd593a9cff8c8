"""Check-in measures through the API: scored by the server, refused with a code when invalid,
and a PHQ-9 item 9 above zero flagged to both clinicians at once, never to the client."""

from __future__ import annotations

import pytest

from server.services import Services
from tests.apiclient import Api
from tests.care.trail import stored_events
from tests.conftest import PlatformKey
from tests.databases import snapshot
from tests.rooms.conftest import People
from tests.rooms.test_lobby_and_roles import audit_actions

# Hand-scored: 2+1+2+1+1+2+0+1+1 = 11, moderate (10-14), item 9 = 1.
PHQ9_FLAGGED = [2, 1, 2, 1, 1, 2, 0, 1, 1]
PHQ9_QUIET = [1, 1, 1, 1, 0, 0, 0, 0, 0]  # 4: minimal, item 9 = 0
GAD7 = [3, 3, 3, 3, 3, 0, 0]  # 15: severe (15-21)


def measures_path(people: People) -> str:
    return f"/api/v1/consults/{people.consult['id']}/session/measures"


async def test_the_server_scores_and_keeps_the_trend(
    people: People, api: Api, platform: PlatformKey, services: Services
) -> None:
    first = await api.call(
        "POST",
        measures_path(people),
        bearer=people.token("client"),
        json_body={"instrument": "phq9", "answers": PHQ9_QUIET},
    )
    assert first.status == 201, first.body
    assert (first.body["total"], first.body["severity"], first.body["item9_positive"]) == (
        4,
        "minimal",
        False,
    )
    second = await api.call(
        "POST",
        measures_path(people),
        bearer=people.token("client"),
        json_body={"instrument": "gad7", "answers": GAD7},
    )
    assert (second.body["total"], second.body["severity"]) == (15, "severe")

    for token in (people.token("client"), people.token("psychiatrist")):
        listed = await api.call("GET", measures_path(people), bearer=token)
        assert [m["id"] for m in listed.body["measures"]] == [first.body["id"], second.body["id"]]
    platform_view = await api.call(
        "GET", f"/api/v1/consults/{people.consult['id']}/measures", bearer=platform.secret
    )
    assert [m["total"] for m in platform_view.body["measures"]] == [4, 15]
    events = await audit_actions(api, platform, people.consult["id"])
    recorded = [e for e in events if e["action"] == "measure.recorded"]
    # In clear, the measure's id only; the instrument is sealed with the event.
    assert [e["details"] for e in recorded] == [
        {"measure_id": first.body["id"]},
        {"measure_id": second.body["id"]},
    ]
    stored = [e for e in await stored_events(services, people.consult["id"])]
    sealed = [e.sealed for e in stored if e.action == "measure.recorded"]
    assert sealed == [
        {"instrument": "phq9", "safety_flagged": False},
        {"instrument": "gad7", "safety_flagged": False},
    ]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"instrument": "phq9", "answers": [0] * 8}, "measure_invalid"),
        ({"instrument": "phq9", "answers": [0] * 10}, "measure_invalid"),
        ({"instrument": "gad7", "answers": [0] * 9}, "measure_invalid"),
        ({"instrument": "phq9", "answers": [0, 0, 0, 0, 0, 0, 0, 0, 4]}, "measure_invalid"),
        ({"instrument": "gad7", "answers": [0, 0, -1, 0, 0, 0, 0]}, "measure_invalid"),
        ({"instrument": "bdi2", "answers": [0] * 9}, "measure_invalid"),
        ({"instrument": "phq9", "answers": ["1"] * 9}, "validation_failed"),
        ({"instrument": "phq9"}, "validation_failed"),
    ],
    ids=["8-answers", "10-answers", "gad7-9", "four", "negative", "unknown", "strings", "none"],
)
async def test_invalid_answers_are_refused_with_a_code(
    people: People, api: Api, body: dict[str, object], code: str
) -> None:
    answer = await api.call(
        "POST", measures_path(people), bearer=people.token("client"), json_body=body
    )
    assert answer.status == 422, answer.body
    assert answer.body["code"] == code
    listed = await api.call("GET", measures_path(people), bearer=people.token("client"))
    assert listed.body["measures"] == []  # nothing stored


async def test_only_the_client_or_a_therapist_beside_them_answers(people: People, api: Api) -> None:
    body = {"instrument": "gad7", "answers": GAD7}
    psychiatrist = await api.call(
        "POST", measures_path(people), bearer=people.token("psychiatrist"), json_body=body
    )
    assert psychiatrist.body["code"] == "forbidden_role"
    therapist = await api.call(
        "POST", measures_path(people), bearer=people.token("therapist"), json_body=body
    )
    assert therapist.body["code"] == "same_room_required"


async def test_item_9_reaches_both_clinicians_at_once_and_not_the_client(
    people: People, api: Api, platform: PlatformKey, services: Services
) -> None:
    therapist, psychiatrist, client = await people.all_in_room()
    answer = await api.call(
        "POST",
        measures_path(people),
        bearer=people.token("client"),
        json_body={"instrument": "phq9", "answers": PHQ9_FLAGGED},
    )
    assert answer.status == 201
    assert (answer.body["total"], answer.body["severity"]) == (11, "moderate")
    assert answer.body["item9_positive"] is True
    for clinician in (therapist, psychiatrist):
        flag = await clinician.wait_event("safety-flag")
        assert flag["measure_id"] == answer.body["id"]
        assert (flag["instrument"], flag["item"], flag["answer"]) == ("phq9", 9, 1)
    # A marker broadcast after the flag: once the client has it, a flag sent to the client
    # (before it, on the same room lock and socket) would have arrived too.
    mark = len(client.events)
    assert (await therapist.call("media-state", {"audio": False, "video": True}))["ok"]
    await client.wait_event(
        "peer-updated", lambda d: d["participant"]["audio"] is False, after=mark
    )
    assert client.received("safety-flag") == []
    # A clinician who connects later sees the flag in the join state; the client never does.
    late = await people.connect("psychiatrist")  # a second connection replaces the first
    assert [f["measure_id"] for f in (await late.join())["safety_flags"]] == [answer.body["id"]]
    again = await people.connect("client")
    assert (await again.join())["safety_flags"] == []
    # The flag is a clinical fact: no action names it and no clear detail says it; the
    # check-in's own event carries it sealed.
    events = await audit_actions(api, platform, people.consult["id"])
    assert not [e for e in events if "safety" in e["action"] or "flag" in str(e["details"])]
    recorded = [e for e in events if e["action"] == "measure.recorded"]
    assert [e["details"] for e in recorded] == [{"measure_id": answer.body["id"]}]
    stored = await stored_events(services, people.consult["id"])
    assert [e.sealed for e in stored if e.action == "measure.recorded"] == [
        {"instrument": "phq9", "safety_flagged": True}
    ]


@pytest.mark.room_settings(checkins_max_per_consult=2)
async def test_check_ins_per_consult_are_capped(
    people: People, api: Api, services: Services
) -> None:
    body = {"instrument": "gad7", "answers": GAD7}
    for _ in range(2):
        kept = await api.call(
            "POST", measures_path(people), bearer=people.token("client"), json_body=body
        )
        assert kept.status == 201, kept.body
    before = await snapshot(services.db)
    for _ in range(2):
        refused = await api.call(
            "POST", measures_path(people), bearer=people.token("client"), json_body=body
        )
        assert refused.status == 409
        assert refused.body["code"] == "checkins_limit_reached"
    assert await snapshot(services.db) == before  # refused: nothing stored, nothing audited
    listed = await api.call("GET", measures_path(people), bearer=people.token("client"))
    assert len(listed.body["measures"]) == 2
