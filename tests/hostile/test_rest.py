"""Hostile REST requests: bodies, headers, queries, paths and methods. Each is answered with a
problem document naming a stable code (and the field, where one is at fault), the tables are
as they were, and a valid request right after still succeeds. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import consult_body
from tests.hostile.conftest import CONSULTS, Stage, refused

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def nested(depth: int, inner: str = "1") -> bytes:
    return ("[" * depth + inner + "]" * depth).encode()


def with_name(name_json: str) -> bytes:
    """A valid create body whose client's name is the given raw JSON text."""
    body = json.dumps(consult_body()).replace('"Alex Rivera"', name_json)
    return body.encode("utf-8", "surrogatepass")


def with_field(field: str, value_json: str) -> bytes:
    body = json.dumps(consult_body())
    return (body[:-1] + f', "{field}": {value_json}}}').encode("utf-8", "surrogatepass")


PEOPLE = consult_body()["participants"]
# (id, body (dict: sent as JSON; bytes: sent as is), status, code, a location the problem names)
CREATE: list[tuple[str, Any, int, str, str | None]] = [
    # -- not JSON, or JSON past the bounds ------------------------------------------------
    ("truncated", b'{"participants": [', 400, "invalid_json", None),
    ("trailing-garbage", b'{"participants": []} x', 400, "invalid_json", None),
    ("single-quotes", b"{'participants': []}", 400, "invalid_json", None),
    ("comment", b'{"participants": [] /* hi */}', 400, "invalid_json", None),
    ("invalid-utf8", b'{"participants": "\xff\xfe"}', 400, "invalid_json", None),
    ("utf8-bom", b'\xef\xbb\xbf{"participants": []}', 400, "invalid_json", None),
    ("utf16", '{"participants": []}'.encode("utf-16"), 400, "invalid_json", None),
    ("nul-byte-raw", b'{"participants"\x00: []}', 400, "invalid_json", None),
    ("whitespace-only", b"   \n ", 400, "invalid_json", None),
    ("nested-33", nested(33), 400, "invalid_json", None),
    ("nested-100", nested(100), 400, "invalid_json", None),
    ("nested-1000", nested(1000), 400, "invalid_json", None),
    ("nested-30000", nested(30000), 400, "invalid_json", None),
    ("nested-objects-5000", b'{"a":' * 5000 + b"1" + b"}" * 5000, 400, "invalid_json", None),
    ("nested-unclosed-20000", b"[" * 20000, 400, "invalid_json", None),
    ("nested-in-field", with_field("external_id", nested(500).decode()), 400, "invalid_json", None),
    ("nested-in-name", with_name(nested(64).decode()), 400, "invalid_json", None),
    ("nan", with_field("auto_admit", "NaN"), 400, "invalid_json", None),
    ("infinity", with_field("auto_admit", "Infinity"), 400, "invalid_json", None),
    ("minus-infinity", with_field("auto_admit", "-Infinity"), 400, "invalid_json", None),
    ("float-overflow", with_field("auto_admit", "1e400"), 400, "invalid_json", None),
    ("int-2-64", with_field("auto_admit", str(2**64)), 400, "invalid_json", None),
    ("int-minus-2-64", with_field("auto_admit", str(-(2**64))), 400, "invalid_json", None),
    ("int-5000-digits", with_field("auto_admit", "9" * 5000), 400, "invalid_json", None),
    ("float-5000-digits", with_field("auto_admit", "0." + "1" * 5000), 400, "invalid_json", None),
    ("duplicate-key", raw('{"participants": [], "participants": []}'), 400, "invalid_json", None),
    (
        "duplicate-key-nested",
        with_name('"A", "name": "B"'),
        400,
        "invalid_json",
        None,
    ),
    ("lone-high-surrogate-name", with_name('"\\ud800"'), 400, "invalid_json", None),
    ("lone-low-surrogate-name", with_name('"Al\\udfffex"'), 400, "invalid_json", None),
    ("lone-surrogate-key", with_field("\\ud800", "1"), 400, "invalid_json", None),
    ("lone-surrogate-in-list", with_field("x", '["\\udbff"]'), 400, "invalid_json", None),
    # -- JSON, but not the document's types (strict: never coerced) -----------------------
    ("top-null", b"null", 422, "validation_failed", None),
    ("top-true", b"true", 422, "validation_failed", None),
    ("top-zero", b"0", 422, "validation_failed", None),
    ("top-string", b'"participants"', 422, "validation_failed", None),
    ("top-array", b"[]", 422, "validation_failed", None),
    ("empty-object", {}, 422, "validation_failed", "/participants"),
    (
        "auto-admit-string-true",
        consult_body(auto_admit="true"),
        422,
        "validation_failed",
        "/auto_admit",
    ),
    ("auto-admit-one", consult_body(auto_admit=1), 422, "validation_failed", "/auto_admit"),
    ("auto-admit-zero", consult_body(auto_admit=0), 422, "validation_failed", "/auto_admit"),
    (
        "auto-admit-minus-zero",
        with_field("auto_admit", "-0.0"),
        422,
        "validation_failed",
        "/auto_admit",
    ),
    ("auto-admit-null", consult_body(auto_admit=None), 422, "validation_failed", "/auto_admit"),
    ("auto-admit-list", consult_body(auto_admit=[True]), 422, "validation_failed", "/auto_admit"),
    ("auto-admit-yes", consult_body(auto_admit="yes"), 422, "validation_failed", "/auto_admit"),
    (
        "participants-object",
        consult_body(participants={"a": 1}),
        422,
        "validation_failed",
        "/participants",
    ),
    (
        "participants-string",
        consult_body(participants="abc"),
        422,
        "validation_failed",
        "/participants",
    ),
    (
        "participants-number",
        consult_body(participants=3),
        422,
        "validation_failed",
        "/participants",
    ),
    (
        "participants-null",
        consult_body(participants=None),
        422,
        "validation_failed",
        "/participants",
    ),
    (
        "participants-empty",
        consult_body(participants=[]),
        422,
        "validation_failed",
        "/participants",
    ),
    (
        "participants-1000",
        consult_body(participants=PEOPLE * 333),
        422,
        "validation_failed",
        "/participants",
    ),
    (
        "participant-not-object",
        consult_body(participants=[1, 2, 3]),
        422,
        "validation_failed",
        "/participants/0",
    ),
    (
        "participant-null",
        consult_body(participants=[None, *PEOPLE[1:]]),
        422,
        "validation_failed",
        "/participants/0",
    ),
    (
        "name-number",
        consult_body(participants=[{"role": "client", "name": 7}, *PEOPLE[1:]]),
        422,
        "validation_failed",
        "/participants/0/name",
    ),
    (
        "name-list",
        consult_body(participants=[{"role": "client", "name": ["A"]}, *PEOPLE[1:]]),
        422,
        "validation_failed",
        "/participants/0/name",
    ),
    (
        "name-object",
        consult_body(participants=[{"role": "client", "name": {"a": "b"}}, *PEOPLE[1:]]),
        422,
        "validation_failed",
        "/participants/0/name",
    ),
    (
        "name-bool",
        consult_body(participants=[{"role": "client", "name": True}, *PEOPLE[1:]]),
        422,
        "validation_failed",
        "/participants/0/name",
    ),
    (
        "name-empty",
        consult_body(participants=[{"role": "client", "name": ""}, *PEOPLE[1:]]),
        422,
        "validation_failed",
        "/participants/0/name",
    ),
    (
        "name-nul",
        consult_body(participants=[{"role": "client", "name": "A\u0000B"}, *PEOPLE[1:]]),
        422,
        "validation_failed",
        "/participants/0/name",
    ),
    (
        "name-escape-seq",
        consult_body(participants=[{"role": "client", "name": "A\u001b[31mB"}, *PEOPLE[1:]]),
        422,
        "validation_failed",
        "/participants/0/name",
    ),
    (
        "name-rtl-override",
        consult_body(participants=[{"role": "client", "name": "A\u202eB"}, *PEOPLE[1:]]),
        422,
        "validation_failed",
        "/participants/0/name",
    ),
    (
        "name-zero-width",
        consult_body(participants=[{"role": "client", "name": "A\u200bB"}, *PEOPLE[1:]]),
        422,
        "validation_failed",
        "/participants/0/name",
    ),
    (
        "name-60k",
        consult_body(participants=[{"role": "client", "name": "x" * 60_000}, *PEOPLE[1:]]),
        422,
        "validation_failed",
        "/participants/0/name",
    ),
    (
        "role-number",
        consult_body(participants=[{"role": 1, "name": "A"}, *PEOPLE[1:]]),
        422,
        "validation_failed",
        "/participants/0/role",
    ),
    (
        "role-list",
        consult_body(participants=[{"role": ["client"], "name": "A"}, *PEOPLE[1:]]),
        422,
        "validation_failed",
        "/participants/0/role",
    ),
    (
        "role-upper",
        consult_body(participants=[{"role": "CLIENT", "name": "A"}, *PEOPLE[1:]]),
        422,
        "validation_failed",
        "/participants/0/role",
    ),
    (
        "role-admin",
        consult_body(participants=[{"role": "admin", "name": "A"}, *PEOPLE[1:]]),
        422,
        "validation_failed",
        "/participants/0/role",
    ),
    (
        "participant-extra",
        consult_body(participants=[{"role": "client", "name": "A", "id": "p_1"}, *PEOPLE[1:]]),
        422,
        "validation_failed",
        "/participants/0/id",
    ),
    (
        "unknown-top-field",
        consult_body(platform_id="pl_x"),
        422,
        "validation_failed",
        "/platform_id",
    ),
    ("unknown-status-field", consult_body(status="ended"), 422, "validation_failed", "/status"),
    (
        "start-number",
        consult_body(scheduled_start=1700000000),
        422,
        "validation_failed",
        "/scheduled_start",
    ),
    (
        "start-bool",
        consult_body(scheduled_start=True),
        422,
        "validation_failed",
        "/scheduled_start",
    ),
    (
        "start-garbage",
        consult_body(scheduled_start="tomorrow"),
        422,
        "validation_failed",
        "/scheduled_start",
    ),
    (
        "start-year-0",
        consult_body(scheduled_start="0000-01-01T00:00:00Z"),
        422,
        "validation_failed",
        "/scheduled_start",
    ),
    (
        "start-year-99999",
        consult_body(scheduled_start="99999-01-01T00:00:00Z"),
        422,
        "validation_failed",
        "/scheduled_start",
    ),
    (
        "start-naive",
        consult_body(scheduled_start="2026-12-01T15:00:00"),
        422,
        "validation_failed",
        "/scheduled_start",
    ),
    (
        "start-month-13",
        consult_body(scheduled_start="2026-13-01T15:00:00Z"),
        422,
        "validation_failed",
        "/scheduled_start",
    ),
    ("external-id-number", consult_body(external_id=5), 422, "validation_failed", "/external_id"),
    (
        "external-id-long",
        consult_body(external_id="x" * 201),
        422,
        "validation_failed",
        "/external_id",
    ),
    ("follows-number", consult_body(follows=5), 422, "validation_failed", "/follows"),
    ("follows-long", consult_body(follows="c_" + "x" * 100), 422, "validation_failed", "/follows"),
    ("brief-string", consult_body(brief="see notes"), 422, "validation_failed", "/brief"),
    ("brief-list", consult_body(brief=["x"]), 422, "validation_failed", "/brief"),
    (
        "brief-field-number",
        consult_body(brief={"question": 5}),
        422,
        "validation_failed",
        "/brief/question",
    ),
    (
        "brief-field-too-long",
        consult_body(brief={"question": "x" * 20_001}),
        422,
        "validation_failed",
        "/brief/question",
    ),
    (
        "brief-unknown-field",
        consult_body(brief={"diagnosis": "x"}),
        422,
        "validation_failed",
        "/brief/diagnosis",
    ),
    # -- too large ------------------------------------------------------------------------
    ("body-70k", consult_body(external_id="x" * 70_000), 413, "payload_too_large", None),
    ("body-1m-spaces", b" " * (1024 * 1024), 413, "payload_too_large", None),
]


@pytest.mark.parametrize(
    ("body", "status", "code", "location"),
    [pytest.param(b, s, c, loc, id=i) for i, b, s, c, loc in CREATE],
)
async def test_create_bodies(
    stage: Stage, body: Any, status: int, code: str, location: str | None
) -> None:
    before = await stage.snapshot()
    secret = stage.platform.secret
    if isinstance(body, bytes):
        answer = await stage.api.call(
            "POST", CONSULTS, bearer=secret, data=body, content_type="application/json"
        )
    else:
        answer = await stage.api.call("POST", CONSULTS, bearer=secret, json_body=body)
    refused(answer, status, code)
    if location is not None:
        assert location in [e["location"] for e in answer.body["errors"]], answer.body
    assert await stage.snapshot() == before
    await stage.still_serves()


CONTENT_TYPES = [
    ("text-plain", "text/plain"),
    ("form", "application/x-www-form-urlencoded"),
    ("multipart", "multipart/form-data; boundary=x"),
    ("json-patch", "application/json-patch+json"),
    ("problem-json", "application/problem+json"),
    ("xml", "application/xml"),
    ("octet-stream", "application/octet-stream"),
    ("garbage", "garbage"),
]


@pytest.mark.parametrize("content_type", [pytest.param(c, id=i) for i, c in CONTENT_TYPES])
async def test_wrong_content_types(stage: Stage, content_type: str) -> None:
    before = await stage.snapshot()
    answer = await stage.api.call(
        "POST",
        CONSULTS,
        bearer=stage.platform.secret,
        data=json.dumps(consult_body()).encode(),
        content_type=content_type,
    )
    refused(answer, 415, "unsupported_media_type")
    assert await stage.snapshot() == before
    await stage.still_serves()


AUTHORIZATION = [
    ("basic", "Basic dXNlcjpwYXNz", "api_key_missing"),
    ("bearer-empty", "Bearer ", "api_key_missing"),
    ("bearer-only", "Bearer", "api_key_missing"),
    ("no-scheme", "tsk_" + "A" * 43, "api_key_missing"),
    ("unknown-key", "Bearer tsk_" + "A" * 43, "api_key_invalid"),
    ("key-with-space", "Bearer tsk_AAA AAA", "api_key_invalid"),
    ("huge-key", "Bearer tsk_" + "A" * 6000, "api_key_invalid"),
    ("join-token-as-key", "join-token", "api_key_invalid"),
    ("unicode-key", "Bearer tsk_\u00e9\u00e9", "api_key_invalid"),
]


@pytest.mark.parametrize(
    ("header", "code"), [pytest.param(h, c, id=i) for i, h, c in AUTHORIZATION]
)
async def test_bad_api_credentials(stage: Stage, header: str, code: str) -> None:
    if header == "join-token":
        header = "Bearer " + stage.token("therapist")
    before = await stage.snapshot()
    answer = await stage.api.call(
        "POST",
        CONSULTS,
        json_body=consult_body(),
        headers={"Authorization": header.encode("utf-8").decode("latin-1")},
    )
    refused(answer, 401, code)
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert await stage.snapshot() == before
    await stage.still_serves()


IDEMPOTENCY = [
    ("empty", ""),
    ("space", "a b"),
    ("256-chars", "k" * 256),
    ("tab", "a\tb"),
    ("latin1", "caf\u00e9".encode().decode("latin-1")),
]


@pytest.mark.parametrize("key", [pytest.param(k, id=i) for i, k in IDEMPOTENCY])
async def test_bad_idempotency_keys(stage: Stage, key: str) -> None:
    before = await stage.snapshot()
    answer = await stage.api.call(
        "POST",
        CONSULTS,
        bearer=stage.platform.secret,
        json_body=consult_body(),
        headers={"Idempotency-Key": key},
        validate=False,  # the header's own schema refuses these: openapi-core would too
    )
    refused(answer, 422, "validation_failed")
    assert await stage.snapshot() == before
    await stage.still_serves()


MINT = [
    ("ttl-string", {"ttl_seconds": "600"}, 422, "validation_failed"),
    ("ttl-float", {"ttl_seconds": 600.0}, 422, "validation_failed"),
    ("ttl-float-frac", {"ttl_seconds": 600.5}, 422, "validation_failed"),
    ("ttl-bool", {"ttl_seconds": True}, 422, "validation_failed"),
    ("ttl-59", {"ttl_seconds": 59}, 422, "validation_failed"),
    ("ttl-negative", {"ttl_seconds": -600}, 422, "validation_failed"),
    ("ttl-31-days", {"ttl_seconds": 31 * 24 * 3600}, 422, "validation_failed"),
    ("ttl-2-63", {"ttl_seconds": 2**63 - 1}, 422, "validation_failed"),
    ("ttl-2-64", {"ttl_seconds": 2**64}, 400, "invalid_json"),
    ("ttl-list", {"ttl_seconds": [600]}, 422, "validation_failed"),
    ("unknown-field", {"role": "psychiatrist"}, 422, "validation_failed"),
    ("array", [], 422, "validation_failed"),
]


@pytest.mark.parametrize(
    ("body", "status", "code"), [pytest.param(b, s, c, id=i) for i, b, s, c in MINT]
)
async def test_mint_token_bodies(stage: Stage, body: Any, status: int, code: str) -> None:
    before = await stage.snapshot()
    path = f"{stage.consult_path}/participants/{stage.pid('client')}/tokens"
    answer = await stage.api.call("POST", path, bearer=stage.platform.secret, json_body=body)
    refused(answer, status, code)
    assert await stage.snapshot() == before
    await stage.still_serves()


QUERIES = [
    ("after-2-64", {"after": str(2**64)}),
    ("after-2-63", {"after": str(2**63)}),
    ("after-4300-digits", {"after": "9" * 4400}),
    ("after-negative", {"after": "-1"}),
    ("after-text", {"after": "abc"}),
    ("after-float", {"after": "1.5"}),
    ("after-empty", {"after": ""}),
    ("after-nul", {"after": "1\x00"}),
    ("limit-zero", {"limit": "0"}),
    ("limit-501", {"limit": "501"}),
    ("limit-2-64", {"limit": str(2**64)}),
    ("limit-nan", {"limit": "NaN"}),
    ("unknown-parameter", {"before": "1"}),
]


@pytest.mark.parametrize("query", [pytest.param(q, id=i) for i, q in QUERIES])
async def test_audit_queries(stage: Stage, query: dict[str, str]) -> None:
    before = await stage.snapshot()
    answer = await stage.api.call(
        "GET", stage.consult_path + "/audit", bearer=stage.platform.secret, query=query
    )
    refused(answer, 422, "validation_failed")
    assert any(e["location"].startswith("/query/") for e in answer.body["errors"])
    assert await stage.snapshot() == before
    await stage.still_serves()


async def test_plan_diff_query_too_long(stage: Stage) -> None:
    answer = await stage.api.call(
        "GET",
        stage.consult_path + "/plan/diff",
        bearer=stage.platform.secret,
        query={"against": "c_" + "x" * 100},
    )
    refused(answer, 422, "validation_failed")
    await stage.still_serves()


# Participant (join-token) bodies: the therapist's and the client's calls.
SESSION = [
    (
        "consent-attested-string",
        "client",
        "POST",
        "/session/consent",
        {"wording_version": "1", "scopes": ["session"], "attested": "true"},
        "/attested",
    ),
    (
        "consent-attested-one",
        "client",
        "POST",
        "/session/consent",
        {"wording_version": "1", "scopes": ["session"], "attested": 1},
        "/attested",
    ),
    (
        "consent-attested-minus-zero",
        "client",
        "POST",
        "/session/consent",
        raw('{"wording_version": "1", "scopes": ["session"], "attested": -0.0}'),
        "/attested",
    ),
    (
        "consent-scope-unknown",
        "client",
        "POST",
        "/session/consent",
        {"wording_version": "1", "scopes": ["everything"]},
        "/scopes/0",
    ),
    (
        "consent-scopes-empty",
        "client",
        "POST",
        "/session/consent",
        {"wording_version": "1", "scopes": []},
        "/scopes",
    ),
    (
        "consent-scopes-string",
        "client",
        "POST",
        "/session/consent",
        {"wording_version": "1", "scopes": "session"},
        "/scopes",
    ),
    (
        "consent-version-number",
        "client",
        "POST",
        "/session/consent",
        {"wording_version": 1, "scopes": ["session"]},
        "/wording_version",
    ),
    (
        "consent-version-long",
        "client",
        "POST",
        "/session/consent",
        {"wording_version": "1" * 33, "scopes": ["session"]},
        "/wording_version",
    ),
    (
        "consent-extra",
        "client",
        "POST",
        "/session/consent",
        {"wording_version": "1", "scopes": ["session"], "by": "therapist"},
        "/by",
    ),
    (
        "withdraw-scopes-number",
        "client",
        "POST",
        "/session/consent/withdraw",
        {"scopes": 1},
        "/scopes",
    ),
    ("withdraw-missing", "client", "POST", "/session/consent/withdraw", {}, "/scopes"),
    (
        "present-with-string",
        "therapist",
        "PUT",
        "/session/present-with",
        {"participant_ids": "p_1"},
        "/participant_ids",
    ),
    (
        "present-with-numbers",
        "therapist",
        "PUT",
        "/session/present-with",
        {"participant_ids": [1]},
        "/participant_ids/0",
    ),
    (
        "present-with-three",
        "therapist",
        "PUT",
        "/session/present-with",
        {"participant_ids": ["a", "b", "c"]},
        "/participant_ids",
    ),
    (
        "present-with-null",
        "therapist",
        "PUT",
        "/session/present-with",
        {"participant_ids": None},
        "/participant_ids",
    ),
    ("brief-number", "therapist", "PUT", "/session/brief", {"question": 1}, "/question"),
    ("brief-bool", "therapist", "PUT", "/session/brief", {"risks": False}, "/risks"),
    ("brief-unknown", "therapist", "PUT", "/session/brief", {"plan": "x"}, "/plan"),
    (
        "measure-answers-strings",
        "client",
        "POST",
        "/session/measures",
        {"instrument": "phq9", "answers": ["1"] * 9},
        "/answers/0",
    ),
    (
        "measure-answers-floats",
        "client",
        "POST",
        "/session/measures",
        {"instrument": "phq9", "answers": [1.0] * 9},
        "/answers/0",
    ),
    (
        "measure-answers-bools",
        "client",
        "POST",
        "/session/measures",
        {"instrument": "phq9", "answers": [True] * 9},
        "/answers/0",
    ),
    (
        "measure-answers-33",
        "client",
        "POST",
        "/session/measures",
        {"instrument": "phq9", "answers": [0] * 33},
        "/answers",
    ),
    (
        "measure-instrument-number",
        "client",
        "POST",
        "/session/measures",
        {"instrument": 9, "answers": [0] * 9},
        "/instrument",
    ),
    (
        "measure-instrument-long",
        "client",
        "POST",
        "/session/measures",
        {"instrument": "phq9" * 5, "answers": [0] * 9},
        "/instrument",
    ),
]


@pytest.mark.parametrize(
    ("role", "method", "suffix", "body", "location"),
    [pytest.param(r, m, s, b, loc, id=i) for i, r, m, s, b, loc in SESSION],
)
async def test_participant_bodies(
    stage: Stage, role: str, method: str, suffix: str, body: Any, location: str
) -> None:
    before = await stage.snapshot()
    path = stage.consult_path + suffix
    token = stage.token(role)
    if isinstance(body, bytes):
        answer = await stage.api.call(
            method, path, bearer=token, data=body, content_type="application/json"
        )
    else:
        answer = await stage.api.call(method, path, bearer=token, json_body=body)
    refused(answer, 422, "validation_failed")
    assert location in [e["location"] for e in answer.body["errors"]], answer.body
    assert await stage.snapshot() == before
    await stage.still_serves()


async def test_measure_answer_past_64_bits(stage: Stage) -> None:
    before = await stage.snapshot()
    answer = await stage.api.call(
        "POST",
        stage.consult_path + "/session/measures",
        bearer=stage.token("client"),
        data=raw('{"instrument": "phq9", "answers": [' + ",".join([str(2**70)] * 9) + "]}"),
        content_type="application/json",
    )
    refused(answer, 400, "invalid_json")
    assert await stage.snapshot() == before
    await stage.still_serves()


PATHS = [
    ("nul", "/api/v1/consults/c_%00x"),
    ("long-id", "/api/v1/consults/c_" + "x" * 300),
    ("dots", "/api/v1/consults/..%2F..%2Fetc"),
    ("unicode", "/api/v1/consults/c_%F0%9F%98%80"),
    ("invalid-utf8", "/api/v1/consults/c_%FF%FE"),
    ("space", "/api/v1/consults/c_%20x"),
    ("quote", "/api/v1/consults/c_'%20OR%201=1"),
    ("participant-nul", "/api/v1/consults/c_x/participants/p_%00/tokens"),
]


@pytest.mark.parametrize("path", [pytest.param(p, id=i) for i, p in PATHS])
async def test_malformed_path_ids(stage: Stage, path: str) -> None:
    before = await stage.snapshot()
    method = "POST" if path.endswith("/tokens") else "GET"
    answer = await stage.api.call(method, path, bearer=stage.platform.secret, validate=False)
    refused(answer, 404, "not_found")
    assert await stage.snapshot() == before
    await stage.still_serves()


METHODS = [
    ("patch-consults", "PATCH", "/api/v1/consults", "POST"),
    ("delete-consults", "DELETE", "/api/v1/consults", "POST"),
    ("put-consult", "PUT", "/consult", "GET"),
    ("delete-consult", "DELETE", "/consult", "GET"),
    ("get-end", "GET", "/consult/end", "POST"),
    ("put-tokens", "PUT", "/consult/participants/p_x/tokens", "DELETE"),
    ("post-audit", "POST", "/consult/audit", "GET"),
    ("post-session", "POST", "/consult/session", "GET"),
    ("delete-brief", "DELETE", "/consult/brief", "PUT"),
    ("patch-present-with", "PATCH", "/consult/session/present-with", "PUT"),
    ("post-healthz", "POST", "/healthz", "GET"),
    ("delete-openapi", "DELETE", "/api/v1/openapi.json", "GET"),
]


@pytest.mark.parametrize(
    ("method", "path", "allowed"), [pytest.param(m, p, a, id=i) for i, m, p, a in METHODS]
)
async def test_wrong_methods_name_the_allowed_ones(
    stage: Stage, method: str, path: str, allowed: str
) -> None:
    path = path.replace("/consult", stage.consult_path, 1) if path.startswith("/consult") else path
    before = await stage.snapshot()
    answer = await stage.api.call(method, path, bearer=stage.platform.secret, validate=False)
    refused(answer, 405, "method_not_allowed")
    assert allowed in {m.strip() for m in answer.headers["Allow"].split(",")}
    assert await stage.snapshot() == before
    await stage.still_serves()


async def test_huge_content_length_is_refused_before_the_body(stage: Stage) -> None:
    """A Content-Length far past the limit, with no body behind it: 413 at once."""
    before = await stage.snapshot()
    host, port = stage.client.server.host, stage.client.server.port
    import asyncio

    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(
            (
                f"POST {CONSULTS} HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: Bearer {stage.platform.secret}\r\n"
                "Content-Type: application/json\r\nContent-Length: 99999999999\r\n\r\n{"
            ).encode()
        )
        await writer.drain()
        async with asyncio.timeout(10):
            status_line = await reader.readline()
    finally:
        writer.close()
        await writer.wait_closed()
    assert status_line.split()[1] == b"413", status_line
    assert await stage.snapshot() == before
    await stage.still_serves()
