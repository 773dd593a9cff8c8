"""Join tokens presented by a participant: every way a token can be wrong gets its own code,
and nothing in the database changes."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import jwt
import pytest
from jwt.warnings import InsecureKeyLengthWarning

from server.consults.model import Actor
from server.ids import KeyId
from server.services import Services
from tests.apiclient import Api
from tests.conftest import PlatformKey, consult_body, new_platform, participant
from tests.databases import snapshot

DOCS = Path(__file__).resolve().parent.parent / "docs"


def claims_for(key: PlatformKey, consult: dict[str, Any], role: str) -> dict[str, Any]:
    now = time.time()
    p = participant(consult, role)
    return {
        "iss": key.key_id,
        "aud": "triad",
        "sub": p["id"],
        "consult": consult["id"],
        "role": role,
        "name": p["name"],
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": str(uuid.uuid4()),
    }


def sign(claims: dict[str, Any], secret: str, kid: str, alg: str = "HS256") -> str:
    with warnings.catch_warnings():
        # Signing with HS512 on purpose (to be refused) warns that the key is short for it.
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return jwt.encode(claims, secret, algorithm=alg, headers={"kid": kid})


def unsigned(claims: dict[str, Any], kid: str) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'kid': kid, 'typ': 'JWT'})}.{part(claims)}."


async def session(api: Api, consult_id: str, token: str | None) -> tuple[int, str | None]:
    answer = await api.call("GET", f"/api/v1/consults/{consult_id}/session", bearer=token)
    return answer.status, answer.code


async def test_a_good_token_opens_the_session(
    api: Api, platform: PlatformKey, consult: dict[str, Any]
) -> None:
    token = sign(claims_for(platform, consult, "client"), platform.secret, platform.key_id)
    answer = await api.call("GET", f"/api/v1/consults/{consult['id']}/session", bearer=token)
    assert answer.status == 200
    assert answer.body["you"]["role"] == "client"
    assert answer.body["you"]["name"] == "Alex Rivera"
    assert answer.body["consult"]["status"] == "scheduled"


def _modified(**changes: Any) -> Any:
    def build(c: dict[str, Any]) -> dict[str, Any]:
        out = {**c, **{k: v(c) if callable(v) else v for k, v in changes.items()}}
        return {k: v for k, v in out.items() if v is not _DROP}

    return build


_DROP = object()
CLAIM_CASES: list[Any] = [
    pytest.param(
        _modified(exp=lambda c: c["iat"] - 120, nbf=lambda c: c["iat"] - 600),
        "token_expired",
        401,
        id="expired",
    ),
    pytest.param(
        _modified(nbf=lambda c: c["iat"] + 600, exp=lambda c: c["iat"] + 1200),
        "token_not_yet_valid",
        401,
        id="not-yet-valid",
    ),
    pytest.param(_modified(aud="livekit"), "token_invalid", 401, id="wrong-audience"),
    pytest.param(_modified(iss="key_someone_else"), "token_invalid", 401, id="issuer-not-kid"),
    pytest.param(_modified(role="therapist"), "token_invalid", 401, id="role-not-the-participants"),
    pytest.param(_modified(role="admin"), "token_invalid", 401, id="unknown-role"),
    pytest.param(_modified(sub="p_nobody"), "token_invalid", 401, id="unknown-participant"),
    pytest.param(_modified(name=""), "token_invalid", 401, id="empty-name"),
    pytest.param(_modified(exp="tomorrow"), "token_invalid", 401, id="exp-not-a-number"),
    *[
        pytest.param(_modified(**{claim: _DROP}), "token_invalid", 401, id=f"no-{claim}")
        for claim in ("exp", "nbf", "iat", "aud", "iss", "sub", "jti", "consult", "role", "name")
    ],
]


SEATS = ("client", "therapist", "psychiatrist", "guardian", "interpreter")


async def test_each_optional_seat_holds_its_own_role_only(
    api: Api, services: Services, platform: PlatformKey, seated_consult: dict[str, Any]
) -> None:
    """A guardian's or interpreter's token opens their own seat; the same participant claiming
    any other role, another participant claiming theirs, or a role a consult does not seat is
    `token_invalid`, and nothing changes."""
    consult_id = seated_consult["id"]
    for role in ("guardian", "interpreter"):
        own = sign(claims_for(platform, seated_consult, role), platform.secret, platform.key_id)
        answer = await api.call("GET", f"/api/v1/consults/{consult_id}/session", bearer=own)
        assert answer.status == 200, answer.body
        assert answer.body["you"]["role"] == role
    before = await snapshot(services.db)
    for holder in SEATS:
        for claimed in (*SEATS, "Guardian", "parent", ""):
            if claimed == holder:
                continue
            forged = claims_for(platform, seated_consult, holder) | {"role": claimed}
            token = sign(forged, platform.secret, platform.key_id)
            assert await session(api, consult_id, token) == (401, "token_invalid"), (
                holder,
                claimed,
            )
    assert await snapshot(services.db) == before


async def test_a_consult_without_optional_seats_has_none_to_claim(
    api: Api, platform: PlatformKey, consult: dict[str, Any]
) -> None:
    for role in ("guardian", "interpreter"):
        forged = claims_for(platform, consult, "client") | {"role": role}
        token = sign(forged, platform.secret, platform.key_id)
        assert await session(api, consult["id"], token) == (401, "token_invalid"), role


@pytest.mark.parametrize(("change", "code", "status"), CLAIM_CASES)
async def test_bad_claims(
    api: Api,
    services: Services,
    platform: PlatformKey,
    consult: dict[str, Any],
    change: Any,
    code: str,
    status: int,
) -> None:
    token = sign(change(claims_for(platform, consult, "client")), platform.secret, platform.key_id)
    before = await snapshot(services.db)
    assert await session(api, consult["id"], token) == (status, code)
    assert await snapshot(services.db) == before


async def test_bad_signatures_and_headers(
    api: Api, services: Services, platform: PlatformKey, consult: dict[str, Any]
) -> None:
    claims = claims_for(platform, consult, "client")
    good = sign(claims, platform.secret, platform.key_id)
    header, payload, signature = good.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    cases = {
        "wrong-secret": sign(claims, "tsk_" + "x" * 43, platform.key_id),
        "tampered-payload": f"{header}.{base64.urlsafe_b64encode(b'{}').decode()}.{signature}",
        "tampered-signature": f"{header}.{payload}.{flipped}",
        "alg-none": unsigned(claims, platform.key_id),
        "alg-none-no-signature": unsigned(claims, platform.key_id)[:-1],
        "alg-hs512": sign(claims, platform.secret, platform.key_id, alg="HS512"),
        "unknown-kid": sign(claims, platform.secret, "key_unknown"),
        "no-kid": jwt.encode(claims, platform.secret, algorithm="HS256"),
        "garbage": "not a token",
        "three-dots": "a.b.c",
        "too-long": "eyJ" + "a" * 5000,
    }
    before = await snapshot(services.db)
    for name, token in cases.items():
        assert await session(api, consult["id"], token) == (401, "token_invalid"), name
    assert await session(api, consult["id"], None) == (401, "token_invalid")
    assert await session(api, consult["id"], platform.secret) == (401, "token_invalid")
    assert await snapshot(services.db) == before


async def test_token_for_another_consult(
    api: Api, services: Services, platform: PlatformKey, consult: dict[str, Any]
) -> None:
    other = await api.call(
        "POST", "/api/v1/consults", bearer=platform.secret, json_body=consult_body()
    )
    token = participant(consult, "client")["join"]["token"]
    before = await snapshot(services.db)
    assert await session(api, other.body["id"], token) == (403, "token_wrong_consult")
    # A token that claims the other consult but names this consult's participant.
    forged = claims_for(platform, consult, "client") | {"consult": other.body["id"]}
    forged_token = sign(forged, platform.secret, platform.key_id)
    assert await session(api, other.body["id"], forged_token) == (401, "token_invalid")
    assert await snapshot(services.db) == before


async def test_another_platforms_key_cannot_sign_for_this_consult(
    api: Api, services: Services, platform: PlatformKey, consult: dict[str, Any]
) -> None:
    intruder = await new_platform(services, "Intruder")
    token = sign(claims_for(intruder, consult, "client"), intruder.secret, intruder.key_id)
    before = await snapshot(services.db)
    assert await session(api, consult["id"], token) == (401, "token_invalid")
    assert await snapshot(services.db) == before


async def test_revoked_signing_key(
    api: Api, services: Services, platform: PlatformKey, consult: dict[str, Any]
) -> None:
    token = participant(consult, "therapist")["join"]["token"]
    assert await session(api, consult["id"], token) == (200, None)
    await services.keys.revoke(KeyId(platform.key_id), Actor("operator", "test"))
    before = await snapshot(services.db)
    assert await session(api, consult["id"], token) == (401, "token_invalid")
    assert await snapshot(services.db) == before


async def test_revocation_catches_offline_tokens_issued_before_it(
    api: Api, services: Services, platform: PlatformKey, consult: dict[str, Any]
) -> None:
    client = participant(consult, "client")
    early = claims_for(platform, consult, "client")
    early_token = sign(early, platform.secret, platform.key_id)
    tokens_path = f"/api/v1/consults/{consult['id']}/participants/{client['id']}/tokens"
    revoked = await api.call("DELETE", tokens_path, bearer=platform.secret)
    assert revoked.status == 200
    before = await snapshot(services.db)
    assert await session(api, consult["id"], early_token) == (401, "token_revoked")
    assert await snapshot(services.db) == before
    later = claims_for(platform, consult, "client") | {"iat": time.time() + 0.5}
    assert await session(api, consult["id"], sign(later, platform.secret, platform.key_id)) == (
        200,
        None,
    )


def _offline_example() -> str:
    text = (DOCS / "api.md").read_text()
    match = re.search(r"```python offline-token\n(.*?)```", text, re.DOTALL)
    assert match, "docs/api.md has no offline-token example"
    return match.group(1)


async def test_documented_offline_minting_works(
    api: Api, platform: PlatformKey, consult: dict[str, Any]
) -> None:
    """The five-line example in docs/api.md, run as written, yields a working join link."""
    client = participant(consult, "client")
    namespace: dict[str, Any] = {
        "KEY_ID": platform.key_id,
        "SECRET": platform.secret,
        "CONSULT_ID": consult["id"],
        "PARTICIPANT_ID": client["id"],
        "BASE_URL": "http://127.0.0.1:8080",
    }
    example = _offline_example()
    assert len([line for line in example.splitlines() if line.strip()]) <= 6
    exec(example, namespace)  # noqa: S102 - our own documentation
    join_url: str = namespace["join_url"]
    assert join_url.startswith(f"http://127.0.0.1:8080/c/{consult['id']}#token=")
    token = join_url.split("#token=", 1)[1]
    assert await session(api, consult["id"], token) == (200, None)
