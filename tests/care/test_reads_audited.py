"""Every read of PHI leaves a `*.read` event naming who read it, whether a participant (join
token) or the platform (its API key), and what (ids and codes, never the content). Each call
below is made once and must add exactly its one event; the checks compare the trail before and
after."""

from __future__ import annotations

from typing import Any

import pytest

from server.services import Services
from tests.apiclient import Api
from tests.care.test_followups_api import create, end
from tests.conftest import PlatformKey
from tests.notes.plans import text
from tests.notes.test_rest import token, write
from tests.rooms.test_lobby_and_roles import audit_actions

MARKDOWN = {"Accept": "text/markdown"}


@pytest.fixture
async def series(api: Api, services: Services, platform: PlatformKey) -> dict[str, Any]:
    """An ended consult and its ended follow-up, both with a plan and a check-in."""
    first = await create(api, platform)
    await write(services, first, "therapist", "plan", text("summary", "Sleep poor."))
    await end(api, platform, first)
    second = await create(api, platform, follows=first["id"])
    measure = await api.call(
        "POST",
        f"/api/v1/consults/{second['id']}/session/measures",
        bearer=token(second, "client"),
        json_body={"instrument": "gad7", "answers": [1] * 7},
    )
    assert measure.status == 201, measure.body
    await write(services, second, "psychiatrist", "plan", text("summary", " Better."))
    await end(api, platform, second)
    return second


# (who, path below the consult, headers, action, details); who is a role or "platform".
READS: list[tuple[str, str, dict[str, str], str, dict[str, Any]]] = [
    ("platform", "", {}, "consult.read", {}),
    ("platform", "/plan", {}, "plan.read", {"format": "json"}),
    ("platform", "/plan", MARKDOWN, "plan.read", {"format": "markdown"}),
    ("platform", "/plan/fhir", {}, "plan.read", {"format": "fhir"}),
    ("client", "/session/plan", {}, "plan.read", {"format": "json"}),
    ("therapist", "/session/plan", MARKDOWN, "plan.read", {"format": "markdown"}),
    ("psychiatrist", "/session/notes/clinicians", {}, "notes.read", {}),
    ("therapist", "/session/notes/clinicians", {}, "notes.read", {}),
    ("client", "/session/measures", {}, "measures.read", {"count": 1}),
    ("platform", "/measures", {}, "measures.read", {"count": 1}),
    ("client", "/session/consent", {}, "consent.read", {}),
    ("platform", "/consent", {}, "consent.read", {}),
    ("platform", "/series", {}, "series.read", {"series_id": "{first}"}),
    ("platform", "/plan/diff", {}, "plan_diff.read", {"against": "{first}"}),
    ("client", "/session/plan/changes", {}, "plan_diff.read", {"against": "{first}"}),
]


@pytest.mark.parametrize(
    ("who", "path", "headers", "action", "details"),
    READS,
    ids=[f"{r[0]}-{r[3]}{r[1].replace('/', '-')}-{len(r[2])}" for r in READS],
)
async def test_each_phi_read_is_audited_with_its_reader(
    api: Api,
    platform: PlatformKey,
    series: dict[str, Any],
    who: str,
    path: str,
    headers: dict[str, str],
    action: str,
    details: dict[str, Any],
) -> None:
    consult_id = series["id"]
    before = await audit_actions(api, platform, consult_id)
    bearer = platform.secret if who == "platform" else token(series, who)
    answer = await api.call(
        "GET", f"/api/v1/consults/{consult_id}{path}", bearer=bearer, headers=headers
    )
    assert answer.status == 200, answer.body
    after = await audit_actions(api, platform, consult_id)
    (event,) = after[len(before) :]
    assert event["action"] == action
    if who == "platform":
        assert (event["actor_type"], event["actor_id"]) == ("platform", platform.key_id)
    else:
        participant = next(p for p in series["participants"] if p["role"] == who)
        assert (event["actor_type"], event["actor_id"]) == ("participant", participant["id"])
    wanted = {k: series["follows_id"] if v == "{first}" else v for k, v in details.items()}
    assert event["details"] == wanted


async def test_a_refused_read_is_not_recorded_as_a_read(
    api: Api, platform: PlatformKey, series: dict[str, Any]
) -> None:
    before = await audit_actions(api, platform, series["id"])
    refused = await api.call(
        "GET",
        f"/api/v1/consults/{series['id']}/session/notes/clinicians",
        bearer=token(series, "client"),
    )
    assert refused.code == "forbidden_role"
    assert await audit_actions(api, platform, series["id"]) == before


async def test_the_join_pages_session_read_is_audited(
    api: Api, platform: PlatformKey, consult: dict[str, Any]
) -> None:
    """`GET .../session` (live consults only) names everyone in the consult."""
    before = await audit_actions(api, platform, consult["id"])
    answer = await api.call(
        "GET", f"/api/v1/consults/{consult['id']}/session", bearer=token(consult, "therapist")
    )
    assert answer.status == 200, answer.body
    (event,) = (await audit_actions(api, platform, consult["id"]))[len(before) :]
    therapist = next(p for p in consult["participants"] if p["role"] == "therapist")
    assert (event["action"], event["actor_type"], event["actor_id"], event["details"]) == (
        "session.read",
        "participant",
        therapist["id"],
        {},
    )
