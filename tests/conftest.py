"""Fixtures: a real database per test (SQLite always, PostgreSQL when configured), the app on a
test server bound to port 0 on loopback, and a platform with a live API key."""

from __future__ import annotations

import base64
import io
import logging
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from server import logs
from server.api.context import SERVICES
from server.api.routes import OPENAPI_KEY
from server.app import create_app
from server.cluster.entry import ClusterKeys
from server.consults.model import Actor
from server.db.engine import Database
from server.services import Services
from server.settings import Settings
from tests.apiclient import Api
from tests.databases import (
    POSTGRES_ENV,
    REDIS_ENV,
    PostgresFactory,
    services_required,
    sqlite_copy,
    sqlite_template,
)

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
TEST_KEY = "test1:" + base64.b64encode(secrets.token_bytes(32)).decode()


def require_service(env: str) -> str:
    value = os.environ.get(env)
    if value:
        return value
    if services_required():
        pytest.fail(f"{env} is not set, and this run requires every service")
    pytest.skip(f"{env} is not set")


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """Everything the server logs during the test, as JSON lines."""
    stream = io.StringIO()
    logs.configure("debug", "json", stream=stream)
    yield stream
    for handler in list(logging.getLogger().handlers):
        if getattr(handler, "_triad", False):
            logging.getLogger().removeHandler(handler)


@pytest.fixture(scope="session")
def sqlite_template_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sqlite_template(tmp_path_factory.mktemp("template"))


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresFactory]:
    factory = PostgresFactory(require_service(POSTGRES_ENV))
    factory.create_template()
    yield factory
    factory.drop_template()


@pytest.fixture
async def cluster_database(postgres: PostgresFactory) -> AsyncIterator[str]:
    """A migrated PostgreSQL database, as the workers of a deployment share it."""
    async with postgres.database(migrated=True) as url:
        yield url


@pytest.fixture
def redis_url() -> str:
    return require_service(REDIS_ENV)


@asynccontextmanager
async def deployment_keys(redis_url: str) -> AsyncIterator[ClusterKeys]:
    """A deployment name of its own in Redis: its workers never see another test's (or another
    run's) in the registry. Whatever it holds is deleted on the way out (after the servers
    started within, which depend on it)."""
    keys = ClusterKeys(f"t{secrets.token_hex(6)}")
    try:
        yield keys
    finally:
        async with Redis.from_url(redis_url) as client:
            async for key in client.scan_iter(match=keys.prefix + "*", count=1000):
                await client.delete(key)


@pytest.fixture
async def keys(redis_url: str) -> AsyncIterator[ClusterKeys]:
    """The test's own deployment name (`deployment_keys`), its keys deleted after the test."""
    async with deployment_keys(redis_url) as keys:
        yield keys


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture(params=BACKENDS)
async def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template_path: Path
) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield sqlite_copy(sqlite_template_path, tmp_path)
        return
    factory: PostgresFactory = request.getfixturevalue("postgres")
    async with factory.database(migrated=True) as url:
        yield url


def make_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "mode": "development",
        "database_url": database_url,
        "data_dir": tmp_path,
        "encryption_keys": TEST_KEY,
        "public_base_url": "http://127.0.0.1:8080",
        "redis_url": None,
        "allowed_origins": ["http://127.0.0.1:9000"],
        "ice_host_addresses": ["127.0.0.1"],
        "stun_urls": [],
        "turn_urls": [],
        # No test's server delivers webhooks unless it says so (tests/webhooks/): an endpoint
        # a test registers at a public name must never be resolved or called.
        "webhook_delivery": False,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url)


@pytest.fixture
def app(settings: Settings) -> web.Application:
    return create_app(settings)


@pytest.fixture
async def client(app: web.Application, aiohttp_client: Any) -> TestClient[Any, Any]:
    # `app` first: its database is set up before the test server and so torn down after it
    # (the server's background loops, such as webhook delivery, run until it closes).
    test_client: TestClient[Any, Any] = await aiohttp_client(app)
    return test_client


@pytest.fixture
def services(client: TestClient[Any, Any]) -> Services:
    return client.app[SERVICES]


@pytest.fixture
def api(client: TestClient[Any, Any]) -> Api:
    return Api(client, client.app[OPENAPI_KEY].model_dump())


@dataclass(frozen=True)
class PlatformKey:
    platform_id: str
    key_id: str
    secret: str


async def new_platform(services: Services, name: str) -> PlatformKey:
    created = await services.keys.create(name, Actor("operator", "test"))
    return PlatformKey(created.platform_id, created.key_id, created.secret)


@pytest.fixture
async def platform(services: Services) -> PlatformKey:
    return await new_platform(services, "Acme Health")


def consult_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "participants": [
            {"role": "client", "name": "Alex Rivera"},
            {"role": "therapist", "name": "Sam Okafor"},
            {"role": "psychiatrist", "name": "Priya Nair"},
        ]
    }
    body.update(overrides)
    return body


def seated_consult_body(**overrides: Any) -> dict[str, Any]:
    """A consult with every optional seat: a minor client's guardian and an interpreter."""
    body = consult_body(client_is_minor=True)
    body["participants"] += [
        {"role": "guardian", "name": "Jordan Rivera"},
        {"role": "interpreter", "name": "Lucia Moreno"},
    ]
    body.update(overrides)
    return body


@pytest.fixture
async def seated_consult(api: Api, platform: PlatformKey) -> dict[str, Any]:
    answer = await api.call(
        "POST", "/api/v1/consults", bearer=platform.secret, json_body=seated_consult_body()
    )
    assert answer.status == 201, answer.body
    body: dict[str, Any] = answer.body
    return body


@pytest.fixture
async def consult(api: Api, platform: PlatformKey) -> dict[str, Any]:
    answer = await api.call(
        "POST", "/api/v1/consults", bearer=platform.secret, json_body=consult_body()
    )
    assert answer.status == 201, answer.body
    body: dict[str, Any] = answer.body
    return body


def participant(consult: dict[str, Any], role: str) -> dict[str, Any]:
    found: dict[str, Any] = next(p for p in consult["participants"] if p["role"] == role)
    return found


@pytest.fixture(params=BACKENDS)
async def unmigrated_database(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Database]:
    """An empty database on each backend, not migrated: migration tests bring it to the
    revision they start from (`tests.databases.upgrade_to`)."""
    if request.param == "sqlite":
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
        yield db
        await db.close()
        return
    factory: PostgresFactory = request.getfixturevalue("postgres")
    async with factory.database(migrated=False) as url:
        db = Database(url)
        yield db
        await db.close()
