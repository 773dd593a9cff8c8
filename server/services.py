"""The long-lived services, opened and closed together by the app and by the command line."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from redis.asyncio import Redis

from .consults.access import ParticipantAccess
from .consults.platforms import PlatformKeys
from .consults.service import ConsultService
from .crypto import KeyRing
from .db.engine import Database
from .settings import Settings


@dataclass(frozen=True)
class Services:
    db: Database
    redis: Redis | None
    consults: ConsultService
    keys: PlatformKeys
    access: ParticipantAccess


@asynccontextmanager
async def open_services(
    settings: Settings, keyring: KeyRing, clock: Callable[[], datetime]
) -> AsyncIterator[Services]:
    db = Database(settings.effective_database_url)
    redis: Redis | None = None
    try:
        await db.require_migrated()
        if settings.redis_url:
            redis = Redis.from_url(settings.redis_url)
        keys = PlatformKeys(db, keyring, clock)
        yield Services(
            db=db,
            redis=redis,
            keys=keys,
            consults=ConsultService(
                db,
                public_base_url=settings.base_url,
                token_ttl=timedelta(seconds=settings.join_token_ttl_seconds),
                clock=clock,
            ),
            access=ParticipantAccess(db, keys, settings.token_leeway_seconds),
        )
    finally:
        if redis is not None:
            await redis.aclose()
        await db.close()
