"""The platform REST API on a real database: the paths a platform takes when all goes well."""

from __future__ import annotations

import asyncio
from typing import Any

import jwt
from yarl import URL

from server.services import Services
from tests.apiclient import Api
from tests.conftest import PlatformKey, consult_body, participant, seated_consult_body


async def test_create_consult_returns_three_working_join_links(
    api: Api, platform: PlatformKey, consult: dict[str, Any]
) -> None:
    assert consult["status"] == "scheduled"
    assert [p["role"] for p in consult["participants"]] == ["client", "therapist", "psychiatrist"]
    for p in consult["participants"]:
        join = p["join"]
        url = URL(join["join_url"])
        # The token rides in the fragment, never in the path or query that servers log.
        assert url.path == f"/c/{consult['id']}"
        assert not url.query
        assert url.fragment == f"token={join['token']}"
        header = jwt.get_unverified_header(join["token"])
        assert header == {"alg": "HS256", "kid": platform.key_id, "typ": "JWT"}
        claims = jwt.decode(join["token"], platform.secret, algorithms=["HS256"], audience="triad")
        assert claims["sub"] == p["id"] == join["participant_id"]
        assert claims["consult"] == consult["id"]
        assert claims["role"] == p["role"]
        assert claims["name"] == p["name"]
        assert claims["iss"] == platform.key_id
        assert claims["jti"] == join["jti"]
        assert claims["nbf"] <= claims["iat"] < claims["exp"]
        session = await api.call(
            "GET", f"/api/v1/consults/{consult['id']}/session", bearer=join["token"]
        )
        assert session.status == 200
        assert session.body["you"]["role"] == p["role"]
        assert len(session.body["participants"]) == 3
        assert session.body["consult"]["client_is_minor"] is False


async def test_create_consult_with_the_optional_seats(
    api: Api, platform: PlatformKey, seated_consult: dict[str, Any]
) -> None:
    """A minor's consult with a guardian and an interpreter: five seats, each its own link and
    token naming its role; the consult says the client is a minor."""
    assert seated_consult["client_is_minor"] is True
    roles = [p["role"] for p in seated_consult["participants"]]
    assert roles == ["client", "therapist", "psychiatrist", "guardian", "interpreter"]
    tokens = {p["join"]["token"] for p in seated_consult["participants"]}
    assert len(tokens) == 5
    for p in seated_consult["participants"]:
        claims = jwt.decode(
            p["join"]["token"], platform.secret, algorithms=["HS256"], audience="triad"
        )
        assert (claims["sub"], claims["role"]) == (p["id"], p["role"])
        session = await api.call(
            "GET", f"/api/v1/consults/{seated_consult['id']}/session", bearer=p["join"]["token"]
        )
        assert session.status == 200, session.body
        assert (session.body["you"]["participant_id"], session.body["you"]["role"]) == (
            p["id"],
            p["role"],
        )
        assert len(session.body["participants"]) == 5
        # Each seat's page learns the client is a minor (whose consent is the guardian's) and
        # who the guardian and interpreter are.
        assert session.body["consult"]["client_is_minor"] is True
        assert [q["role"] for q in session.body["participants"]] == roles
    read = await api.call("GET", f"/api/v1/consults/{seated_consult['id']}", bearer=platform.secret)
    assert read.body["client_is_minor"] is True
    assert [p["role"] for p in read.body["participants"]] == roles


async def test_each_optional_seat_alone(api: Api, platform: PlatformKey) -> None:
    interpreter_only = consult_body()
    interpreter_only["participants"].append({"role": "interpreter", "name": "Lucia Moreno"})
    guardian_only = seated_consult_body()
    guardian_only["participants"] = guardian_only["participants"][:4]
    for body, extra in ((interpreter_only, "interpreter"), (guardian_only, "guardian")):
        answer = await api.call("POST", "/api/v1/consults", bearer=platform.secret, json_body=body)
        assert answer.status == 201, answer.body
        assert [p["role"] for p in answer.body["participants"]] == [
            "client",
            "therapist",
            "psychiatrist",
            extra,
        ]
        assert answer.body["client_is_minor"] is (extra == "guardian")


async def test_a_minor_without_a_guardian_and_the_default(
    api: Api, platform: PlatformKey, consult: dict[str, Any]
) -> None:
    assert consult["client_is_minor"] is False
    answer = await api.call(
        "POST",
        "/api/v1/consults",
        bearer=platform.secret,
        json_body=consult_body(client_is_minor=True),
    )
    assert answer.status == 201, answer.body
    assert answer.body["client_is_minor"] is True
    assert len(answer.body["participants"]) == 3
    minor = answer.body["participants"][0]
    session = await api.call(
        "GET",
        f"/api/v1/consults/{answer.body['id']}/session",
        bearer=minor["join"]["token"],
    )
    assert (session.body["you"]["role"], session.body["consult"]["client_is_minor"]) == (
        "client",
        True,
    )


async def test_read_consult(api: Api, platform: PlatformKey, consult: dict[str, Any]) -> None:
    answer = await api.call("GET", f"/api/v1/consults/{consult['id']}", bearer=platform.secret)
    assert answer.status == 200
    assert answer.body["id"] == consult["id"]
    assert {p["name"] for p in answer.body["participants"]} == {
        "Alex Rivera",
        "Sam Okafor",
        "Priya Nair",
    }
    assert all("join" not in p for p in answer.body["participants"])


async def test_create_consult_with_schedule_and_auto_admit(api: Api, platform: PlatformKey) -> None:
    body = consult_body(
        scheduled_start="2026-12-01T15:00:00+01:00",
        scheduled_end="2026-12-01T16:00:00+01:00",
        auto_admit=True,
        external_id="appt-4411",
    )
    answer = await api.call("POST", "/api/v1/consults", bearer=platform.secret, json_body=body)
    assert answer.status == 201
    assert answer.body["auto_admit"] is True
    assert answer.body["external_id"] == "appt-4411"
    assert answer.body["scheduled_start"] == "2026-12-01T14:00:00Z"
    assert answer.body["scheduled_end"] == "2026-12-01T15:00:00Z"


async def test_end_is_idempotent_and_recorded_once(
    api: Api, platform: PlatformKey, consult: dict[str, Any]
) -> None:
    path = f"/api/v1/consults/{consult['id']}"
    first = await api.call("POST", path + "/end", bearer=platform.secret)
    second = await api.call("POST", path + "/end", bearer=platform.secret)
    assert first.status == second.status == 200
    assert first.body["status"] == "ended"
    assert second.body["ended_at"] == first.body["ended_at"]
    audit = await api.call("GET", path + "/audit", bearer=platform.secret)
    assert [e["action"] for e in audit.body["events"]].count("consult.ended") == 1


async def test_racing_ends_record_one_end(
    api: Api, platform: PlatformKey, consult: dict[str, Any]
) -> None:
    path = f"/api/v1/consults/{consult['id']}"
    answers = await asyncio.gather(
        *(api.call("POST", path + "/end", bearer=platform.secret) for _ in range(5))
    )
    assert {a.status for a in answers} == {200}
    assert len({a.body["ended_at"] for a in answers}) == 1
    audit = await api.call("GET", path + "/audit", bearer=platform.secret)
    assert [e["action"] for e in audit.body["events"]].count("consult.ended") == 1


async def test_ended_consult_refuses_joins_and_new_tokens(
    api: Api, platform: PlatformKey, consult: dict[str, Any]
) -> None:
    path = f"/api/v1/consults/{consult['id']}"
    client = participant(consult, "client")
    await api.call("POST", path + "/end", bearer=platform.secret)
    session = await api.call("GET", path + "/session", bearer=client["join"]["token"])
    assert (session.status, session.code) == (409, "consult_ended")
    minted = await api.call(
        "POST", f"{path}/participants/{client['id']}/tokens", bearer=platform.secret
    )
    assert (minted.status, minted.code) == (409, "consult_ended")


async def test_mint_fresh_token(api: Api, platform: PlatformKey, consult: dict[str, Any]) -> None:
    therapist = participant(consult, "therapist")
    path = f"/api/v1/consults/{consult['id']}/participants/{therapist['id']}/tokens"
    answer = await api.call("POST", path, bearer=platform.secret, json_body={"ttl_seconds": 600})
    assert answer.status == 201
    claims = jwt.decode(
        answer.body["token"], platform.secret, algorithms=["HS256"], audience="triad"
    )
    assert 599 <= claims["exp"] - claims["iat"] <= 601
    assert claims["jti"] != therapist["join"]["jti"]
    no_body = await api.call("POST", path, bearer=platform.secret)
    assert no_body.status == 201


async def test_revoke_refuses_old_tokens_and_accepts_new_ones(
    api: Api, platform: PlatformKey, consult: dict[str, Any]
) -> None:
    client = participant(consult, "client")
    base = f"/api/v1/consults/{consult['id']}"
    tokens_path = f"{base}/participants/{client['id']}/tokens"
    revoked = await api.call("DELETE", tokens_path, bearer=platform.secret)
    assert revoked.status == 200
    assert revoked.body["participant_id"] == client["id"]
    old = await api.call("GET", base + "/session", bearer=client["join"]["token"])
    assert (old.status, old.code) == (401, "token_revoked")
    # Minted straight after the revocation, in the same second: must still work.
    fresh = await api.call("POST", tokens_path, bearer=platform.secret)
    assert fresh.status == 201
    session = await api.call("GET", base + "/session", bearer=fresh.body["token"])
    assert session.status == 200
    # Other participants' tokens are untouched.
    therapist = participant(consult, "therapist")
    other = await api.call("GET", base + "/session", bearer=therapist["join"]["token"])
    assert other.status == 200


async def test_audit_trail_records_each_change_without_secrets(
    api: Api, platform: PlatformKey, consult: dict[str, Any]
) -> None:
    base = f"/api/v1/consults/{consult['id']}"
    client = participant(consult, "client")
    await api.call("POST", f"{base}/participants/{client['id']}/tokens", bearer=platform.secret)
    await api.call("DELETE", f"{base}/participants/{client['id']}/tokens", bearer=platform.secret)
    await api.call("POST", base + "/end", bearer=platform.secret)
    answer = await api.call("GET", base + "/audit", bearer=platform.secret)
    actions = [e["action"] for e in answer.body["events"]]
    assert actions == [
        "consult.created",
        *["token.minted"] * 3,
        "token.minted",
        "tokens.revoked",
        "consult.ended",
    ]
    assert all(e["actor_type"] == "platform" for e in answer.body["events"])
    assert all(e["actor_id"] == platform.key_id for e in answer.body["events"])
    text = str(answer.body)
    for p in consult["participants"]:
        assert p["join"]["token"] not in text
        assert p["name"] not in text
    assert platform.secret not in text


async def test_audit_trail_pages(api: Api, platform: PlatformKey, consult: dict[str, Any]) -> None:
    base = f"/api/v1/consults/{consult['id']}/audit"
    seen: list[int] = []
    after = 0
    while True:
        page = await api.call(
            "GET", base, bearer=platform.secret, query={"after": str(after), "limit": "2"}
        )
        assert page.status == 200
        seen += [e["id"] for e in page.body["events"]]
        if page.body["next_after"] is None:
            break
        after = page.body["next_after"]
    assert len(seen) == 4  # created + three tokens
    assert seen == sorted(seen)


async def test_platforms_see_only_their_own_consults(
    api: Api, services: Services, consult: dict[str, Any]
) -> None:
    from tests.conftest import new_platform

    other = await new_platform(services, "Other Clinic")
    base = f"/api/v1/consults/{consult['id']}"
    client = participant(consult, "client")
    for method, path in [
        ("GET", base),
        ("POST", base + "/end"),
        ("GET", base + "/audit"),
        ("POST", f"{base}/participants/{client['id']}/tokens"),
        ("DELETE", f"{base}/participants/{client['id']}/tokens"),
    ]:
        answer = await api.call(method, path, bearer=other.secret)
        assert (answer.status, answer.code) == (404, "consult_not_found"), (method, path)


async def test_idempotent_create_replays_the_same_consult(
    api: Api, services: Services, platform: PlatformKey
) -> None:
    headers_key = {"Idempotency-Key": "appt-4411-create"}
    first = await api.call(
        "POST",
        "/api/v1/consults",
        bearer=platform.secret,
        json_body=consult_body(),
        headers=headers_key,
    )
    again = await api.call(
        "POST",
        "/api/v1/consults",
        bearer=platform.secret,
        json_body=consult_body(),
        headers=headers_key,
    )
    assert first.status == again.status == 201
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.body["id"] == first.body["id"]
    first_ids = [p["id"] for p in first.body["participants"]]
    assert [p["id"] for p in again.body["participants"]] == first_ids
    # Both sets of links work: the first may already be on its way to the participants.
    for answer in (first, again):
        token = participant(answer.body, "client")["join"]["token"]
        session = await api.call(
            "GET", f"/api/v1/consults/{first.body['id']}/session", bearer=token
        )
        assert session.status == 200
    from sqlalchemy import func, select

    from server.db.models import Consult

    async with services.db.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Consult)) == 1


async def test_racing_retries_with_one_key_create_one_consult(
    api: Api, platform: PlatformKey
) -> None:
    answers = await asyncio.gather(
        *(
            api.call(
                "POST",
                "/api/v1/consults",
                bearer=platform.secret,
                json_body=consult_body(),
                headers={"Idempotency-Key": "race-1"},
            )
            for _ in range(4)
        )
    )
    assert {a.status for a in answers} == {201}
    assert len({a.body["id"] for a in answers}) == 1
    assert sum(1 for a in answers if "Idempotent-Replayed" not in a.headers) == 1


async def test_idempotency_keys_belong_to_one_platform(
    api: Api, services: Services, platform: PlatformKey
) -> None:
    from tests.conftest import new_platform

    other = await new_platform(services, "Other Clinic")
    key = {"Idempotency-Key": "shared-name"}
    mine = await api.call(
        "POST", "/api/v1/consults", bearer=platform.secret, json_body=consult_body(), headers=key
    )
    theirs = await api.call(
        "POST", "/api/v1/consults", bearer=other.secret, json_body=consult_body(), headers=key
    )
    assert mine.status == theirs.status == 201
    assert mine.body["id"] != theirs.body["id"]
    assert "Idempotent-Replayed" not in theirs.headers
