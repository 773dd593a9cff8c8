"""Platforms and their API keys: creation, Bearer authentication, and signing-key lookup."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from ..auth import apikeys
from ..crypto import KeyRing
from ..db.engine import Database
from ..db.models import ApiKey, Platform
from ..db.sealing import SealedColumn
from ..errors import ErrorCode, TriadError
from ..ids import KeyId, PlatformId, new_key_id, new_platform_id
from . import audit
from .access_events import AccessChange, AccessEvent, AccessEvents, LocalAccessEvents
from .audit import AuditAction
from .model import Actor, PlatformCaller


@dataclass(frozen=True)
class CreatedKey:
    platform_id: PlatformId
    platform_name: str
    key_id: KeyId
    secret: str = field(repr=False)


@dataclass(frozen=True)
class SigningKey:
    platform_id: PlatformId
    key_id: KeyId
    secret: str = field(repr=False)


def _aad(key_id: str) -> bytes:
    return b"api_key:" + key_id.encode()


SEALED_COLUMNS = (SealedColumn("api_keys", "secret_sealed", ("id",), _aad),)


class PlatformKeys:
    def __init__(
        self,
        db: Database,
        keyring: KeyRing,
        clock: Callable[[], datetime],
        events: AccessEvents | None = None,
    ) -> None:
        self._db = db
        self._events: AccessEvents = events or LocalAccessEvents()
        self._keyring = keyring
        self._clock = clock

    @property
    def keyring(self) -> KeyRing:
        return self._keyring

    async def create(self, platform_name: str, actor: Actor) -> CreatedKey:
        """A new key for the named platform, creating the platform on first use."""
        now = self._clock()
        key_id = new_key_id()
        secret = apikeys.new_secret()
        async with self._db.sessions.begin() as session:
            platform = await session.scalar(select(Platform).where(Platform.name == platform_name))
            if platform is None:
                platform = Platform(id=new_platform_id(), name=platform_name, created_at=now)
                session.add(platform)
                await session.flush()
            session.add(
                ApiKey(
                    id=key_id,
                    platform_id=platform.id,
                    secret_digest=apikeys.digest(secret),
                    secret_sealed=self._keyring.seal(secret.encode(), _aad(key_id)),
                    created_at=now,
                )
            )
            audit.record(
                session,
                at=now,
                actor=actor,
                action=AuditAction.API_KEY_CREATED,
                platform_id=platform.id,
                details={"key_id": key_id},
            )
        return CreatedKey(PlatformId(platform.id), platform.name, key_id, secret)

    async def revoke(self, key_id: KeyId, actor: Actor) -> bool:
        now = self._clock()
        async with self._db.sessions.begin() as session:
            key = await session.get(ApiKey, key_id)
            if key is None or key.revoked_at is not None:
                return False
            key.revoked_at = now
            audit.record(
                session,
                at=now,
                actor=actor,
                action=AuditAction.API_KEY_REVOKED,
                platform_id=key.platform_id,
                details={"key_id": key_id},
            )
        # After the commit: every process closes the sockets whose token this key signed.
        await self._events.publish(
            AccessEvent(AccessChange.API_KEY_REVOKED, now.timestamp(), key_id=key_id)
        )
        return True

    async def authenticate(self, secret: str) -> PlatformCaller:
        """The platform whose live API key this Bearer secret is."""
        if not apikeys.is_well_formed(secret):
            raise TriadError(ErrorCode.API_KEY_INVALID, "the API key is unknown or revoked")
        digest = apikeys.digest(secret)
        async with self._db.sessions() as session:
            key = await session.scalar(select(ApiKey).where(ApiKey.secret_digest == digest))
        if key is None or key.revoked_at is not None:
            raise TriadError(ErrorCode.API_KEY_INVALID, "the API key is unknown or revoked")
        return PlatformCaller(PlatformId(key.platform_id), KeyId(key.id), secret)

    async def signing_key(self, key_id: KeyId) -> SigningKey | None:
        """The secret that verifies join tokens with this `kid`; None if unknown or revoked."""
        async with self._db.sessions() as session:
            key = await session.get(ApiKey, key_id)
        if key is None or key.revoked_at is not None:
            return None
        secret = self._keyring.open(key.secret_sealed, _aad(key.id)).decode()
        return SigningKey(PlatformId(key.platform_id), key_id, secret)
