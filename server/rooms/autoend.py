"""When a room ends by itself: only for a reason a clinician would accept.

* Empty after the hosts were in it: once a host (therapist or psychiatrist) has been admitted
  and then nobody is connected for the empty-room grace, the consult ends.
* Empty before any host came (a client who opened the link early and closed the tab): the
  room is only unloaded from memory after the grace; the consult stays as it was.
* Time limit: from the first host admission, the consult ends at its scheduled end plus the
  overrun grace, or, when it has no scheduled end (or that moment has already passed), the
  maximum duration after that admission, whoever is still connected.

The timers are the room's tasks: cancelled with it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime

from .. import logs
from ..consults.model import Actor
from ..ids import ConsultId
from .settings import RoomSettings
from .tasks import RoomTasks

log = logs.get(__name__)

EMPTY_ROOM = Actor("system", "empty-room")
TIME_LIMIT = Actor("system", "time-limit")


class AutoEnd:
    def __init__(
        self,
        consult_id: ConsultId,
        scheduled_end: datetime | None,
        *,
        settings: RoomSettings,
        tasks: RoomTasks,
        clock: Callable[[], datetime],
        connected: Callable[[], int],
        end: Callable[[Actor], Awaitable[object]],
        unload: Callable[[], Awaitable[None]],
    ) -> None:
        self._consult_id = consult_id
        self._scheduled_end = scheduled_end
        self._settings = settings
        self._tasks = tasks
        self._clock = clock
        self._connected = connected
        self._end = end
        self._unload = unload
        self.hosts_seen = False
        self._empty: asyncio.Task[None] | None = None
        self._deadline: asyncio.Task[None] | None = None

    def host_admitted(self) -> None:
        """A host entered the room: from now on an empty room ends, and the time limit runs."""
        if self.hosts_seen:
            return
        self.hosts_seen = True
        now = self._clock()
        delay = self._settings.max_duration
        if self._scheduled_end is not None:
            until_overrun = (self._scheduled_end - now).total_seconds()
            if until_overrun + self._settings.overrun_grace > 0:
                delay = until_overrun + self._settings.overrun_grace
        self._deadline = self._tasks.spawn(self._end_at_limit(delay))

    def room_empty(self) -> None:
        """Nobody is connected (the caller checked): start the grace unless it runs already."""
        if self._empty is None:
            self._empty = self._tasks.spawn(self._when_empty())

    def someone_connected(self) -> None:
        task, self._empty = self._empty, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def close(self) -> None:
        """Cancel both timers (the room's task set awaits them). Safe to call twice."""
        self.someone_connected()
        task, self._deadline = self._deadline, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _when_empty(self) -> None:
        await asyncio.sleep(self._settings.empty_room_grace)
        self._empty = None
        if self._connected():
            return
        if self.hosts_seen:
            log.info("room.empty_timeout", consult_id=self._consult_id)
            await self._end(EMPTY_ROOM)
        else:
            log.info("room.unloaded_before_hosts", consult_id=self._consult_id)
            await self._unload()

    async def _end_at_limit(self, delay: float) -> None:
        await asyncio.sleep(delay)
        log.info("room.time_limit", consult_id=self._consult_id)
        await self._end(TIME_LIMIT)
