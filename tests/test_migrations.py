"""Migrations: the server refuses an unmigrated database, `migrate` brings it to head, the
models match what the migrations build, and the migration runs down and up again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect

from server.app import keyring_for, utc_now
from server.db import migrate
from server.db.engine import Database
from server.db.models import Base
from server.errors import ConfigError
from server.services import open_services
from tests.conftest import BACKENDS, make_settings
from tests.databases import PostgresFactory


@pytest.fixture(params=BACKENDS)
async def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    factory: PostgresFactory = request.getfixturevalue("postgres")
    async with factory.database(migrated=False) as url:
        yield url


async def test_server_refuses_an_unmigrated_database(
    tmp_path: Path, empty_database_url: str
) -> None:
    settings = make_settings(tmp_path, empty_database_url)
    with pytest.raises(ConfigError, match="run `triad migrate`"):
        async with open_services(settings, keyring_for(settings), utc_now):
            pass


async def test_a_missing_sqlite_file_is_named_and_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "triad.db"
    settings = make_settings(tmp_path, f"sqlite+aiosqlite:///{missing}")
    with pytest.raises(ConfigError, match="run `triad migrate`") as raised:
        async with open_services(settings, keyring_for(settings), utc_now):
            pass
    assert str(missing) in str(raised.value)
    assert not missing.parent.exists()


async def test_an_unreachable_database_is_named_without_its_password(tmp_path: Path) -> None:
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    url = "postgresql+asyncpg://triad:hunter2@127.0.0.1:9/triad"
    settings = make_settings(tmp_path, url)
    with pytest.raises(ConfigError, match="cannot open the postgresql database") as raised:
        async with open_services(settings, keyring_for(settings), utc_now):
            pass
    assert "hunter2" not in str(raised.value)


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


def _downgrade_to_base(connection: Connection) -> None:
    command.downgrade(migrate.config(connection), "base")


async def test_migrations_build_what_the_models_declare(empty_database_url: str) -> None:
    db = Database(empty_database_url)
    try:
        await migrate.upgrade(db.engine)
        await db.require_migrated()
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
        async with db.engine.begin() as conn:
            await conn.run_sync(_downgrade_to_base)
        async with db.engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert tables <= {"alembic_version"}
        with pytest.raises(ConfigError):
            await db.require_migrated()
        await migrate.upgrade(db.engine)
        await db.require_migrated()
    finally:
        await db.close()
