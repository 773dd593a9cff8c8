"""Alembic environment. Runs on the connection handed in by `server.db.migrate`, or, when
Alembic's own command line is used to write a revision, on TRIAD_DATABASE_URL."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import create_async_engine

from server.db.models import Base
from server.settings import Settings

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # SQLite's batch mode copies a table, drops the original and renames the copy; with
        # rows referring to it the drop fails the foreign-key check (alembic's documented
        # case). The pragma only takes before the run's first write, so it is set here for the
        # whole run rather than by each migration (a later revision's step would write first),
        # and every key is checked at the end. `server.db.migrate` drops the connection after.
        connection.execute(text("PRAGMA foreign_keys = OFF"))
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=sqlite,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
        if sqlite:
            broken = connection.execute(text("PRAGMA foreign_key_check")).all()
            if broken:
                raise RuntimeError(f"the migration broke {len(broken)} foreign keys")


async def _run_from_settings() -> None:
    engine = create_async_engine(Settings().effective_database_url)
    async with engine.begin() as conn:
        await conn.run_sync(_run)
    await engine.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_run_from_settings())
