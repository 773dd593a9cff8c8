"""The plan over REST, every answer checked against the OpenAPI document: the platform's JSON and
FHIR, the participants' view after the end, and the clinicians-only notes."""

from __future__ import annotations

import json
from typing import Any

import pycrdt
from fhir.resources.R4B.bundle import Bundle

from server.auth.roles import Role
from server.ids import ConsultId, ParticipantId
from server.services import Services
from tests.apiclient import Api
from tests.conftest import PlatformKey, new_platform, participant

PRIVATE = "Quietmorrowplan: ask about lithium"


async def write(
    services: Services, consult: dict[str, Any], role: str, doc: str, change: Any
) -> None:
    local: pycrdt.Doc[Any] = pycrdt.Doc()
    with local.transaction():
        change(local)
    await services.notes.apply(
        ConsultId(consult["id"]),
        ParticipantId(participant(consult, role)["id"]),
        Role(role),
        doc,
        local.get_update(),
    )


def token(consult: dict[str, Any], role: str) -> str:
    found: str = participant(consult, role)["join"]["token"]
    return found


async def test_plan_endpoints_before_and_after_the_end(
    api: Api, services: Services, platform: PlatformKey, consult: dict[str, Any]
) -> None:
    base = f"/api/v1/consults/{consult['id']}"
    for path, bearer in (
        ("/plan", platform.secret),
        ("/plan/fhir", platform.secret),
        ("/session/plan", token(consult, "client")),
    ):
        answer = await api.call("GET", base + path, bearer=bearer)
        assert (answer.status, answer.code) == (404, "plan_not_found"), path

    await write(
        services,
        consult,
        "psychiatrist",
        "plan",
        lambda d: d.get("diagnoses", type=pycrdt.Array).append(
            pycrdt.Map(
                {"name": "Generalised anxiety disorder", "icd10": "F41.1", "status": "confirmed"}
            )
        ),
    )
    await write(
        services,
        consult,
        "psychiatrist",
        "plan",
        lambda d: d.get("medications", type=pycrdt.Array).append(
            pycrdt.Map({"name": "Escitalopram", "dose": "10 mg", "action": "start"})
        ),
    )
    await write(
        services,
        consult,
        "client",
        "client",
        lambda d: d.get("questions", type=pycrdt.Array).append("How long?"),
    )
    await write(
        services,
        consult,
        "therapist",
        "clinicians",
        lambda d: d.get("notes", type=pycrdt.Text).insert(0, PRIVATE),
    )

    # During the consult: the clinicians read their notes live; the client may not.
    live = await api.call(
        "GET", base + "/session/notes/clinicians", bearer=token(consult, "therapist")
    )
    assert live.status == 200
    assert (live.body["text"], live.body["saved"]) == (PRIVATE, False)
    refused = await api.call(
        "GET", base + "/session/notes/clinicians", bearer=token(consult, "client")
    )
    assert (refused.status, refused.code) == (403, "forbidden_role")

    ended = await api.call("POST", base + "/end", bearer=platform.secret)
    assert ended.status == 200
    saved = await services.notes.finalize(ConsultId(consult["id"]))  # idempotent with the end's

    plan = await api.call("GET", base + "/plan", bearer=platform.secret)
    assert plan.status == 200
    assert plan.body["id"] == saved.id
    assert plan.body["version"] == 1
    assert plan.body["content"]["diagnoses"] == [
        {"name": "Generalised anxiety disorder", "icd10": "F41.1", "status": "confirmed"}
    ]
    assert plan.body["content"]["client"]["questions"] == ["How long?"]
    assert plan.body["authors"]["medications"] == [
        {"participant_id": participant(consult, "psychiatrist")["id"], "role": "psychiatrist"}
    ]
    assert PRIVATE not in json.dumps(plan.body)

    markdown = await api.call(
        "GET",
        base + "/plan",
        bearer=platform.secret,
        headers={"Accept": "text/markdown, application/json;q=0.5"},
    )
    assert markdown.status == 200
    assert markdown.headers["Content-Type"].startswith("text/markdown")
    assert "Generalised anxiety disorder" in markdown.body.decode()
    assert PRIVATE not in markdown.body.decode()

    fhir = await api.call("GET", base + "/plan/fhir", bearer=platform.secret)
    assert fhir.status == 200
    assert fhir.headers["Content-Type"].startswith("application/fhir+json")
    Bundle.model_validate(fhir.body)
    kinds = [e["resource"]["resourceType"] for e in fhir.body["entry"]]
    assert kinds.count("Condition") == 1
    assert kinds.count("MedicationRequest") == 1
    assert PRIVATE not in json.dumps(fhir.body)

    # After the end every participant's token still reads the plan; only clinicians the notes.
    for role in ("client", "therapist", "psychiatrist"):
        mine = await api.call("GET", base + "/session/plan", bearer=token(consult, role))
        assert mine.status == 200
        assert mine.body == plan.body
    notes = await api.call(
        "GET", base + "/session/notes/clinicians", bearer=token(consult, "psychiatrist")
    )
    assert notes.status == 200
    assert (notes.body["text"], notes.body["saved"]) == (PRIVATE, True)
    refused = await api.call(
        "GET", base + "/session/notes/clinicians", bearer=token(consult, "client")
    )
    assert (refused.status, refused.code) == (403, "forbidden_role")
    # Joining is still refused after the end: only reading the plan is allowed.
    session = await api.call("GET", base + "/session", bearer=token(consult, "client"))
    assert (session.status, session.code) == (409, "consult_ended")


async def test_plan_calls_refuse_strangers(
    api: Api, services: Services, platform: PlatformKey, consult: dict[str, Any]
) -> None:
    base = f"/api/v1/consults/{consult['id']}"
    await api.call("POST", base + "/end", bearer=platform.secret)
    await services.notes.finalize(ConsultId(consult["id"]))
    other = await new_platform(services, "Other Clinic")
    for path in ("/plan", "/plan/fhir"):
        answer = await api.call("GET", base + path, bearer=other.secret)
        assert (answer.status, answer.code) == (404, "consult_not_found")
        answer = await api.call("GET", base + path)
        assert (answer.status, answer.code) == (401, "api_key_missing")
    for path in ("/session/plan", "/session/notes/clinicians"):
        answer = await api.call("GET", base + path)
        assert (answer.status, answer.code) == (401, "token_invalid")
        answer = await api.call("GET", base + path, bearer="not-a-token")
        assert (answer.status, answer.code) == (401, "token_invalid")
        elsewhere = "/api/v1/consults/c_elsewhere" + path
        answer = await api.call("GET", elsewhere, bearer=token(consult, "therapist"))
        assert (answer.status, answer.code) == (403, "token_wrong_consult")


# The REST session routes against the optional seats: the status each role's token gets.
SEAT_ANSWERS: dict[str, dict[str, tuple[int, str | None]]] = {
    "guardian": {
        "/session/plan": (200, None),
        "/session/notes/clinicians": (403, "forbidden_role"),
        "/session/measures": (200, None),
        "/session/plan/changes": (200, None),
    },
    "interpreter": {
        "/session/plan": (403, "forbidden_role"),
        "/session/notes/clinicians": (403, "forbidden_role"),
        "/session/measures": (403, "forbidden_role"),
        "/session/plan/changes": (403, "forbidden_role"),
    },
}


async def test_the_optional_seats_on_the_session_routes(
    api: Api, services: Services, platform: PlatformKey, seated_consult: dict[str, Any]
) -> None:
    """The guardian reads the plan (with the client's document and the guardian's own question
    in it) and never the clinicians' notes; the interpreter reads none of them, live or after
    the end, as JSON or Markdown."""
    consult = seated_consult
    base = f"/api/v1/consults/{consult['id']}"
    await write(
        services,
        consult,
        "therapist",
        "plan",
        lambda d: d.get("summary", type=pycrdt.Text).insert(0, "Sleep first."),
    )
    await write(
        services,
        consult,
        "guardian",
        "client",
        lambda d: d.get("questions", type=pycrdt.Array).append("Is it safe at school?"),
    )
    await write(
        services,
        consult,
        "therapist",
        "clinicians",
        lambda d: d.get("notes", type=pycrdt.Text).insert(0, PRIVATE),
    )
    live = await api.call(
        "GET", base + "/session/notes/clinicians", bearer=token(consult, "interpreter")
    )
    assert (live.status, live.code) == (403, "forbidden_role")
    live = await api.call("GET", base + "/session/plan", bearer=token(consult, "interpreter"))
    assert (live.status, live.code) == (403, "forbidden_role")
    ended = await api.call("POST", base + "/end", bearer=platform.secret)
    assert ended.status == 200, ended.body
    for role, answers in SEAT_ANSWERS.items():
        for path, (status, code) in answers.items():
            for accept in ("application/json", "text/markdown"):
                if accept == "text/markdown" and path != "/session/plan":
                    continue
                answer = await api.call(
                    "GET", base + path, bearer=token(consult, role), headers={"Accept": accept}
                )
                assert (answer.status, answer.code) == (status, code), (role, path, accept)
                assert PRIVATE not in str(answer.body), (role, path)
    plan = await api.call("GET", base + "/session/plan", bearer=token(consult, "guardian"))
    assert "Sleep first." in str(plan.body)
    assert "Is it safe at school?" in str(plan.body)
    attendance = {a["role"] for a in plan.body["attendance"]}
    assert attendance == {"client", "therapist", "psychiatrist", "guardian", "interpreter"}
    markdown = await api.call(
        "GET",
        base + "/session/plan",
        bearer=token(consult, "guardian"),
        headers={"Accept": "text/markdown"},
    )
    text = markdown.body.decode()
    assert "- Guardian: Jordan Rivera (" in text
    assert "- Interpreter: Lucia Moreno (" in text
    assert PRIVATE not in text
