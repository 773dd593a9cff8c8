"""A shared PostgreSQL database and a deployment name in Redis of its own for each test, so
the workers of one test never see another test's (or another run's) in the registry."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest

from tests.conftest import require_service
from tests.databases import REDIS_ENV, PostgresFactory


@pytest.fixture
async def cluster_database(postgres: PostgresFactory) -> AsyncIterator[str]:
    async with postgres.database(migrated=True) as url:
        yield url


@pytest.fixture
async def postgres_empty(postgres: PostgresFactory) -> AsyncIterator[str]:
    """A database nobody migrated."""
    async with postgres.database(migrated=False) as url:
        yield url


@pytest.fixture
def redis_url() -> str:
    return require_service(REDIS_ENV)


@pytest.fixture
def cluster_name() -> str:
    return f"t{secrets.token_hex(6)}"
