"""Real databases for tests: a migrated template per backend, copied fresh for every test."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
from alembic import command
from sqlalchemy import Connection, func, select, text
from sqlalchemy.engine import URL, make_url

from server.db import migrate
from server.db.engine import Database
from server.db.models import Base

POSTGRES_ENV = "TRIAD_TEST_DATABASE_URL"
REDIS_ENV = "TRIAD_TEST_REDIS_URL"
# CI sets this so that a missing service fails the run instead of skipping its tests.
REQUIRE_ENV = "TRIAD_TEST_REQUIRE_SERVICES"


def services_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0") or os.environ.get("CI") == "true"


async def _migrate(url: str) -> None:
    db = Database(url)
    try:
        await migrate.upgrade(db.engine)
    finally:
        await db.close()


def run_blocking(coro: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine to completion from sync code, even when called inside a running loop
    (session fixtures are set up lazily, from within async tests)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, coro).result()


def sqlite_template(directory: Path) -> Path:
    path = directory / "template.db"
    run_blocking(_migrate(f"sqlite+aiosqlite:///{path}"))
    return path


def sqlite_copy(template: Path, directory: Path) -> str:
    path = directory / "triad.db"
    shutil.copyfile(template, path)
    return f"sqlite+aiosqlite:///{path}"


def _pg_args(url: URL) -> dict[str, object]:
    return {
        "host": url.host,
        "port": url.port or 5432,
        "user": url.username,
        "password": url.password,
        "database": url.database or "postgres",
    }


async def _pg_admin(admin: URL, *statements: str) -> None:
    conn = await asyncpg.connect(**_pg_args(admin))  # type: ignore[arg-type]
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


class PostgresFactory:
    """Creates one migrated template database per run and a fresh copy of it per test."""

    def __init__(self, admin_url: str) -> None:
        self.admin = make_url(admin_url)
        self.template = f"triad_tpl_{secrets.token_hex(4)}"

    def url_for(self, name: str) -> str:
        return self.admin.set(database=name).render_as_string(hide_password=False)

    def create_template(self) -> None:
        run_blocking(_pg_admin(self.admin, f'CREATE DATABASE "{self.template}"'))
        run_blocking(_migrate(self.url_for(self.template)))

    def drop_template(self) -> None:
        run_blocking(
            _pg_admin(self.admin, f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)')
        )

    @asynccontextmanager
    async def database(self, *, migrated: bool) -> AsyncIterator[str]:
        """A fresh database for one test (a copy of the migrated template, or empty), dropped
        afterwards; yields its URL."""
        name = f"triad_t_{secrets.token_hex(6)}"
        template = f' TEMPLATE "{self.template}"' if migrated else ""
        await _pg_admin(self.admin, f'CREATE DATABASE "{name}"{template}')
        try:
            yield self.url_for(name)
        finally:
            await _pg_admin(self.admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def snapshot(db: Database) -> dict[str, object]:
    """Row counts of every table plus the mutable consult and key columns: equal snapshots
    before and after a refused request mean the request changed nothing."""
    from server.db.models import ApiKey, Consult, Participant, WebhookDelivery, WebhookEndpoint

    state: dict[str, object] = {}
    async with db.sessions() as session:
        for table in Base.metadata.sorted_tables:
            state[table.name] = await session.scalar(select(func.count()).select_from(table))
        state["consults.rows"] = sorted(
            (c.id, c.status, c.ended_at) for c in await session.scalars(select(Consult))
        )
        state["participants.rows"] = sorted(
            (p.id, p.tokens_revoked_at) for p in await session.scalars(select(Participant))
        )
        state["api_keys.rows"] = sorted(
            (k.id, k.revoked_at) for k in await session.scalars(select(ApiKey))
        )
        state["webhook_endpoints.rows"] = sorted(
            (e.id, e.url, e.secret_sealed, e.previous_until, e.deleted_at)
            for e in await session.scalars(select(WebhookEndpoint))
        )
        state["webhook_deliveries.rows"] = sorted(
            (d.id, d.state, d.next_attempt_at, d.give_up_at)
            for d in await session.scalars(select(WebhookDelivery))
        )
    return state


async def stored_bytes(db: Database) -> bytes:
    """Everything the database holds: SQLite's file and WAL byte for byte, or every value of
    every row of PostgreSQL (JSON columns as JSON text)."""
    path = db.sqlite_path()
    if path is not None:
        async with db.engine.connect() as conn:
            await conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        files = [path, Path(f"{path}-wal")]
        return b"".join(f.read_bytes() for f in files if f.exists())
    chunks = []
    async with db.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in await conn.execute(select(table)):
                chunks.extend(_as_stored(v) for v in row)
    return b"\n".join(chunks)


def _as_stored(value: object) -> bytes:
    """A PostgreSQL value as the server holds it: bytes as they are, JSON as JSON text (so a
    search for `"key": [` finds what a JSON column holds), anything else as its text."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value).encode()
    return str(value).encode()


def upgrade_to(revision: str) -> Callable[[Connection], None]:
    """For `conn.run_sync`: migrate to `revision` (no key ring), to write the rows an older
    revision's code wrote before a migration under test."""

    def run(connection: Connection) -> None:
        command.upgrade(migrate.config(connection), revision)

    return run
