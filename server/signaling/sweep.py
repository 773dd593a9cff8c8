"""The periodic re-check of every live socket against the database: the safety net under the
access-events bus. Pub/sub delivers at most once, and without Redis a key revoked from the
command line (another process) publishes to nobody; the sweep closes such sockets within one
interval. Two queries per sweep, whatever the number of sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from .. import logs

log = logs.get(__name__)


class AccessSweep:
    def __init__(self, interval: float, sweep: Callable[[], Awaitable[None]]) -> None:
        if interval <= 0:
            raise ValueError("the sweep interval must be positive")
        self._interval = interval
        self._sweep = sweep
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Cancel the loop, then wait for it. Safe to call twice."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self._sweep()
            except Exception as exc:  # the database away for a moment: try again next time
                log.error("socket.sweep_failed", **logs.failure(exc))
