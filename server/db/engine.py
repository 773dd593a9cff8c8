"""The database handle: engine, session factory, readiness and migration checks."""

from __future__ import annotations

from pathlib import Path
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

    def sqlite_path(self) -> Path | None:
        """The file of an SQLite database, None for an in-memory one or another backend."""
        url = self.engine.url
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return None
        return Path(url.database)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def require_migrated(self) -> None:
        """Refuse to serve a database whose schema is not at the newest migration."""
        path = self.sqlite_path()
        if path is not None and not path.exists():
            # Connecting would create an empty file as a side effect; say what to do instead.
            raise ConfigError(f"there is no database at {path} yet: run `triad migrate`")
        try:
            async with self.engine.connect() as conn:
                current, head = await conn.run_sync(migrate.revisions)
        except (DBAPIError, OSError) as exc:
            # Drivers raise socket errors unwrapped. The URL is not repeated: it may carry a
            # password.
            cause = exc.orig if isinstance(exc, DBAPIError) else exc
            raise ConfigError(
                f"cannot open the {self.engine.dialect.name} database "
                f"({type(cause).__name__}); check TRIAD_DATABASE_URL, then run `triad migrate`"
            ) from exc
        if current != head:
            where = f"revision {current}" if current else "no schema"
            raise ConfigError(
                f"the database is not migrated ({where}, need {head}): run `triad migrate`"
            )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer; busy_timeout waits out a writer instead of
    # failing; foreign keys are off in SQLite unless asked for. synchronous=FULL fsyncs the WAL
    # on every commit: an acknowledged notes edit must survive a power cut, not only a crashed
    # process (NORMAL keeps only the latter). The notes log's group commit pays it per batch.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()
