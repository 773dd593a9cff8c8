"""Follow-ups over REST, as a platform drives them: a consult created as the follow-up of an
ended one starts from its plan, the room can ask what changed since, the series lists both
saved plans in order, and the diff names the changed fields. The plan's FHIR bundle carries the
check-ins as Observations and the consent, withdrawn or not, as it stands now."""

from __future__ import annotations

from typing import Any

import pycrdt
from fhir.resources.R4B.bundle import Bundle

from server.services import Services
from tests.apiclient import Api
from tests.conftest import PlatformKey, consult_body, new_platform
from tests.notes.plans import text
from tests.notes.test_rest import token, write


def summary_of(doc_update: bytes) -> str:
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    doc.apply_update(doc_update)
    return str(doc.get("summary", type=pycrdt.Text))


async def create(api: Api, platform: PlatformKey, **overrides: Any) -> dict[str, Any]:
    answer = await api.call(
        "POST", "/api/v1/consults", bearer=platform.secret, json_body=consult_body(**overrides)
    )
    assert answer.status == 201, answer.body
    body: dict[str, Any] = answer.body
    return body


async def end(api: Api, platform: PlatformKey, consult: dict[str, Any]) -> None:
    ended = await api.call("POST", f"/api/v1/consults/{consult['id']}/end", bearer=platform.secret)
    assert ended.status == 200, ended.body


async def test_a_follow_up_continues_the_plan_and_the_series_shows_what_changed(
    api: Api, services: Services, platform: PlatformKey
) -> None:
    first = await create(api, platform)
    await write(services, first, "therapist", "plan", text("summary", "Sleep poor since spring."))
    early = await api.call(
        "POST",
        "/api/v1/consults",
        bearer=platform.secret,
        json_body=consult_body(follows=first["id"]),
    )
    assert early.status == 409
    assert early.body["code"] == "previous_consult_invalid"  # not ended, no plan yet
    await end(api, platform, first)

    second = await create(api, platform, follows=first["id"])
    assert second["follows_id"] == first["id"]
    assert second["series_id"] == first["id"]
    # The new plan starts from the old one: a browser syncing from nothing gets its text.
    sync = await services.notes.sync(second["id"], "psychiatrist", "plan", b"\x00")
    assert summary_of(sync.update) == "Sleep poor since spring."

    base = f"/api/v1/consults/{second['id']}"
    unchanged = await api.call(
        "GET", base + "/session/plan/changes", bearer=token(second, "psychiatrist")
    )
    assert unchanged.status == 200
    assert unchanged.body["previous"]["consult_id"] == first["id"]
    assert unchanged.body["changes"] == []
    await write(services, second, "psychiatrist", "plan", text("summary", " Better with CBT-I."))
    changed = await api.call("GET", base + "/session/plan/changes", bearer=token(second, "client"))
    assert changed.body["changes"] == [{"path": "summary", "section": "summary", "kind": "changed"}]
    await end(api, platform, second)

    series = await api.call("GET", base + "/series", bearer=platform.secret)
    assert series.status == 200
    assert series.body["series_id"] == first["id"]
    assert [(p["consult_id"], p["version"]) for p in series.body["plans"]] == [
        (first["id"], 1),
        (second["id"], 2),
    ]
    diff = await api.call("GET", base + "/plan/diff", bearer=platform.secret)
    assert diff.status == 200
    assert diff.body["older"]["version"] == 1
    assert diff.body["newer"]["version"] == 2
    assert [c["path"] for c in diff.body["changes"]] == ["summary"]
    assert "CBT-I" not in str(diff.body)  # names of fields, never the text

    plan = await api.call("GET", base + "/plan", bearer=platform.secret)
    assert plan.body["previous"] == {
        "consult_id": first["id"],
        "plan_id": series.body["plans"][0]["plan_id"],
        "version": 1,
    }


async def test_a_consult_of_another_platform_cannot_be_followed(
    api: Api, platform: PlatformKey, services: Services
) -> None:
    other = await new_platform(services, "Other Clinic")
    theirs = await create(api, other)
    answer = await api.call(
        "POST",
        "/api/v1/consults",
        bearer=platform.secret,
        json_body=consult_body(follows=theirs["id"]),
    )
    assert answer.status == 409
    assert answer.body["code"] == "previous_consult_invalid"


async def test_the_bundle_carries_check_ins_and_the_consent_as_it_stands(
    api: Api, services: Services, platform: PlatformKey
) -> None:
    consult = await create(api, platform)
    base = f"/api/v1/consults/{consult['id']}"
    client = token(consult, "client")
    wording = await api.call("GET", base + "/session/consent", bearer=client)
    given = await api.call(
        "POST",
        base + "/session/consent",
        bearer=client,
        json_body={
            "wording_version": wording.body["wording"]["version"],
            "scopes": ["session", "information_sharing"],
        },
    )
    assert given.status == 201
    phq9 = await api.call(
        "POST",
        base + "/session/measures",
        bearer=client,
        json_body={"instrument": "phq9", "answers": [3, 3, 3, 3, 3, 3, 1, 1, 0]},
    )
    assert phq9.body["total"] == 20
    assert phq9.body["severity"] == "severe"
    await end(api, platform, consult)

    plan = await api.call("GET", base + "/plan", bearer=platform.secret)
    assert [(m["instrument"], m["total"]) for m in plan.body["measures"]] == [("phq9", 20)]

    async def consents() -> list[dict[str, Any]]:
        answer = await api.call("GET", base + "/plan/fhir", bearer=platform.secret)
        assert answer.status == 200
        Bundle.model_validate(answer.body)
        resources = [e["resource"] for e in answer.body["entry"]]
        observations = [r for r in resources if r["resourceType"] == "Observation"]
        assert [o["valueInteger"] for o in observations] == [20]
        assert observations[0]["code"]["coding"][0]["code"] == "44261-6"  # PHQ-9 total (LOINC)
        return [r for r in resources if r["resourceType"] == "Consent"]

    before = await consents()
    assert sorted(c["status"] for c in before) == ["active", "active"]
    withdrawn = await api.call(
        "POST",
        base + "/session/consent/withdraw",
        bearer=client,
        json_body={"scopes": ["information_sharing"]},
    )
    assert withdrawn.status == 200  # allowed after the end: the client may always withdraw
    after = await consents()
    assert sorted(c["status"] for c in after) == ["active", "inactive"]
