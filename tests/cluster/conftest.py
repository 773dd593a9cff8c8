"""A shared PostgreSQL database and a deployment name in Redis of its own for each test, so
the workers of one test never see another test's (or another run's) in the registry."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from server.cluster.entry import ClusterKeys
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


@pytest.fixture
async def redis(redis_url: str, keys: ClusterKeys) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:  # the test's deployment leaves nothing behind
        async for key in client.scan_iter(match=keys.prefix + "*", count=1000):
            await client.delete(key)
        await client.aclose()


@pytest.fixture
def keys(cluster_name: str) -> ClusterKeys:
    return ClusterKeys(cluster_name)
