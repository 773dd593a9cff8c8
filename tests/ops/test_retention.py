"""Retention: idempotency keys go once no retry can come, audit events only where the
deployment sets a retention; bounded batches; the server's own task; settings that would
delete everything at once are refused at start. A movable clock, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import func, select

from server.app import create_app
from server.consults.retention import Retention, RetentionPolicy
from server.db.models import AuditEvent, IdempotencyKey
from server.services import Services
from server.settings import Settings
from tests.apiclient import Api
from tests.conftest import PlatformKey, consult_body, make_settings
from tests.ports import free_port
from tests.test_cli import triad
from tests.waiting import wait_for


class MovableClock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url, audit_retention_days=30)


@pytest.fixture
def app(settings: Settings, clock: MovableClock) -> web.Application:
    return create_app(settings, clock=clock)


async def create(api: Api, platform: PlatformKey, key: str | None = None) -> str:
    headers = {"Idempotency-Key": key} if key else None
    answer = await api.call(
        "POST",
        "/api/v1/consults",
        bearer=platform.secret,
        json_body=consult_body(),
        headers=headers,
    )
    assert answer.status in (200, 201), answer.body
    consult_id: str = answer.body["id"]
    return consult_id


async def count(services: Services, model: Any, **where: str) -> int:
    async with services.db.sessions() as session:
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return int(await session.scalar(query) or 0)


async def test_an_idempotency_key_lasts_its_retention_then_a_retry_is_new(
    api: Api, platform: PlatformKey, services: Services, clock: MovableClock
) -> None:
    first = await create(api, platform, "retry-me")
    clock.now += timedelta(hours=47)
    assert (await services.retention.prune()).idempotency_keys == 0
    assert await create(api, platform, "retry-me") == first  # still a retry
    clock.now += timedelta(hours=2)
    pruned = await services.retention.prune()
    assert (pruned.idempotency_keys, pruned.audit_events) == (1, 0)
    assert await count(services, IdempotencyKey) == 0
    assert await create(api, platform, "retry-me") != first  # a new request now


async def test_audit_events_past_the_retention_go_in_bounded_batches(
    api: Api, platform: PlatformKey, services: Services, clock: MovableClock
) -> None:
    old = await create(api, platform)
    clock.now += timedelta(days=29)
    recent = await create(api, platform)
    old_events = await count(services, AuditEvent, consult_id=old)
    recent_events = await count(services, AuditEvent, consult_id=recent)
    assert old_events >= 2
    clock.now += timedelta(days=2)  # the old consult's events are 31 days old
    small = Retention(
        services.db, RetentionPolicy(timedelta(hours=48), timedelta(days=30), batch=1), clock
    )
    pruned = await small.prune()
    assert pruned.audit_events >= old_events  # the platform's key creation went too
    assert await count(services, AuditEvent, consult_id=old) == 0
    assert await count(services, AuditEvent, consult_id=recent) == recent_events
    assert (await small.prune()).audit_events == 0  # idempotent


async def test_without_an_audit_retention_audit_events_stay(
    api: Api, platform: PlatformKey, services: Services, clock: MovableClock
) -> None:
    consult = await create(api, platform)
    events = await count(services, AuditEvent, consult_id=consult)
    clock.now += timedelta(days=7 * 366)
    forever = Retention(services.db, RetentionPolicy(timedelta(hours=48)), clock)
    assert (await forever.prune()).audit_events == 0
    assert await count(services, AuditEvent, consult_id=consult) == events


def retention_tasks() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t.get_name() == "retention" and not t.done()}


async def test_the_server_runs_a_pruning_task_that_stops_with_it(
    api: Api, platform: PlatformKey, services: Services, clock: MovableClock
) -> None:
    servers = retention_tasks()
    assert len(servers) == 1  # the app's own (worker 0), hourly by default
    await create(api, platform, "task")
    clock.now += timedelta(hours=49)
    task = Retention(services.db, RetentionPolicy(timedelta(hours=48)), clock)
    async with task.periodic(0.05):
        assert len(retention_tasks()) == 2

        async def pruned() -> bool:
            return await count(services, IdempotencyKey) == 0

        await wait_for(pruned, 10, "the task pruned")
    assert retention_tasks() == servers  # cancelled on the way out


@pytest.mark.parametrize(
    "setting",
    [
        {"TRIAD_IDEMPOTENCY_RETENTION_HOURS": "0"},
        {"TRIAD_IDEMPOTENCY_RETENTION_HOURS": "-1"},
        {"TRIAD_AUDIT_RETENTION_DAYS": "0"},
        {"TRIAD_AUDIT_RETENTION_DAYS": "-30"},
        {"TRIAD_AUDIT_RETENTION_DAYS": "7"},  # under the 30-day floor
        {"TRIAD_RETENTION_PRUNE_INTERVAL_SECONDS": "0"},
    ],
)
def test_retentions_that_would_delete_too_soon_are_refused_at_start(
    tmp_path: Path, setting: dict[str, str]
) -> None:
    result = triad(tmp_path, "serve", "--port", str(free_port()), **setting)
    assert result.returncode == 2
    assert next(iter(setting)) in result.stderr


def test_the_policy_refuses_what_the_settings_cannot_say() -> None:
    for bad in (
        {"idempotency": timedelta(0)},
        {"idempotency": timedelta(hours=1), "audit": timedelta(days=-1)},
        {"idempotency": timedelta(hours=1), "batch": 0},
    ):
        with pytest.raises(ValueError, match=r"."):
            RetentionPolicy(**bad)


def test_triad_prune_runs_once(tmp_path: Path) -> None:
    assert triad(tmp_path, "migrate").returncode == 0
    kept = triad(tmp_path, "prune")
    assert kept.returncode == 0
    assert "audit events are kept (TRIAD_AUDIT_RETENTION_DAYS is not set)" in kept.stdout
    pruned = triad(tmp_path, "prune", TRIAD_AUDIT_RETENTION_DAYS="365")
    assert "deleted 0 idempotency keys, 0 webhook events and 0 audit events" in pruned.stdout
