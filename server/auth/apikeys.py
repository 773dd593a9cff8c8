"""Platform API key secrets.

A platform holds a key id (public, the JWT `kid`) and a secret. The secret is the Bearer
credential for the REST API and the HS256 key for join tokens the platform mints itself. The
server keeps a SHA-256 digest to recognise Bearer calls (the secret is 256 random bits, so a fast
hash is enough: there is nothing to brute-force) and, because HMAC verification needs the secret
itself, a copy sealed with the server's encryption key. A copied database alone yields neither.
"""

from __future__ import annotations

import hashlib
import re
import secrets

SECRET_PREFIX = "tsk_"
_SECRET_BYTES = 32
_SECRET_PATTERN = re.compile(r"^tsk_[A-Za-z0-9_-]{43}$")


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(_SECRET_BYTES)


def is_well_formed(secret: str) -> bool:
    return bool(_SECRET_PATTERN.fullmatch(secret))


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()
