"""The client's consent: versioned wording, given by the client or attested by the therapist
they sit with (once that presence is confirmed by the client or attested by the psychiatrist),
required before admission, withdrawable, every change audited. For a minor whose consult seats a
guardian, the guardian's consent admits the client and the minor's own assent is recorded beside
it; the interpreter consents for nobody."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from server.notes.fhir_care import ASSENT_CATEGORY_TEXT
from tests.apiclient import Api
from tests.conftest import PlatformKey, consult_body, seated_consult_body
from tests.rooms.conftest import People, scopes
from tests.rooms.test_lobby_and_roles import audit_actions

BOTH = ["session", "information_sharing"]


def consent_path(people: People, tail: str = "") -> str:
    return f"/api/v1/consults/{people.consult['id']}/session/consent{tail}"


async def test_the_wording_is_versioned_and_a_stale_version_is_refused(
    people: People, api: Api, platform: PlatformKey
) -> None:
    state = await api.call("GET", consent_path(people), bearer=people.token("client"))
    assert state.status == 200
    assert state.body["complete"] is False
    assert state.body["records"] == []
    assert state.body["consenting_role"] == "client"  # no guardian seat
    assert state.body["assent"] == []
    scopes = {s["scope"] for s in state.body["wording"]["scopes"]}
    assert scopes == {"session", "information_sharing"}
    stale = await api.call(
        "POST",
        consent_path(people),
        bearer=people.token("client"),
        json_body={"wording_version": "1999-01-01", "scopes": ["session"]},
    )
    assert stale.status == 409
    assert stale.body["code"] == "consent_wording_outdated"
    after = await api.call("GET", consent_path(people), bearer=people.token("client"))
    assert after.body["records"] == []  # a refusal records nothing


async def test_only_the_client_consents_for_themself(people: People, api: Api) -> None:
    version = (await api.call("GET", consent_path(people), bearer=people.token("client"))).body[
        "wording"
    ]["version"]
    for role in ("therapist", "psychiatrist"):
        answer = await api.call(
            "POST",
            consent_path(people),
            bearer=people.token(role),
            json_body={"wording_version": version, "scopes": ["session"]},
        )
        assert answer.status == 403, role
        assert answer.body["code"] == "forbidden_role", role


async def test_a_therapist_attests_only_with_the_client_declared_beside_them(
    people: People, api: Api, platform: PlatformKey
) -> None:
    version = (await api.call("GET", consent_path(people), bearer=people.token("client"))).body[
        "wording"
    ]["version"]
    attest = {
        "wording_version": version,
        "scopes": ["session", "information_sharing"],
        "attested": True,
    }
    refused = await api.call(
        "POST", consent_path(people), bearer=people.token("therapist"), json_body=attest
    )
    assert refused.status == 409
    assert refused.body["code"] == "same_room_required"
    by_psychiatrist = await api.call(
        "POST", consent_path(people), bearer=people.token("psychiatrist"), json_body=attest
    )
    assert by_psychiatrist.body["code"] == "forbidden_role"

    declared = await api.call(
        "PUT",
        f"/api/v1/consults/{people.consult['id']}/session/present-with",
        bearer=people.token("therapist"),
        json_body={"participant_ids": [people.id("client")]},
    )
    assert declared.status == 200
    assert declared.body["participant_ids"] == [people.id("client")]
    assert declared.body["declarations"][0]["status"] == "pending"
    # Declared is not confirmed: the therapist's word alone does not put the client beside them.
    pending = await api.call(
        "POST", consent_path(people), bearer=people.token("therapist"), json_body=attest
    )
    assert pending.status == 409
    assert pending.body["code"] == "same_room_required"
    confirmed = await api.call(
        "POST",
        f"/api/v1/consults/{people.consult['id']}/session/present-with/confirmations",
        bearer=people.token("client"),
        json_body={"declarer_id": people.id("therapist"), "participant_id": people.id("client")},
    )
    assert confirmed.status == 200, confirmed.body
    assert confirmed.body["declarations"][0]["confirmed_by"] == people.id("client")
    given = await api.call(
        "POST", consent_path(people), bearer=people.token("therapist"), json_body=attest
    )
    assert given.status == 201
    assert given.body["complete"] is True
    for record in given.body["records"]:
        assert record["given_by"] == people.id("client")  # the client's consent...
        assert record["attested_by"] == people.id("therapist")  # ...that the therapist heard

    events = await audit_actions(api, platform, people.consult["id"])
    given_events = [e for e in events if e["action"] == "consent.given"]
    assert len(given_events) == 2  # one per scope; which scope is sealed with the record
    # The record and who gave it as what (the therapist attesting), never the scope.
    assert all(set(e["details"]) == {"consent_id", "role"} for e in given_events)
    assert all(e["details"]["role"] == "therapist" for e in given_events)
    assert all(e["actor_id"] == people.id("therapist") for e in given_events)
    assert any(e["action"] == "participant.present_with" for e in events)
    assert any(e["action"] == "presence.confirmed" for e in events)


async def test_withdrawal_is_audited_and_closes_sharing(
    people: People, api: Api, platform: PlatformKey
) -> None:
    therapist, psychiatrist, client = await people.all_in_room()  # the client consented
    await api.call(
        "PUT",
        f"/api/v1/consults/{people.consult['id']}/session/brief",
        bearer=people.token("therapist"),
        json_body={"question": "Is an SSRI reasonable given the sleep pattern?"},
    )
    assert (
        await api.call(
            "GET",
            f"/api/v1/consults/{people.consult['id']}/session/brief",
            bearer=people.token("psychiatrist"),
        )
    ).status == 200

    withdrawn = await api.call(
        "POST",
        consent_path(people, "/withdraw"),
        bearer=people.token("client"),
        json_body={"scopes": ["information_sharing"]},
    )
    assert withdrawn.status == 200
    assert withdrawn.body["complete"] is False
    assert withdrawn.body["sharing_withdrawn"] is True
    sharing = next(r for r in withdrawn.body["records"] if r["scope"] == "information_sharing")
    assert sharing["withdrawn_at"] is not None
    assert sharing["withdrawn_by"] == people.id("client")

    # Everyone in the room hears of it; the clinicians' channel and the brief close.
    for member in (therapist, psychiatrist, client):
        changed = await member.wait_event("consent-changed")
        assert changed == {
            "complete": False,
            "sharing_withdrawn": True,
            "consenting_role": "client",
            "consent": scopes("given", "withdrawn"),
            "assent": None,
        }
    refused = await psychiatrist.call("notes-update", {"doc": "clinicians", "update": b"\x00\x00"})
    assert refused["error"]["code"] == "consent_withdrawn"
    brief = await api.call(
        "GET",
        f"/api/v1/consults/{people.consult['id']}/session/brief",
        bearer=people.token("psychiatrist"),
    )
    assert brief.status == 403
    assert brief.body["code"] == "consent_withdrawn"

    events = await audit_actions(api, platform, people.consult["id"])
    withdrawals = [e for e in events if e["action"] == "consent.withdrawn"]
    assert [e["actor_id"] for e in withdrawals] == [people.id("client")]
    assert [set(e["details"]) for e in withdrawals] == [{"consent_id", "role"}]  # no scope
    assert [e["details"]["role"] for e in withdrawals] == ["client"]

    platform_view = await api.call(
        "GET", f"/api/v1/consults/{people.consult['id']}/consent", bearer=platform.secret
    )
    assert platform_view.body["sharing_withdrawn"] is True


# --- a minor's consult: the guardian consents, the minor assents ------------------------------


async def wording_version(api: Api, people: People) -> str:
    state = await api.call("GET", consent_path(people), bearer=people.token("client"))
    assert state.status == 200, state.body
    version: str = state.body["wording"]["version"]
    return version


async def post_consent(
    api: Api, people: People, role: str, scopes: list[str] = BOTH, **extra: Any
) -> Any:
    body = {"wording_version": await wording_version(api, people), "scopes": scopes, **extra}
    return await api.call("POST", consent_path(people), bearer=people.token(role), json_body=body)


async def consent_events(api: Api, platform: PlatformKey, people: People) -> list[tuple[str, str]]:
    """The consent trail as (action, who did it)."""
    return [
        (e["action"], e["actor_id"])
        for e in await audit_actions(api, platform, people.consult["id"])
        if e["action"].startswith(("consent.", "assent.")) and e["action"] != "consent.read"
    ]


async def test_a_minors_guardian_consents_and_only_that_admits_the_client(
    seated_people: People, api: Api, platform: PlatformKey
) -> None:
    people = seated_people
    before = await api.call("GET", consent_path(people), bearer=people.token("guardian"))
    assert before.body["consenting_role"] == "guardian"
    assert (before.body["records"], before.body["assent"]) == ([], [])

    therapist = await people.joined("therapist")
    client = await people.joined("client")
    await therapist.wait_event("lobby", lambda d: len(d["waiting"]) == 1)

    # The minor's own word is assent: recorded, shown, and not what lets them in.
    assented = await post_consent(api, people, "client")
    assert assented.status == 201, assented.body
    assert assented.body["complete"] is False
    assert assented.body["records"] == []
    assert [(a["scope"], a["given_by"]) for a in assented.body["assent"]] == [
        ("session", people.id("client")),
        ("information_sharing", people.id("client")),
    ]
    refused = await therapist.call("admit", {"participant_id": people.id("client")})
    assert refused["error"]["code"] == "consent_required"

    consented = await post_consent(api, people, "guardian")
    assert consented.status == 201, consented.body
    assert consented.body["complete"] is True
    assert [(r["scope"], r["given_by"]) for r in consented.body["records"]] == [
        ("session", people.id("guardian")),
        ("information_sharing", people.id("guardian")),
    ]
    assert consented.body["assent"] == assented.body["assent"]  # kept beside it
    # The hosts heard of each: the minor's assent (the guardian's consent still missing),
    # then the guardian's consent beside it.
    await therapist.wait_event("consent-changed", lambda c: c["complete"])
    assert therapist.received("consent-changed") == [
        {
            "complete": False,
            "sharing_withdrawn": False,
            "consenting_role": "guardian",
            "consent": scopes(None, None),
            "assent": scopes("given", "given"),
        },
        {
            "complete": True,
            "sharing_withdrawn": False,
            "consenting_role": "guardian",
            "consent": scopes("given", "given"),
            "assent": scopes("given", "given"),
        },
    ]
    assert (await therapist.call("admit", {"participant_id": people.id("client")}))["ok"]
    await client.wait_event("admitted")

    # Giving again changes nothing: same records, no new audit event.
    for role in ("guardian", "client"):
        again = await post_consent(api, people, role)
        assert again.status == 201
        assert (again.body["records"], again.body["assent"]) == (
            consented.body["records"],
            consented.body["assent"],
        )
    guardian, minor = people.id("guardian"), people.id("client")
    assert await consent_events(api, platform, people) == [
        ("assent.given", minor),
        ("assent.given", minor),
        ("consent.given", guardian),
        ("consent.given", guardian),
    ]


@pytest.fixture
async def minor_auto_admit(base_url: str, api: Api, platform: PlatformKey) -> AsyncIterator[People]:
    created = await api.call(
        "POST",
        "/api/v1/consults",
        bearer=platform.secret,
        json_body=seated_consult_body(auto_admit=True),
    )
    assert created.status == 201, created.body
    group = People(base_url, created.body, api)
    yield group
    await group.close()


async def test_auto_admit_waits_for_the_guardian_not_the_minors_assent(
    minor_auto_admit: People, api: Api
) -> None:
    people = minor_auto_admit
    client = await people.connect("client")
    assert (await client.join())["you"]["place"] == "lobby"
    assert (await post_consent(api, people, "client")).status == 201
    # The server answers from the lobby: the assent let nobody in.
    still = await client.call("notes-sync", {"doc": "plan", "state_vector": b"\x00"})
    assert still["error"]["code"] == "not_admitted"
    assert client.received("admitted") == []
    assert (await post_consent(api, people, "guardian")).status == 201
    admitted = await client.wait_event("admitted")
    assert admitted["state"]["you"]["place"] == "room"


async def test_a_minor_without_a_guardian_seat_consents_as_any_client(
    base_url: str, api: Api, platform: PlatformKey
) -> None:
    created = await api.call(
        "POST",
        "/api/v1/consults",
        bearer=platform.secret,
        json_body=consult_body(client_is_minor=True),
    )
    assert created.status == 201, created.body
    people = People(base_url, created.body, api)
    given = await post_consent(api, people, "client")
    assert given.status == 201
    assert given.body["consenting_role"] == "client"
    assert given.body["complete"] is True
    assert given.body["assent"] == []
    assert {r["given_by"] for r in given.body["records"]} == {people.id("client")}


async def test_the_guardians_withdrawal_closes_sharing_as_the_clients_does(
    seated_people: People, api: Api, platform: PlatformKey
) -> None:
    people = seated_people
    therapist, psychiatrist, client = await people.all_in_room()  # the guardian consented
    brief_path = f"/api/v1/consults/{people.consult['id']}/session/brief"
    await api.call(
        "PUT",
        brief_path,
        bearer=people.token("therapist"),
        json_body={"question": "Is an SSRI reasonable at fifteen?"},
    )
    assert (await api.call("GET", brief_path, bearer=people.token("psychiatrist"))).status == 200

    withdrawn = await api.call(
        "POST",
        consent_path(people, "/withdraw"),
        bearer=people.token("guardian"),
        json_body={"scopes": ["information_sharing"]},
    )
    assert withdrawn.status == 200, withdrawn.body
    assert withdrawn.body["complete"] is False
    assert withdrawn.body["sharing_withdrawn"] is True
    sharing = next(r for r in withdrawn.body["records"] if r["scope"] == "information_sharing")
    assert sharing["withdrawn_by"] == people.id("guardian")

    for member in (therapist, psychiatrist, client):
        changed = await member.wait_event("consent-changed")
        assert changed == {
            "complete": False,
            "sharing_withdrawn": True,
            "consenting_role": "guardian",
            "consent": scopes("given", "withdrawn"),
            "assent": scopes(None, None),  # the minor never assented: the guardian withdrew
        }
    refused = await psychiatrist.call("notes-update", {"doc": "clinicians", "update": b"\x00\x00"})
    assert refused["error"]["code"] == "consent_withdrawn"
    brief = await api.call("GET", brief_path, bearer=people.token("psychiatrist"))
    assert (brief.status, brief.code) == (403, "consent_withdrawn")
    assert (await api.call("GET", brief_path, bearer=people.token("therapist"))).status == 200

    again = await api.call(
        "POST",
        consent_path(people, "/withdraw"),
        bearer=people.token("guardian"),
        json_body={"scopes": ["information_sharing"]},
    )
    assert again.body["records"] == withdrawn.body["records"]  # nothing left to withdraw
    events = await consent_events(api, platform, people)
    assert [e for e in events if e[0].endswith(".withdrawn")] == [
        ("consent.withdrawn", people.id("guardian"))
    ]


async def test_the_minors_withdrawn_assent_closes_sharing_too(
    seated_people: People, api: Api, platform: PlatformKey
) -> None:
    """The wording the minor agreed to says sharing stops when they withdraw: their withdrawal
    stops it although the guardian's consent stands, until they assent again."""
    people = seated_people
    assert (await post_consent(api, people, "guardian")).status == 201
    assert (await post_consent(api, people, "client")).status == 201
    therapist = await people.joined("therapist")
    withdrawn = await api.call(
        "POST",
        consent_path(people, "/withdraw"),
        bearer=people.token("client"),
        json_body={"scopes": ["information_sharing"]},
    )
    assert withdrawn.status == 200, withdrawn.body
    assert (withdrawn.body["complete"], withdrawn.body["sharing_withdrawn"]) == (False, True)
    assert all(r["withdrawn_at"] is None for r in withdrawn.body["records"])  # the guardian's
    sharing = next(a for a in withdrawn.body["assent"] if a["scope"] == "information_sharing")
    assert sharing["withdrawn_by"] == people.id("client")
    brief = await api.call(
        "GET",
        f"/api/v1/consults/{people.consult['id']}/session/brief",
        bearer=people.token("psychiatrist"),
    )
    assert brief.code == "consent_withdrawn"
    # The hosts' page learns it is the minor's assent that stopped it, the guardian's stands.
    changed = await therapist.wait_event("consent-changed")
    assert changed == {
        "complete": False,
        "sharing_withdrawn": True,
        "consenting_role": "guardian",
        "consent": scopes("given", "given"),
        "assent": scopes("given", "withdrawn"),
    }

    again = await post_consent(api, people, "client", ["information_sharing"])
    assert (again.body["complete"], again.body["sharing_withdrawn"]) == (True, False)
    minor = people.id("client")
    assert [e for e in await consent_events(api, platform, people) if e[1] == minor] == [
        ("assent.given", minor),
        ("assent.given", minor),
        ("assent.withdrawn", minor),
        ("assent.given", minor),
    ]

    # The platform's FHIR export carries the assent as it stands, beside the guardian's consent.
    base = f"/api/v1/consults/{people.consult['id']}"
    assert (await api.call("POST", base + "/end", bearer=platform.secret)).status == 200
    fhir = await api.call("GET", base + "/plan/fhir", bearer=platform.secret)
    assert fhir.status == 200, fhir.body
    entries = {e["fullUrl"]: e["resource"] for e in fhir.body["entry"]}
    consents = [r for r in entries.values() if r["resourceType"] == "Consent"]
    assents = [c for c in consents if {"text": ASSENT_CATEGORY_TEXT} in c["category"]]
    assert (len(consents), len(assents)) == (4, 2)
    assert all(c["status"] == "active" for c in consents)  # assented again
    for consent in consents:
        (performer,) = consent["performer"]
        kind = entries[performer["reference"]]["resourceType"]
        assert kind == ("Patient" if consent in assents else "RelatedPerson")


async def test_refused_consent_calls_of_a_minors_consult_change_nothing(
    seated_people: People, api: Api, platform: PlatformKey
) -> None:
    """The interpreter consents and withdraws for nobody; a clinician neither consents nor
    withdraws for the guardian; the guardian attests nothing; malformed bodies are refused.
    Each refusal, asked twice, leaves the records and the trail as they were."""
    people = seated_people
    assert (await post_consent(api, people, "guardian")).status == 201
    before = await api.call("GET", consent_path(people), bearer=people.token("guardian"))
    trail = await consent_events(api, platform, people)
    version = await wording_version(api, people)
    refusals: list[tuple[str, str, Any, int, str]] = [
        ("interpreter", "", {"wording_version": version, "scopes": BOTH}, 403, "forbidden_role"),
        (
            "interpreter",
            "",
            {"wording_version": version, "scopes": BOTH, "attested": True},
            403,
            "forbidden_role",
        ),
        ("interpreter", "/withdraw", {"scopes": BOTH}, 403, "forbidden_role"),
        ("psychiatrist", "", {"wording_version": version, "scopes": BOTH}, 403, "forbidden_role"),
        ("psychiatrist", "/withdraw", {"scopes": BOTH}, 403, "forbidden_role"),
        ("therapist", "", {"wording_version": version, "scopes": BOTH}, 403, "forbidden_role"),
        # The therapist relays only the client's word, and only with the client beside them.
        ("therapist", "/withdraw", {"scopes": BOTH}, 409, "same_room_required"),
        (
            "guardian",
            "",
            {"wording_version": version, "scopes": BOTH, "attested": True},
            403,
            "forbidden_role",
        ),
        (
            "guardian",
            "",
            {"wording_version": "1999-01-01", "scopes": BOTH},
            409,
            "consent_wording_outdated",
        ),
        ("guardian", "", {"wording_version": version, "scopes": []}, 422, "validation_failed"),
        (
            "guardian",
            "",
            {"wording_version": version, "scopes": ["everything"]},
            422,
            "validation_failed",
        ),
        ("guardian", "", {"scopes": BOTH}, 422, "validation_failed"),
        (
            "guardian",
            "",
            {"wording_version": version, "scopes": BOTH, "for": "client"},
            422,
            "validation_failed",
        ),
        ("guardian", "/withdraw", {"scopes": "information_sharing"}, 422, "validation_failed"),
        ("guardian", "/withdraw", {"scopes": BOTH * 2}, 422, "validation_failed"),
        ("guardian", "/withdraw", [], 422, "validation_failed"),
    ]
    for role, tail, body, status, code in refusals:
        for attempt in range(2):
            answer = await api.call(
                "POST", consent_path(people, tail), bearer=people.token(role), json_body=body
            )
            assert (answer.status, answer.code) == (status, code), (role, tail, body, attempt)
    after = await api.call("GET", consent_path(people), bearer=people.token("interpreter"))
    assert after.status == 200  # bound by it, the interpreter may read it
    assert after.body == before.body
    assert await consent_events(api, platform, people) == trail
