"""A database nobody migrated, for a worker that must refuse to start (the shared fixtures of
a deployment, `cluster_database`, `redis`, `keys`, are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.databases import PostgresFactory


@pytest.fixture
async def postgres_empty(postgres: PostgresFactory) -> AsyncIterator[str]:
    async with postgres.database(migrated=False) as url:
        yield url
