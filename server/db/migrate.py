"""Alembic, driven from code on the app's own async engine (no alembic.ini needed to run it)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"


class Sealer(Protocol):
    """What a data migration that seals PHI needs of the key ring (`server.crypto.KeyRing`)."""

    def seal(self, plaintext: bytes, aad: bytes) -> bytes: ...

    def open(self, sealed: bytes, aad: bytes) -> bytes: ...


def config(connection: Connection | None = None, keyring: Sealer | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    if keyring is not None:
        cfg.attributes["keyring"] = keyring
    return cfg


def head() -> str:
    heads = ScriptDirectory.from_config(config()).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"migrations have {len(heads)} heads; merge them")
    return heads[0]


def revisions(connection: Connection) -> tuple[str | None, str]:
    current = MigrationContext.configure(connection).get_current_revision()
    return current, head()


async def upgrade(engine: AsyncEngine, keyring: Sealer | None = None) -> None:
    """Bring the database to head. Migrations that seal rows in place (0005) need the key ring;
    an empty database migrates without one."""
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.upgrade(config(c, keyring), "head"))
    finally:
        # A migration may switch a connection's checks off (SQLite foreign keys, 0005): drop
        # the pooled connections so the app's next one starts with the engine's own settings.
        await engine.dispose()


async def downgrade(engine: AsyncEngine, revision: str, keyring: Sealer | None = None) -> None:
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.downgrade(config(c, keyring), revision))
    finally:
        await engine.dispose()
