"""The database handle: engine, session factory, readiness and migration checks."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from ..errors import ConfigError
from . import migrate


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: AsyncEngine = create_async_engine(url, pool_pre_ping=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.engine, expire_on_commit=False
        )

    async def close(self) -> None:
        await self.engine.dispose()

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def require_migrated(self) -> None:
        """Refuse to serve a database whose schema is not at the newest migration."""
        try:
            async with self.engine.connect() as conn:
                current, head = await conn.run_sync(migrate.revisions)
        except DBAPIError as exc:
            # The URL is not repeated: it may carry a password.
            raise ConfigError(
                f"cannot open the {self.engine.dialect.name} database "
                f"({type(exc.orig).__name__}); check TRIAD_DATABASE_URL, then run `triad migrate`"
            ) from exc
        if current != head:
            where = f"revision {current}" if current else "no schema"
            raise ConfigError(
                f"the database is not migrated ({where}, need {head}): run `triad migrate`"
            )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer; busy_timeout waits out a writer instead of
    # failing; foreign keys are off in SQLite unless asked for.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
