"""The client's consent: versioned wording, given by the client or attested by the therapist
they sit with (once that presence is confirmed by the client or attested by the psychiatrist),
required before admission, withdrawable, every change audited."""

from __future__ import annotations

from tests.apiclient import Api
from tests.conftest import PlatformKey
from tests.rooms.conftest import People
from tests.rooms.test_lobby_and_roles import audit_actions


def consent_path(people: People, tail: str = "") -> str:
    return f"/api/v1/consults/{people.consult['id']}/session/consent{tail}"


async def test_the_wording_is_versioned_and_a_stale_version_is_refused(
    people: People, api: Api, platform: PlatformKey
) -> None:
    state = await api.call("GET", consent_path(people), bearer=people.token("client"))
    assert state.status == 200
    assert state.body["complete"] is False
    assert state.body["records"] == []
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
    assert all(set(e["details"]) == {"consent_id"} for e in given_events)
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
        assert changed == {"complete": False, "sharing_withdrawn": True}
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
    assert [set(e["details"]) for e in withdrawals] == [{"consent_id"}]

    platform_view = await api.call(
        "GET", f"/api/v1/consults/{people.consult['id']}/consent", bearer=platform.secret
    )
    assert platform_view.body["sharing_withdrawn"] is True
