"""Hostile join tokens, over REST (`GET .../session`) and over the socket's `connect`: each is
refused with its token code (the socket's `connect_error` carries the same code), nothing is
stored, and the stage's own tokens still work."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import jwt
import pytest
import pytest_asyncio
import socketio

from server.api.context import SERVICES
from tests.conftest import PlatformKey, consult_body, new_platform, participant
from tests.hostile.conftest import CONSULTS, Stage, refused

pytestmark = pytest.mark.asyncio(loop_scope="module")


class Others:
    """Another platform, and another consult of this platform."""

    def __init__(self, platform: PlatformKey, consult: dict[str, Any], foreign: dict[str, Any]):
        self.platform = platform
        self.consult = consult
        self.foreign = foreign


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def others(stage: Stage) -> AsyncIterator[Others]:
    platform = await new_platform(stage.client.app[SERVICES], "Other Health")
    mine = await stage.api.call(
        "POST", CONSULTS, bearer=stage.platform.secret, json_body=consult_body()
    )
    foreign = await stage.api.call(
        "POST", CONSULTS, bearer=platform.secret, json_body=consult_body()
    )
    assert mine.status == foreign.status == 201
    yield Others(platform, mine.body, foreign.body)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any] | bytes, payload: dict[str, Any] | bytes, secret: str) -> str:
    """A token assembled by hand, signed HS256 with `secret` (so only the content is hostile)."""
    import hashlib
    import hmac

    head = header if isinstance(header, bytes) else json.dumps(header).encode()
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signing_input = f"{b64(head)}.{b64(body)}"
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def claims(stage: Stage, who: str = "therapist", **overrides: Any) -> dict[str, Any]:
    now = time.time()
    person = participant(stage.consult, who)
    base: dict[str, Any] = {
        "iss": stage.platform.key_id,
        "sub": person["id"],
        "consult": stage.consult["id"],
        "role": who,
        "name": person["name"],
        "iat": now,
        "nbf": now - 5,
        "exp": now + 600,
        "jti": secrets.token_urlsafe(16),
        "aud": "triad",
    }
    for name, value in overrides.items():
        if value is DROP:
            base.pop(name)
        else:
            base[name] = value
    return base


DROP = object()


def signed(stage: Stage, others: Others, **overrides: Any) -> str:
    header = {"alg": "HS256", "typ": "JWT", "kid": stage.platform.key_id}
    return forge(header, claims(stage, **overrides), stage.platform.secret)


Maker = Callable[[Stage, Others], str]


def _unsigned(stage: Stage, others: Others) -> str:
    head = b64(json.dumps({"alg": "none", "kid": stage.platform.key_id}).encode())
    return f"{head}.{b64(json.dumps(claims(stage)).encode())}."


def _header(**fields: Any) -> Maker:
    def make(stage: Stage, others: Others) -> str:
        header: dict[str, Any] = {"alg": "HS256", "kid": stage.platform.key_id}
        header.update(fields)
        header = {k: v for k, v in header.items() if v is not DROP}
        return forge(header, claims(stage), stage.platform.secret)

    return make


def _claims(**overrides: Any) -> Maker:
    return lambda stage, others: signed(stage, others, **overrides)


def _raw_payload(text: str) -> Maker:
    def make(stage: Stage, others: Others) -> str:
        header = {"alg": "HS256", "kid": stage.platform.key_id}
        body = json.dumps(claims(stage))[:-1] + ", " + text + "}"
        return forge(header, body.encode("utf-8", "surrogatepass"), stage.platform.secret)

    return make


def _nested_header(depth: int) -> Maker:
    def make(stage: Stage, others: Others) -> str:
        head = b'{"alg": "HS256", "kid": "' + stage.platform.key_id.encode() + b'", "x": '
        head += b"[" * depth + b"]" * depth + b"}"
        return forge(head, claims(stage), stage.platform.secret)

    return make


def _wrong_key(stage: Stage, others: Others) -> str:
    header = {"alg": "HS256", "kid": stage.platform.key_id}
    return forge(header, claims(stage), "tsk_" + secrets.token_urlsafe(32))


def _another_platform(stage: Stage, others: Others) -> str:
    """Signed by the other platform's own key, naming this platform's consult."""
    header = {"alg": "HS256", "kid": others.platform.key_id}
    body = claims(stage, iss=others.platform.key_id)
    return forge(header, body, others.platform.secret)


def _another_platforms_consult(stage: Stage, others: Others) -> str:
    person = participant(others.foreign, "therapist")
    return signed(stage, others, consult=others.foreign["id"], sub=person["id"])


def _another_consult(stage: Stage, others: Others) -> str:
    """A valid token of this platform's other consult, used on the stage's consult."""
    token: str = participant(others.consult, "therapist")["join"]["token"]
    return token


def _other_consults_participant(stage: Stage, others: Others) -> str:
    return signed(stage, others, sub=participant(others.consult, "therapist")["id"])


def _wrong_role(stage: Stage, others: Others) -> str:
    return signed(stage, others, role="psychiatrist")


def _pyjwt(algorithm: str) -> Maker:
    def make(stage: Stage, others: Others) -> str:
        return jwt.encode(
            claims(stage),
            stage.platform.secret + "x" * 64,
            algorithm=algorithm,
            headers={"kid": stage.platform.key_id},
        )

    return make


LATER = time.time() + 3600
# (id, maker, REST status and code, socket code)
CASES: list[tuple[str, Maker | str, int, str]] = [
    ("empty", "", 401, "token_invalid"),
    ("garbage", "not-a-jwt", 401, "token_invalid"),
    ("two-segments", "a.b", 401, "token_invalid"),
    ("four-segments", "a.b.c.d", 401, "token_invalid"),
    ("bad-base64", "@@@.@@@.@@@", 401, "token_invalid"),
    ("non-ascii", "\u00e9.\u00e9.\u00e9", 401, "token_invalid"),
    ("huge-5000", "a" * 5000, 401, "token_invalid"),
    ("huge-dotted-4000", ("a" * 1333 + ".") * 2 + "a" * 1333, 401, "token_invalid"),
    ("alg-none", _unsigned, 401, "token_invalid"),
    ("alg-hs512", _pyjwt("HS512"), 401, "token_invalid"),
    ("alg-hs384", _pyjwt("HS384"), 401, "token_invalid"),
    ("alg-rs256-header", _header(alg="RS256"), 401, "token_invalid"),
    ("alg-missing", _header(alg=DROP), 401, "token_invalid"),
    ("alg-list", _header(alg=["HS256"]), 401, "token_invalid"),
    ("kid-missing", _header(kid=DROP), 401, "token_invalid"),
    ("kid-unknown", _header(kid="k_nobody"), 401, "token_invalid"),
    ("kid-number", _header(kid=7), 401, "token_invalid"),
    ("kid-huge", _header(kid="k" * 2000), 401, "token_invalid"),
    ("kid-nul", _header(kid="k_\u0000"), 401, "token_invalid"),
    ("kid-lone-surrogate", _header(kid="k_\ud800"), 401, "token_invalid"),
    ("header-nested-3000", _nested_header(1000), 401, "token_invalid"),
    (
        "header-not-object",
        lambda s, o: forge(b"[1]", claims(s), s.platform.secret),
        401,
        "token_invalid",
    ),
    (
        "payload-not-object",
        lambda s, o: forge({"alg": "HS256", "kid": s.platform.key_id}, b'"x"', s.platform.secret),
        401,
        "token_invalid",
    ),
    ("payload-nested", _raw_payload('"x": ' + "[" * 800 + "]" * 800), 401, "token_invalid"),
    ("payload-duplicate-sub", _raw_payload('"sub": "p_other"'), 401, "token_invalid"),
    ("payload-nan", _raw_payload('"x": NaN'), 401, "token_invalid"),
    ("payload-int-2-64", _raw_payload('"x": ' + str(2**64)), 401, "token_invalid"),
    ("wrong-key", _wrong_key, 401, "token_invalid"),
    ("another-platforms-key", _another_platform, 401, "token_invalid"),
    ("another-platforms-consult", _another_platforms_consult, 403, "token_wrong_consult"),
    ("another-consults-token", _another_consult, 403, "token_wrong_consult"),
    ("another-consults-participant", _other_consults_participant, 401, "token_invalid"),
    ("wrong-role", _wrong_role, 401, "token_invalid"),
    (
        "expired",
        _claims(exp=time.time() - 3600, nbf=time.time() - 7200, iat=time.time() - 7200),
        401,
        "token_expired",
    ),
    ("not-yet-valid", _claims(nbf=LATER, exp=LATER + 600), 401, "token_not_yet_valid"),
    ("exp-1e308", _claims(exp=1e308), 401, "token_invalid"),
    ("exp-year-10000", _claims(exp=253_402_300_800), 401, "token_invalid"),
    ("exp-2-63", _claims(exp=2**63 - 1), 401, "token_invalid"),
    ("exp-string", _claims(exp="tomorrow"), 401, "token_invalid"),
    ("exp-bool", _claims(exp=True), 401, "token_invalid"),
    ("exp-list", _claims(exp=[LATER]), 401, "token_invalid"),
    ("iat-1e308", _claims(iat=1e308), 401, "token_invalid"),
    ("iat-negative", _claims(iat=-1e18), 401, "token_invalid"),
    ("nbf-after-exp", _claims(nbf=time.time() - 5, exp=time.time() - 6), 401, "token_invalid"),
    ("aud-wrong", _claims(aud="someone-else"), 401, "token_invalid"),
    ("aud-list", _claims(aud=["triad", "other"]), 401, "token_invalid"),
    ("aud-missing", _claims(aud=DROP), 401, "token_invalid"),
    ("exp-missing", _claims(exp=DROP), 401, "token_invalid"),
    ("nbf-missing", _claims(nbf=DROP), 401, "token_invalid"),
    ("iat-missing", _claims(iat=DROP), 401, "token_invalid"),
    ("sub-missing", _claims(sub=DROP), 401, "token_invalid"),
    ("jti-missing", _claims(jti=DROP), 401, "token_invalid"),
    ("consult-missing", _claims(consult=DROP), 401, "token_invalid"),
    ("role-missing", _claims(role=DROP), 401, "token_invalid"),
    ("name-missing", _claims(name=DROP), 401, "token_invalid"),
    ("iss-other", _claims(iss="k_other"), 401, "token_invalid"),
    ("name-lone-surrogate", _claims(name="Sam \ud800"), 401, "token_invalid"),
    ("name-nul", _claims(name="Sam\u0000"), 401, "token_invalid"),
    ("name-escape", _claims(name="Sam\u001b[2J"), 401, "token_invalid"),
    ("name-101", _claims(name="S" * 101), 401, "token_invalid"),
    ("name-number", _claims(name=7), 401, "token_invalid"),
    ("name-empty", _claims(name=""), 401, "token_invalid"),
    ("role-unknown", _claims(role="admin"), 401, "token_invalid"),
    ("role-list", _claims(role=["therapist"]), 401, "token_invalid"),
    ("role-number", _claims(role=1), 401, "token_invalid"),
    ("sub-unknown", _claims(sub="p_nobody"), 401, "token_invalid"),
    ("sub-nul", _claims(sub="p_\u0000"), 401, "token_invalid"),
    ("sub-number", _claims(sub=5), 401, "token_invalid"),
    ("sub-huge", _claims(sub="p" * 200), 401, "token_invalid"),
    ("jti-lone-surrogate", _claims(jti="\udfff"), 401, "token_invalid"),
    ("consult-nul", _claims(consult="c_\u0000"), 401, "token_invalid"),
]


def _token(maker: Maker | str, stage: Stage, others: Others) -> str:
    return maker if isinstance(maker, str) else maker(stage, others)


@pytest.mark.parametrize(
    ("maker", "status", "code"), [pytest.param(m, s, c, id=i) for i, m, s, c in CASES]
)
async def test_over_rest(
    stage: Stage, others: Others, maker: Maker | str, status: int, code: str
) -> None:
    token = _token(maker, stage, others)
    before = await stage.snapshot()
    answer = await stage.api.call(
        "GET",
        stage.consult_path + "/session",
        headers={
            "Authorization": "Bearer " + token.encode("utf-8", "surrogatepass").decode("latin-1")
        },
    )
    refused(answer, status, code)
    assert await stage.snapshot() == before
    await stage.still_serves()


@pytest.mark.parametrize(
    ("maker", "status", "code"), [pytest.param(m, s, c, id=i) for i, m, s, c in CASES]
)
async def test_over_the_socket(
    stage: Stage, others: Others, maker: Maker | str, status: int, code: str
) -> None:
    token = _token(maker, stage, others)
    before = await stage.snapshot()
    socket = stage.room_client("therapist", token or "x")
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await socket.connect({"token": token, "consult_id": stage.consult["id"]})
        # Another consult's token, offered for this consult, is refused like over REST; with
        # no consult named, the token's own consult decides (covered by the REST case).
        assert socket.connect_error["data"]["code"] == code, socket.connect_error
    finally:
        await socket.close()
    assert await stage.snapshot() == before
    await stage.socket_still_serves()
