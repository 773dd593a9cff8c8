"""Same-room mode needs both sides. Every combination of declarer, person declared and the one
who tries to make it count: only the person declared confirms, or, for the client only, the
clinician who is not the declarer attests; everything else is refused with a code and changes
nothing. A client can never make a clinician count as attended, and the therapist cannot put
the client beside them and then attest the client's consent on their own word."""

from __future__ import annotations

import pytest

from server.consults.consent import CONSENT_WORDING
from server.services import Services
from tests.apiclient import Answer, Api
from tests.conftest import PlatformKey
from tests.databases import snapshot
from tests.rooms.conftest import People

ROLES = ("client", "therapist", "psychiatrist")
CLINICIANS = ("therapist", "psychiatrist")


def expected(declarer: str, declared: str, confirmer: str) -> str | None:
    """The rule docs/api.md states, written out independently of the server's code: the
    status a confirmation takes, or None when it must be refused."""
    if confirmer == declared:
        return "confirmed"
    if confirmer != declarer and declared == "client" and confirmer in CLINICIANS:
        return "attested"
    return None


CASES = [
    (declarer, declared, confirmer)
    for declarer in ROLES
    for declared in ROLES
    if declared != declarer
    for confirmer in ROLES
]


def base(people: People) -> str:
    return f"/api/v1/consults/{people.consult['id']}/session"


async def declare(api: Api, people: People, declarer: str, *declared: str) -> Answer:
    return await api.call(
        "PUT",
        base(people) + "/present-with",
        bearer=people.token(declarer),
        json_body={"participant_ids": [people.id(r) for r in declared]},
    )


async def confirm(api: Api, people: People, confirmer: str, declarer: str, declared: str) -> Answer:
    return await api.call(
        "POST",
        base(people) + "/present-with/confirmations",
        bearer=people.token(confirmer),
        json_body={"declarer_id": people.id(declarer), "participant_id": people.id(declared)},
    )


async def attest_consent(api: Api, people: People) -> Answer:
    return await api.call(
        "POST",
        base(people) + "/consent",
        bearer=people.token("therapist"),
        json_body={
            "wording_version": CONSENT_WORDING.version,
            "scopes": ["session", "information_sharing"],
            "attested": True,
        },
    )


@pytest.mark.parametrize(
    ("declarer", "declared", "confirmer"), CASES, ids=["-".join(c) for c in CASES]
)
async def test_who_may_make_a_declaration_count(
    people: People, api: Api, services: Services, declarer: str, declared: str, confirmer: str
) -> None:
    made = await declare(api, people, declarer, declared)
    assert made.status == 200, made.body
    assert made.body["declarations"] == [
        {
            "participant_id": people.id(declared),
            "status": "pending",
            "confirmed_by": None,
            "attested_by": None,
        }
    ]
    session = await api.call("GET", base(people), bearer=people.token(declarer))
    assert session.body["you"]["present_with"] == []  # pending counts for nothing...
    assert session.body["you"]["declared"] == [people.id(declared)]  # ...but is on record

    before = await snapshot(services.db)
    answer = await confirm(api, people, confirmer, declarer, declared)
    status = expected(declarer, declared, confirmer)
    if status is None:
        assert answer.status == 403, answer.body
        assert answer.code == "presence_confirmation_refused"
        assert await snapshot(services.db) == before
        session = await api.call("GET", base(people), bearer=people.token(declarer))
        assert session.body["you"]["present_with"] == []
        return
    assert answer.status == 200, answer.body
    (declaration,) = answer.body["declarations"]
    assert declaration["status"] == status
    key = "confirmed_by" if status == "confirmed" else "attested_by"
    assert declaration[key] == people.id(confirmer)
    session = await api.call("GET", base(people), bearer=people.token(declarer))
    assert session.body["you"]["present_with"] == [people.id(declared)]


async def test_nothing_declared_cannot_be_confirmed(people: People, api: Api) -> None:
    answer = await confirm(api, people, "client", "therapist", "client")
    assert answer.status == 409
    assert answer.code == "presence_not_declared"
    # Declared by the psychiatrist is not declared by the therapist.
    assert (await declare(api, people, "psychiatrist", "client")).status == 200
    answer = await confirm(api, people, "client", "therapist", "client")
    assert answer.code == "presence_not_declared"
    unknown = await api.call(
        "POST",
        base(people) + "/present-with/confirmations",
        bearer=people.token("client"),
        json_body={"declarer_id": "p_nobody", "participant_id": people.id("client")},
    )
    assert unknown.code == "presence_not_declared"


async def test_a_confirmation_survives_a_repeated_declaration_not_a_withdrawn_one(
    people: People, api: Api
) -> None:
    await declare(api, people, "therapist", "client")
    assert (await confirm(api, people, "client", "therapist", "client")).status == 200
    again = await declare(api, people, "therapist", "client")
    assert again.body["declarations"][0]["status"] == "confirmed"
    await declare(api, people, "therapist")  # nobody: the declaration is withdrawn
    renewed = await declare(api, people, "therapist", "client")
    assert renewed.body["declarations"][0]["status"] == "pending"
    refused = await attest_consent(api, people)
    assert refused.code == "same_room_required"


async def test_the_therapist_alone_cannot_declare_and_attest_consent(
    people: People, api: Api, services: Services
) -> None:
    await declare(api, people, "therapist", "client")
    before = await snapshot(services.db)
    for _ in range(2):
        refused = await attest_consent(api, people)
        assert refused.status == 409
        assert refused.code == "same_room_required"
    assert (await confirm(api, people, "therapist", "therapist", "client")).status == 403
    measure = await api.call(
        "POST",
        base(people) + "/measures",
        bearer=people.token("therapist"),
        json_body={"instrument": "gad7", "answers": [0] * 7},
    )
    assert measure.code == "same_room_required"
    assert await snapshot(services.db) == before


async def test_the_psychiatrist_attests_the_client_beside_the_therapist(
    people: People, api: Api, platform: PlatformKey
) -> None:
    therapist = await people.joined("therapist")
    await declare(api, people, "therapist", "client")
    attested = await confirm(api, people, "psychiatrist", "therapist", "client")
    assert attested.body["declarations"][0]["attested_by"] == people.id("psychiatrist")
    given = await attest_consent(api, people)
    assert given.status == 201, given.body
    assert given.body["complete"] is True
    assert (await therapist.call("end"))["ok"]
    plan = await api.call(
        "GET", f"/api/v1/consults/{people.consult['id']}/plan", bearer=platform.secret
    )
    attendance = {a["role"]: a for a in plan.body["attendance"]}
    assert attendance["client"]["attended"] is True
    assert attendance["client"]["present_via"] == people.id("therapist")
    assert attendance["client"]["attested_by"] == people.id("psychiatrist")
    assert attendance["client"]["confirmed_by"] is None
    assert attendance["psychiatrist"]["attended"] is False


async def test_a_client_never_makes_a_clinician_count_as_attended(
    people: People, api: Api, platform: PlatformKey
) -> None:
    therapist = await people.joined("therapist")
    await people.consent()
    client = await people.joined("client")
    assert (await therapist.call("admit", {"participant_id": people.id("client")}))["ok"]
    await client.wait_event("admitted")
    # The client says the psychiatrist sits with them; the therapist cannot vouch for it.
    await declare(api, people, "client", "psychiatrist")
    assert (await confirm(api, people, "therapist", "client", "psychiatrist")).status == 403
    assert (await confirm(api, people, "client", "client", "psychiatrist")).status == 403
    assert (await therapist.call("end"))["ok"]
    plan = await api.call(
        "GET", f"/api/v1/consults/{people.consult['id']}/plan", bearer=platform.secret
    )
    attendance = {a["role"]: a for a in plan.body["attendance"]}
    assert attendance["client"]["attended"] is True
    assert attendance["psychiatrist"]["attended"] is False
    assert attendance["psychiatrist"]["present_via"] is None


async def test_the_platform_key_confirms_nothing(
    people: People, api: Api, platform: PlatformKey
) -> None:
    await declare(api, people, "therapist", "client")
    answer = await api.call(
        "POST",
        base(people) + "/present-with/confirmations",
        bearer=platform.secret,
        json_body={"declarer_id": people.id("therapist"), "participant_id": people.id("client")},
    )
    assert answer.status == 401
