"""The optional seats on the care workflow's session routes: the guardian's and the interpreter's
tokens against each route (the notes routes' matrix is tests/notes/test_rest.py's): what each
may read, and that every refusal is `403 forbidden_role` and changes nothing."""

from __future__ import annotations

from typing import Any

from server.services import Services
from tests.apiclient import Api
from tests.databases import snapshot
from tests.rooms.conftest import People

BOTH = ["session", "information_sharing"]
PHQ9 = [0, 0, 0, 0, 0, 0, 0, 0, 0]


async def test_each_care_route_answers_the_guardian_and_the_interpreter_as_the_table_says(
    seated_people: People, api: Api, services: Services
) -> None:
    people = seated_people
    base = f"/api/v1/consults/{people.consult['id']}/session"
    version = (await api.call("GET", base + "/consent", bearer=people.token("client"))).body[
        "wording"
    ]["version"]
    give = {"wording_version": version, "scopes": BOTH}
    refusals: list[tuple[str, str, str, Any]] = [
        # The brief is the clinicians' (docs/api.md "Who may do what").
        (role, method, "/brief", body)
        for role in ("guardian", "interpreter")
        for method, body in (("GET", None), ("PUT", {"question": "Is sleep the first target?"}))
    ]
    refusals += [
        # Check-ins are the client's own (a therapist may relay them, with the client beside).
        (role, "POST", "/measures", {"instrument": "phq9", "answers": PHQ9})
        for role in ("guardian", "interpreter")
    ]
    refusals += [
        # The interpreter consents, attests and withdraws for nobody; the guardian attests
        # nothing (a therapist's act).
        ("interpreter", "POST", "/consent", give),
        ("interpreter", "POST", "/consent/withdraw", {"scopes": BOTH}),
        ("guardian", "POST", "/consent", {**give, "attested": True}),
        # Their reads of the plan's measures follow the plan: never the interpreter's.
        ("interpreter", "GET", "/measures", None),
    ]
    for role, method, path, body in refusals:
        before = await snapshot(services.db)
        for attempt in range(2):
            answer = await api.call(method, base + path, bearer=people.token(role), json_body=body)
            assert (answer.status, answer.code) == (403, "forbidden_role"), (role, method, path)
            assert await snapshot(services.db) == before, (role, method, path, attempt)

    # What they may do: read the session and the consent (the interpreter is bound by it), and
    # say who sits with them (an interpreter in the room with the client, say); the guardian
    # reads the check-ins with the plan and gives the consent that admits the client.
    for role in ("guardian", "interpreter"):
        session = await api.call("GET", base, bearer=people.token(role))
        assert session.status == 200, (role, session.body)
        assert session.body["consult"]["client_is_minor"] is True
        consent = await api.call("GET", base + "/consent", bearer=people.token(role))
        assert (consent.status, consent.body["consenting_role"]) == (200, "guardian")
        beside = await api.call(
            "PUT",
            base + "/present-with",
            bearer=people.token(role),
            json_body={"participant_ids": [people.id("client")]},
        )
        assert beside.status == 200, (role, beside.body)
        assert beside.body["declarations"][0]["status"] == "pending"  # the client confirms
    measures = await api.call("GET", base + "/measures", bearer=people.token("guardian"))
    assert (measures.status, measures.body["measures"]) == (200, [])
    given = await api.call(
        "POST", base + "/consent", bearer=people.token("guardian"), json_body=give
    )
    assert (given.status, given.body["complete"]) == (201, True)
