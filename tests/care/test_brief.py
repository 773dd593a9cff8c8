"""The hand-off brief: the therapist (or the platform for them) attaches it, the clinicians
read it, the client cannot, and the database holds it sealed."""

from __future__ import annotations

from server.services import Services
from tests.apiclient import Api
from tests.conftest import PlatformKey, consult_body
from tests.databases import stored_bytes
from tests.rooms.conftest import People
from tests.rooms.test_lobby_and_roles import audit_actions

BRIEF = {
    "seen_in_therapy": "Eighteen sessions; Thornquillmarsh pattern of early waking since spring.",
    "question": "Would an SSRI help alongside CBT-I?",
    "medications": "Sertraline tried in 2024 (stopped: nausea).",
    "risks": "Passive thoughts once in October; safety plan in place.",
}
SECRET_WORDS = ("Thornquillmarsh", "Sertraline", "CBT-I")


def brief_path(people: People) -> str:
    return f"/api/v1/consults/{people.consult['id']}/session/brief"


async def test_clinicians_read_the_brief_and_the_client_cannot(
    people: People, api: Api, platform: PlatformKey, services: Services
) -> None:
    missing = await api.call("GET", brief_path(people), bearer=people.token("psychiatrist"))
    assert missing.status == 404
    assert missing.body["code"] == "brief_not_found"

    written = await api.call(
        "PUT", brief_path(people), bearer=people.token("therapist"), json_body=BRIEF
    )
    assert written.status == 200, written.body
    for role in ("therapist", "psychiatrist"):
        read = await api.call("GET", brief_path(people), bearer=people.token(role))
        assert read.status == 200
        assert {k: read.body[k] for k in BRIEF} == BRIEF
        assert read.body["author_role"] == "therapist"

    refused = await api.call("GET", brief_path(people), bearer=people.token("client"))
    assert refused.status == 403
    assert refused.body["code"] == "forbidden_role"
    assert "Thornquillmarsh" not in str(refused.body)
    for role in ("client", "psychiatrist"):
        write = await api.call(
            "PUT", brief_path(people), bearer=people.token(role), json_body=BRIEF
        )
        assert write.status == 403
        assert write.body["code"] == "forbidden_role"

    data = await stored_bytes(services.db)
    for word in SECRET_WORDS:
        assert word.encode() not in data, word

    events = await audit_actions(api, platform, people.consult["id"])
    reads = [e for e in events if e["action"] == "brief.read"]
    assert {e["actor_id"] for e in reads} == {people.id("therapist"), people.id("psychiatrist")}
    assert "Thornquillmarsh" not in str(events)


async def test_the_platform_attaches_a_brief_at_creation_or_later(
    api: Api, platform: PlatformKey
) -> None:
    created = await api.call(
        "POST", "/api/v1/consults", bearer=platform.secret, json_body=consult_body(brief=BRIEF)
    )
    assert created.status == 201, created.body
    path = f"/api/v1/consults/{created.body['id']}/brief"
    read = await api.call("GET", path, bearer=platform.secret)
    assert read.status == 200
    assert read.body["question"] == BRIEF["question"]
    assert read.body["author_role"] == "platform"

    replaced = await api.call(
        "PUT", path, bearer=platform.secret, json_body={**BRIEF, "risks": "None known."}
    )
    assert replaced.status == 200
    assert replaced.body["risks"] == "None known."
    assert replaced.body["created_at"] == read.body["created_at"]


async def test_an_empty_or_oversized_brief_is_refused(api: Api, platform: PlatformKey) -> None:
    empty = await api.call(
        "POST",
        "/api/v1/consults",
        bearer=platform.secret,
        json_body=consult_body(brief={"question": "   "}),
    )
    assert empty.status == 422
    assert empty.body["code"] == "validation_failed"
    huge = await api.call(
        "POST",
        "/api/v1/consults",
        bearer=platform.secret,
        json_body=consult_body(brief={"question": "x" * 20_001}),
    )
    assert huge.status in (413, 422)
    assert huge.body["code"] in (
        "validation_failed",
        "payload_too_large",
    )


async def test_the_clinicians_in_the_room_are_told_when_the_brief_is_saved(
    people: People, api: Api, platform: PlatformKey
) -> None:
    """`brief-updated` carries none of the brief: the page reads it again. The client is never
    told; the psychiatrist no longer once the client withdrew sharing."""
    therapist = await people.joined("therapist")
    psychiatrist = await people.joined("psychiatrist")
    client = await people.joined("client")
    path = f"/api/v1/consults/{people.consult['id']}/brief"
    saved = await api.call("PUT", path, bearer=platform.secret, json_body=BRIEF)
    assert saved.status == 200, saved.body
    for clinician in (therapist, psychiatrist):
        assert await clinician.wait_event("brief-updated") == {}

    await people.consent()
    withdrawn = await api.call(
        "POST",
        f"/api/v1/consults/{people.consult['id']}/session/consent/withdraw",
        bearer=people.token("client"),
        json_body={"scopes": ["information_sharing"]},
    )
    assert withdrawn.status == 200, withdrawn.body
    await psychiatrist.wait_event("consent-changed", lambda d: d["sharing_withdrawn"] is True)
    mark = len(therapist.events)
    rewritten = await api.call(
        "PUT", brief_path(people), bearer=people.token("therapist"), json_body=BRIEF
    )
    assert rewritten.status == 200, rewritten.body
    await therapist.wait_event("brief-updated", after=mark)
    # Consent given again: its `consent-changed` comes after anything the room sent the
    # psychiatrist for the brief on the same socket.
    await people.consent()
    await psychiatrist.wait_event("consent-changed", lambda d: d["sharing_withdrawn"] is False)
    assert len(psychiatrist.received("brief-updated")) == 1
    assert client.received("brief-updated") == []
