"""Join tokens: HS256 JWTs signed with the platform's secret, `kid` naming the key.

Verification is in two steps because the key is chosen by the token's own header: first
`read_key_id` (no trust placed in anything but the key id and the pinned algorithm), then the
caller looks the key up and calls `verify`, which checks signature, audience, issuer and times.
Whether the participant, consult and revocation state agree is the caller's business (it needs the
database); this module stays pure.
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import asdict, dataclass
from typing import Any

import jwt

from .. import jsonlimits
from ..errors import ErrorCode, TriadError
from ..ids import ConsultId, KeyId, ParticipantId, TokenId
from .roles import Role

AUDIENCE = "triad"
ALGORITHM = "HS256"
MAX_NAME_LENGTH = 100
MAX_TOKEN_CHARS = 4096
# Times are seconds since 1970 up to the end of year 9999: what a datetime can hold. Past it
# (`exp: 1e308`) a token would be accepted here and overflow wherever its times are used.
MAX_TIMESTAMP = 253_402_300_799
# A JWT's header and payload are flat objects: any nesting past this is not a join token.
_MAX_JSON_DEPTH = 4
_REQUIRED = ["exp", "nbf", "iat", "aud", "iss", "sub", "jti"]


def _invalid(message: str) -> TriadError:
    return TriadError(ErrorCode.TOKEN_INVALID, message)


@dataclass(frozen=True)
class JoinClaims:
    iss: KeyId
    sub: ParticipantId
    consult: ConsultId
    role: Role
    name: str
    iat: float
    nbf: float
    exp: float
    jti: TokenId
    aud: str = AUDIENCE

    def __post_init__(self) -> None:
        for claim in ("iss", "sub", "consult", "jti"):
            value = getattr(self, claim)
            if not isinstance(value, str) or not value or len(value) > 128:
                raise ValueError(f"claim {claim!r} must be a non-empty string")
            _printable(claim, value)
        if not isinstance(self.name, str) or not 0 < len(self.name) <= MAX_NAME_LENGTH:
            raise ValueError(f"claim 'name' must be 1-{MAX_NAME_LENGTH} characters")
        _printable("name", self.name)
        if not isinstance(self.role, str):
            raise ValueError("claim 'role' must be a string")
        Role(self.role)  # raises ValueError on an unknown role
        for claim in ("iat", "nbf", "exp"):
            value = getattr(self, claim)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"claim {claim!r} must be a number")
            if not math.isfinite(value) or not 0 <= value <= MAX_TIMESTAMP:
                raise ValueError(f"claim {claim!r} must be a time between 1970 and 9999")
        if self.exp <= self.nbf:
            raise ValueError("claim 'exp' must be after 'nbf'")
        if self.aud != AUDIENCE:
            raise ValueError(f"claim 'aud' must be {AUDIENCE!r}")

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> JoinClaims:
        try:
            return cls(
                iss=KeyId(payload["iss"]),
                sub=ParticipantId(payload["sub"]),
                consult=ConsultId(payload["consult"]),
                role=payload["role"],
                name=payload["name"],
                iat=payload["iat"],
                nbf=payload["nbf"],
                exp=payload["exp"],
                jti=TokenId(payload["jti"]),
                aud=payload["aud"],
            )
        except KeyError as exc:
            raise _invalid(f"the join token lacks the {exc.args[0]!r} claim") from None
        except (ValueError, TypeError) as exc:
            raise _invalid(f"the join token has a bad claim: {exc}") from None


def _printable(claim: str, value: str) -> None:
    """Valid UTF-8 (no lone surrogate) and no control characters: these strings reach logs,
    the database and other participants' screens."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"claim {claim!r} is not valid UTF-8") from None
    if any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in value):
        raise ValueError(f"claim {claim!r} holds control characters")


def _check_segments(token: str) -> None:
    """The header and payload decode to bounded JSON (PyJWT's json.loads would recurse through
    any nesting and hand back lone surrogates and 1e999 as they come)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise _invalid("the join token is malformed")
    for segment in parts[:2]:
        try:
            raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
            jsonlimits.loads(raw, max_depth=_MAX_JSON_DEPTH)
        except (binascii.Error, ValueError):
            raise _invalid("the join token is malformed") from None


def mint(claims: JoinClaims, secret: str) -> str:
    payload = asdict(claims)
    payload["role"] = str(claims.role)
    return jwt.encode(payload, secret, algorithm=ALGORITHM, headers={"kid": claims.iss})


def read_key_id(token: str) -> KeyId:
    """The `kid` of a token whose header is well formed and pins HS256; nothing is trusted yet."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        raise _invalid("the join token is missing or too long")
    if not token.isascii():
        raise _invalid("the join token is malformed")
    _check_segments(token)
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise _invalid("the join token is malformed") from None
    if header.get("alg") != ALGORITHM:
        raise _invalid(f"the join token must be signed with {ALGORITHM}")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > 128 or not kid.isprintable():
        raise _invalid("the join token has no 'kid' header")
    return KeyId(kid)


def verify(token: str, *, key_id: KeyId, secret: str, leeway: float) -> JoinClaims:
    read_key_id(token)  # the same bounds, whichever the caller called first
    # Signature, audience and issuer first, then the claims' types and ranges (`exp: 1e308`,
    # `exp: true`, a lone surrogate: `token_invalid`), and only then PyJWT's time checks, so a
    # time past any calendar is never read as merely "expired" or "not yet valid".
    claims = JoinClaims.from_payload(_decode(token, key_id, secret, leeway, check_times=False))
    _decode(token, key_id, secret, leeway, check_times=True)
    return claims


def _decode(
    token: str, key_id: KeyId, secret: str, leeway: float, *, check_times: bool
) -> dict[str, Any]:
    options: jwt.types.Options = {
        "require": _REQUIRED,
        "verify_exp": check_times,
        "verify_nbf": check_times,
        "verify_iat": check_times,
    }
    try:
        payload: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=key_id,
            leeway=leeway,
            options=options,
        )
    except jwt.ExpiredSignatureError:
        raise TriadError(ErrorCode.TOKEN_EXPIRED, "the join token has expired") from None
    except jwt.ImmatureSignatureError:
        raise TriadError(ErrorCode.TOKEN_NOT_YET_VALID, "the join token is not valid yet") from None
    except jwt.MissingRequiredClaimError as exc:
        raise _invalid(f"the join token lacks the {exc.claim!r} claim") from None
    except jwt.InvalidAudienceError:
        raise _invalid(f"the join token's audience is not {AUDIENCE!r}") from None
    except jwt.InvalidIssuerError:
        raise _invalid("the join token's issuer does not match its key") from None
    except jwt.InvalidSignatureError:
        raise _invalid("the join token's signature does not verify") from None
    except jwt.InvalidTokenError:
        raise _invalid("the join token is not valid") from None
    return payload
