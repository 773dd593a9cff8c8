"""Bad requests to the platform API: each gets a problem document with a stable code, and the
database is exactly as it was before."""

from __future__ import annotations

from typing import Any

import pytest

from server.consults.model import Actor
from server.ids import KeyId
from server.services import Services
from tests.apiclient import Api
from tests.conftest import PlatformKey, consult_body, participant
from tests.databases import snapshot

CONSULTS = "/api/v1/consults"
PEOPLE = consult_body()["participants"]


def roles(*names: str) -> dict[str, Any]:
    people = {
        "client": "Alex",
        "therapist": "Sam",
        "psychiatrist": "Priya",
        "nurse": "Kim",
        "guardian": "Jordan",
        "interpreter": "Lucia",
        "Guardian": "Jo",
        "parent": "Pat",
    }
    return {"participants": [{"role": n, "name": people[n]} for n in names]}


def minor(*names: str) -> dict[str, Any]:
    return {**roles(*names), "client_is_minor": True}


THREE = ("client", "therapist", "psychiatrist")


CREATE_CASES: list[Any] = [
    pytest.param(b"{not json", "application/json", 400, "invalid_json", id="not-json"),
    pytest.param(b"", "application/json", 422, "validation_failed", id="empty-body"),
    pytest.param(b"[]", "application/json", 422, "validation_failed", id="array-body"),
    pytest.param(b"participants=3", "text/plain", 415, "unsupported_media_type", id="text-body"),
    pytest.param({}, None, 422, "validation_failed", id="missing-participants"),
    pytest.param(
        {"participants": [{"role": "client"}, *PEOPLE[1:]]},
        None,
        422,
        "validation_failed",
        id="missing-name",
    ),
    pytest.param(
        roles("client", "therapist", "nurse"), None, 422, "validation_failed", id="unknown-role"
    ),
    pytest.param(
        roles("client", "client", "psychiatrist"), None, 422, "validation_failed", id="two-clients"
    ),
    pytest.param(roles("client", "therapist"), None, 422, "validation_failed", id="two-people"),
    pytest.param(
        roles("client", "therapist", "psychiatrist", "client"),
        None,
        422,
        "validation_failed",
        id="four-people",
    ),
    pytest.param(
        {"participants": [{"role": "client", "name": "   "}, *PEOPLE[1:]]},
        None,
        422,
        "validation_failed",
        id="blank-name",
    ),
    pytest.param(
        {"participants": [{"role": "client", "name": "Al\x00ex"}, *PEOPLE[1:]]},
        None,
        422,
        "validation_failed",
        id="control-char-name",
    ),
    pytest.param(
        {"participants": [{"role": "client", "name": "x" * 101}, *PEOPLE[1:]]},
        None,
        422,
        "validation_failed",
        id="long-name",
    ),
    pytest.param(
        consult_body(scheduled_start="2026-12-01T15:00:00"),
        None,
        422,
        "validation_failed",
        id="naive-time",
    ),
    pytest.param(
        consult_body(scheduled_start="2026-12-01T15:00:00Z", scheduled_end="2026-12-01T14:00:00Z"),
        None,
        422,
        "validation_failed",
        id="end-before-start",
    ),
    pytest.param(
        consult_body(auto_admit="yes please"), None, 422, "validation_failed", id="bad-type"
    ),
    pytest.param(consult_body(surprise=1), None, 422, "validation_failed", id="unknown-field"),
    # The optional seats.
    pytest.param(
        roles(*THREE, "guardian"), None, 422, "validation_failed", id="guardian-without-minor"
    ),
    pytest.param(
        {**roles(*THREE, "guardian"), "client_is_minor": False},
        None,
        422,
        "validation_failed",
        id="guardian-client-not-minor",
    ),
    pytest.param(
        {**roles(*THREE, "guardian"), "client_is_minor": "yes"},
        None,
        422,
        "validation_failed",
        id="minor-flag-not-boolean",
    ),
    pytest.param(
        minor(*THREE, "guardian", "guardian"), None, 422, "validation_failed", id="two-guardians"
    ),
    pytest.param(
        roles(*THREE, "interpreter", "interpreter"),
        None,
        422,
        "validation_failed",
        id="two-interpreters",
    ),
    pytest.param(
        minor(*THREE, "guardian", "interpreter", "interpreter"),
        None,
        422,
        "validation_failed",
        id="six-people",
    ),
    pytest.param(minor(*THREE, "parent"), None, 422, "validation_failed", id="unknown-seat"),
    pytest.param(minor(*THREE, "Guardian"), None, 422, "validation_failed", id="role-case"),
    pytest.param(
        minor("client", "therapist", "guardian", "interpreter"),
        None,
        422,
        "validation_failed",
        id="optional-seat-instead-of-a-clinician",
    ),
]


@pytest.mark.parametrize(("body", "content_type", "status", "code"), CREATE_CASES)
async def test_bad_create_bodies_are_refused_and_change_nothing(
    api: Api,
    services: Services,
    platform: PlatformKey,
    body: Any,
    content_type: str | None,
    status: int,
    code: str,
) -> None:
    before = await snapshot(services.db)
    if isinstance(body, bytes):
        answer = await api.call(
            "POST", CONSULTS, bearer=platform.secret, data=body, content_type=content_type
        )
    else:
        answer = await api.call("POST", CONSULTS, bearer=platform.secret, json_body=body)
    assert (answer.status, answer.code) == (status, code), answer.body
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    assert answer.body["type"] == f"urn:triad:error:{code}"
    assert answer.body["status"] == status
    assert answer.body["instance"] == CONSULTS
    assert await snapshot(services.db) == before


async def test_validation_problem_names_the_fields(api: Api, platform: PlatformKey) -> None:
    answer = await api.call(
        "POST",
        CONSULTS,
        bearer=platform.secret,
        json_body=roles("client", "client", "psychiatrist"),
    )
    assert answer.code == "validation_failed"
    messages = {e["location"]: e["message"] for e in answer.body["errors"]}
    assert "exactly one therapist" in messages["/participants"]


async def test_a_guardian_without_a_minor_client_is_refused_by_name(
    api: Api, services: Services, platform: PlatformKey
) -> None:
    before = await snapshot(services.db)
    answer = await api.call(
        "POST", CONSULTS, bearer=platform.secret, json_body=roles(*THREE, "guardian")
    )
    assert (answer.status, answer.code) == (422, "validation_failed")
    messages = {e["location"]: e["message"] for e in answer.body["errors"]}
    assert "minor" in messages["/client_is_minor"]
    doubled = await api.call(
        "POST",
        CONSULTS,
        bearer=platform.secret,
        json_body=roles(*THREE, "interpreter", "interpreter"),
    )
    messages = {e["location"]: e["message"] for e in doubled.body["errors"]}
    assert "at most one interpreter" in messages["/participants"]
    assert await snapshot(services.db) == before


async def test_oversized_body_is_refused(
    api: Api, services: Services, platform: PlatformKey
) -> None:
    before = await snapshot(services.db)
    big = consult_body(external_id="x" * 200)
    big["padding"] = "x" * (70 * 1024)
    answer = await api.call("POST", CONSULTS, bearer=platform.secret, json_body=big)
    assert (answer.status, answer.code) == (413, "payload_too_large")
    assert await snapshot(services.db) == before


AUTH_CASES: list[Any] = [
    pytest.param(None, 401, "api_key_missing", id="no-header"),
    pytest.param("", 401, "api_key_missing", id="empty"),
    pytest.param("tsk_" + "A" * 43, 401, "api_key_invalid", id="unknown-key"),
    pytest.param("not-a-key", 401, "api_key_invalid", id="malformed-key"),
    pytest.param("tsk_short", 401, "api_key_invalid", id="short-key"),
]


@pytest.mark.parametrize(("credential", "status", "code"), AUTH_CASES)
async def test_bad_api_keys_are_refused_on_every_platform_route(
    api: Api,
    services: Services,
    consult: dict[str, Any],
    credential: str | None,
    status: int,
    code: str,
) -> None:
    before = await snapshot(services.db)
    base = f"{CONSULTS}/{consult['id']}"
    client = participant(consult, "client")
    for method, path, body in [
        ("POST", CONSULTS, consult_body()),
        ("GET", base, None),
        ("POST", base + "/end", None),
        ("GET", base + "/audit", None),
        ("POST", f"{base}/participants/{client['id']}/tokens", None),
        ("DELETE", f"{base}/participants/{client['id']}/tokens", None),
    ]:
        answer = await api.call(method, path, bearer=credential, json_body=body)
        assert (answer.status, answer.code) == (status, code), (method, path)
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert await snapshot(services.db) == before


async def test_join_token_is_not_an_api_key(
    api: Api, services: Services, consult: dict[str, Any]
) -> None:
    token = participant(consult, "therapist")["join"]["token"]
    before = await snapshot(services.db)
    answer = await api.call("POST", f"{CONSULTS}/{consult['id']}/end", bearer=token)
    assert (answer.status, answer.code) == (401, "api_key_invalid")
    assert await snapshot(services.db) == before


async def test_revoked_api_key_is_refused(
    api: Api, services: Services, platform: PlatformKey, consult: dict[str, Any]
) -> None:
    assert await services.keys.revoke(KeyId(platform.key_id), Actor("operator", "test"))
    before = await snapshot(services.db)
    answer = await api.call("GET", f"{CONSULTS}/{consult['id']}", bearer=platform.secret)
    assert (answer.status, answer.code) == (401, "api_key_invalid")
    answer = await api.call("POST", CONSULTS, bearer=platform.secret, json_body=consult_body())
    assert (answer.status, answer.code) == (401, "api_key_invalid")
    assert await snapshot(services.db) == before


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("GET", ""), ("POST", "/end"), ("GET", "/audit"), ("POST", "/participants/p_x/tokens")],
)
async def test_unknown_consult(
    api: Api, services: Services, platform: PlatformKey, method: str, suffix: str
) -> None:
    before = await snapshot(services.db)
    answer = await api.call(method, f"{CONSULTS}/c_nope{suffix}", bearer=platform.secret)
    assert (answer.status, answer.code) == (404, "consult_not_found")
    assert await snapshot(services.db) == before


@pytest.mark.parametrize("method", ["POST", "DELETE"])
async def test_unknown_participant(
    api: Api, services: Services, platform: PlatformKey, consult: dict[str, Any], method: str
) -> None:
    before = await snapshot(services.db)
    path = f"{CONSULTS}/{consult['id']}/participants/p_nope/tokens"
    answer = await api.call(method, path, bearer=platform.secret)
    assert (answer.status, answer.code) == (404, "participant_not_found")
    assert await snapshot(services.db) == before


@pytest.mark.parametrize(
    "query",
    [{"limit": "0"}, {"limit": "501"}, {"after": "-1"}, {"limit": "ten"}, {"page": "2"}],
)
async def test_bad_audit_queries(
    api: Api, platform: PlatformKey, consult: dict[str, Any], query: dict[str, str]
) -> None:
    answer = await api.call(
        "GET", f"{CONSULTS}/{consult['id']}/audit", bearer=platform.secret, query=query
    )
    assert (answer.status, answer.code) == (422, "validation_failed")


@pytest.mark.parametrize("ttl", [0, 59, 30 * 24 * 3600 + 1, "soon"])
async def test_bad_token_lifetimes(
    api: Api, services: Services, platform: PlatformKey, consult: dict[str, Any], ttl: Any
) -> None:
    client = participant(consult, "client")
    before = await snapshot(services.db)
    answer = await api.call(
        "POST",
        f"{CONSULTS}/{consult['id']}/participants/{client['id']}/tokens",
        bearer=platform.secret,
        json_body={"ttl_seconds": ttl},
    )
    assert (answer.status, answer.code) == (422, "validation_failed")
    assert await snapshot(services.db) == before


async def test_unknown_routes_and_methods_are_problems(api: Api) -> None:
    missing = await api.call("GET", "/api/v1/nothing-here", validate=False)
    assert (missing.status, missing.code) == (404, "not_found")
    wrong = await api.call("PUT", "/api/v1/consults", validate=False)
    assert (wrong.status, wrong.code) == (405, "method_not_allowed")


async def test_idempotency_key_reused_for_another_request(
    api: Api, services: Services, platform: PlatformKey
) -> None:
    key = {"Idempotency-Key": "once"}
    first = await api.call(
        "POST", CONSULTS, bearer=platform.secret, json_body=consult_body(), headers=key
    )
    assert first.status == 201
    before = await snapshot(services.db)
    other = await api.call(
        "POST",
        CONSULTS,
        bearer=platform.secret,
        json_body=consult_body(auto_admit=True),
        headers=key,
    )
    assert (other.status, other.code) == (422, "idempotency_key_reused")
    assert await snapshot(services.db) == before


async def test_replaying_an_ended_consults_creation(
    api: Api, services: Services, platform: PlatformKey
) -> None:
    key = {"Idempotency-Key": "ended-then-retried"}
    first = await api.call(
        "POST", CONSULTS, bearer=platform.secret, json_body=consult_body(), headers=key
    )
    await api.call("POST", f"{CONSULTS}/{first.body['id']}/end", bearer=platform.secret)
    before = await snapshot(services.db)
    again = await api.call(
        "POST", CONSULTS, bearer=platform.secret, json_body=consult_body(), headers=key
    )
    assert (again.status, again.code) == (409, "consult_ended")
    assert await snapshot(services.db) == before


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "naïve"])
async def test_bad_idempotency_keys(
    api: Api, services: Services, platform: PlatformKey, key: str
) -> None:
    before = await snapshot(services.db)
    answer = await api.call(
        "POST",
        CONSULTS,
        bearer=platform.secret,
        json_body=consult_body(),
        headers={"Idempotency-Key": key},
        validate=key != "naïve",  # not a valid HTTP header value to send through openapi-core
    )
    assert (answer.status, answer.code) == (422, "validation_failed")
    assert await snapshot(services.db) == before
