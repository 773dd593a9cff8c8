"""A stopped server leaves nothing of itself running: Engine.IO's ping watchdog, started by
the first socket, stops with the app (it would otherwise close timed-out sockets and run
their disconnect handlers against closed services)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient

from tests.rooms.conftest import People


def watchdogs() -> set[asyncio.Task[Any]]:
    return {
        task
        for task in asyncio.all_tasks()
        if getattr(task.get_coro(), "__qualname__", "").endswith("_service_task")
    }


async def test_the_engine_io_watchdog_stops_with_the_app(
    client: TestClient[Any, Any], people: People
) -> None:
    before = watchdogs()
    therapist = await people.connect("therapist")
    assert watchdogs() - before, "the first socket starts Engine.IO's watchdog"
    await therapist.close()
    await client.close()
    assert watchdogs() - before == set()
