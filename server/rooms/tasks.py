"""The background tasks one room owns (seat expiries, the empty-room timer, active-speaker
broadcasts): started here, failures logged, and all cancelled then awaited when the room closes."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from .. import logs

log = logs.get(__name__)


class RoomTasks:
    def __init__(self, consult_id: str) -> None:
        self._consult_id = consult_id
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    async def close(self) -> None:
        """Cancel every task but the caller's own (a task may be what closes the room), then
        wait for them. Safe to call twice."""
        current = asyncio.current_task()
        pending = [t for t in self._tasks if t is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        exc = None if task.cancelled() else task.exception()
        if exc is not None:
            log.error("room.task_failed", consult_id=self._consult_id, **logs.failure(exc))
