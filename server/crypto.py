"""Sealing of secrets and clinical text at rest with AES-256-GCM.

A sealed value is `kid` + nonce + ciphertext; the key id travels with the data so keys can be
rotated: the first key in the ring seals, every key in the ring opens. The caller passes an
`aad` (associated data) naming what the value belongs to, so a ciphertext copied onto another
row does not open there.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import ConfigError

_NONCE_BYTES = 12
_KEY_BYTES = 32
_VERSION = b"\x01"


class SealError(Exception):
    """A sealed value does not open: tampered, wrong key, or wrong associated data."""


@dataclass(frozen=True)
class EncryptionKey:
    kid: str
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not self.kid or not self.kid.isascii() or len(self.kid) > 32 or ":" in self.kid:
            raise ConfigError("an encryption key id must be 1-32 ASCII characters without ':'")
        if len(self.secret) != _KEY_BYTES:
            raise ConfigError(f"encryption key {self.kid!r} must be {_KEY_BYTES} bytes")


class KeyRing:
    def __init__(self, keys: list[EncryptionKey]) -> None:
        if not keys:
            raise ConfigError("the encryption key ring is empty")
        self._active = keys[0]
        self._by_kid = {key.kid: AESGCM(key.secret) for key in keys}
        if len(self._by_kid) != len(keys):
            raise ConfigError("two encryption keys share one key id")

    @classmethod
    def parse(cls, spec: str) -> KeyRing:
        """Parse `kid:base64key[,kid:base64key...]`."""
        keys = []
        for part in spec.split(","):
            kid, sep, encoded = part.strip().partition(":")
            if not sep:
                raise ConfigError("TRIAD_ENCRYPTION_KEYS entries are written kid:base64key")
            try:
                secret = base64.b64decode(encoded, validate=True)
            except binascii.Error as exc:
                raise ConfigError(f"encryption key {kid!r} is not valid base64") from exc
            keys.append(EncryptionKey(kid, secret))
        return cls(keys)

    @property
    def active_kid(self) -> str:
        return self._active.kid

    @property
    def kids(self) -> tuple[str, ...]:
        """Every key id of the ring, the active one first."""
        return tuple(self._by_kid)

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        ciphertext = self._by_kid[self._active.kid].encrypt(nonce, plaintext, aad)
        return kid_header(self._active.kid) + nonce + ciphertext

    def open(self, sealed: bytes, aad: bytes) -> bytes:
        if len(sealed) < 2 or sealed[:1] != _VERSION:
            raise SealError("unknown sealed-value format")
        kid_len = sealed[1]
        kid = sealed[2 : 2 + kid_len].decode("ascii", errors="replace")
        body = sealed[2 + kid_len :]
        aead = self._by_kid.get(kid)
        if aead is None:
            raise SealError(f"no key {kid!r} in the ring")
        try:
            return aead.decrypt(body[:_NONCE_BYTES], body[_NONCE_BYTES:], aad)
        except InvalidTag as exc:
            raise SealError("sealed value does not open") from exc


def kid_header(kid: str) -> bytes:
    """The bytes every value sealed under `kid` starts with: a database can select the values
    of one key by prefix without opening any."""
    encoded = kid.encode()
    return _VERSION + bytes([len(encoded)]) + encoded


def sealed_kid(sealed: bytes) -> str | None:
    """The key id a sealed value names, read without opening it; None if it is not one."""
    if len(sealed) < 2 or sealed[:1] != _VERSION or len(sealed) < 2 + sealed[1]:
        return None
    return sealed[2 : 2 + sealed[1]].decode("ascii", errors="replace")


def generate_key_spec(kid: str = "k1") -> str:
    """A fresh `kid:base64key` entry for TRIAD_ENCRYPTION_KEYS."""
    return f"{kid}:{base64.b64encode(secrets.token_bytes(_KEY_BYTES)).decode()}"


def development_keyring(data_dir: Path) -> KeyRing:
    """Load, or create once, a key kept beside the development database (mode 0600)."""
    path = data_dir / "dev-encryption-key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        spec = generate_key_spec("dev1")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first: use theirs
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(spec + "\n")
    return KeyRing.parse(path.read_text().strip())
