"""Join tokens: HS256 JWTs signed with the platform's secret, `kid` naming the key.

Verification is in two steps because the key is chosen by the token's own header: first
`read_key_id` (no trust placed in anything but the key id and the pinned algorithm), then the
caller looks the key up and calls `verify`, which checks signature, audience, issuer and times.
Whether the participant, consult and revocation state agree is the caller's business (it needs the
database); this module stays pure.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import jwt

from ..errors import ErrorCode, TriadError
from ..ids import ConsultId, KeyId, ParticipantId, TokenId
from .roles import Role

AUDIENCE = "triad"
ALGORITHM = "HS256"
MAX_NAME_LENGTH = 100
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
        if not isinstance(self.name, str) or not 0 < len(self.name) <= MAX_NAME_LENGTH:
            raise ValueError(f"claim 'name' must be 1-{MAX_NAME_LENGTH} characters")
        Role(self.role)  # raises ValueError on an unknown role
        for claim in ("iat", "nbf", "exp"):
            value = getattr(self, claim)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"claim {claim!r} must be a number")
            if not math.isfinite(value):
                raise ValueError(f"claim {claim!r} must be finite")
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
                role=Role(payload["role"]),
                name=payload["name"],
                iat=payload["iat"],
                nbf=payload["nbf"],
                exp=payload["exp"],
                jti=TokenId(payload["jti"]),
                aud=payload["aud"],
            )
        except KeyError as exc:
            raise _invalid(f"the join token lacks the {exc.args[0]!r} claim") from None
        except ValueError as exc:
            raise _invalid(f"the join token has a bad claim: {exc}") from None


def mint(claims: JoinClaims, secret: str) -> str:
    payload = asdict(claims)
    payload["role"] = str(claims.role)
    return jwt.encode(payload, secret, algorithm=ALGORITHM, headers={"kid": claims.iss})


def read_key_id(token: str) -> KeyId:
    """The `kid` of a token whose header is well formed and pins HS256; nothing is trusted yet."""
    if not isinstance(token, str) or not token or len(token) > 4096:
        raise _invalid("the join token is missing or too long")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise _invalid("the join token is malformed") from None
    if header.get("alg") != ALGORITHM:
        raise _invalid(f"the join token must be signed with {ALGORITHM}")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise _invalid("the join token has no 'kid' header")
    return KeyId(kid)


def verify(token: str, *, key_id: KeyId, secret: str, leeway: float) -> JoinClaims:
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=key_id,
            leeway=leeway,
            options={"require": _REQUIRED},
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
    return JoinClaims.from_payload(payload)
