"""The rooms live in this process, by consult, and the one way a consult ends.

Every end (a host, the empty-room timer, the platform API) goes through `finish`: the
consult row is ended by one conditional update (`ConsultRecords.end`), the notes are saved as
the plan (`PlanKeeper.save_plan`, itself exactly-once), then the room tells whoever is still
connected and closes. Each step is idempotent, so racing ends converge on one plan."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from ..consults.model import Actor, ConsultStatus, ConsultView, JoinIdentity
from ..errors import ErrorCode, TriadError
from ..ids import ConsultId
from .events import Ended, RoomState
from .ports import (
    CareRecords,
    Channel,
    ConsultRecords,
    IceServers,
    MediaFactory,
    PlanKeeper,
    Revoker,
)
from .room import ConsultRoom
from .settings import RoomSettings


class RoomRegistry:
    def __init__(
        self,
        *,
        settings: RoomSettings,
        records: ConsultRecords,
        care: CareRecords,
        plans: PlanKeeper,
        media_factory: MediaFactory,
        ice_servers: IceServers,
        revoker: Revoker,
        clock: Callable[[], datetime],
    ) -> None:
        self._settings = settings
        self._records = records
        self._care = care
        self._plans = plans
        self._media_factory = media_factory
        self._ice_servers = ice_servers
        self._revoker = revoker
        self._clock = clock
        self._rooms: dict[ConsultId, ConsultRoom] = {}
        # Ended here while sockets may still hold a verified token: refuse their joins.
        self._ended: set[ConsultId] = set()
        self._closed = False

    def occupancy(self) -> tuple[int, int]:
        """The rooms live here, and the participants connected to them (this worker's load)."""
        return len(self._rooms), sum(room.connected_count for room in self._rooms.values())

    def get(self, consult_id: ConsultId) -> ConsultRoom | None:
        return self._rooms.get(consult_id)

    def room_for(self, consult: ConsultView) -> ConsultRoom:
        if self._closed or consult.id in self._ended or consult.status == ConsultStatus.ENDED:
            raise TriadError(ErrorCode.CONSULT_ENDED, "the consult has ended")
        room = self._rooms.get(consult.id)
        if room is None:
            room = ConsultRoom(
                consult,
                settings=self._settings,
                records=self._records,
                care=self._care,
                media_factory=self._media_factory,
                ice_servers=self._ice_servers,
                end_consult=lambda actor: self.end_consult(consult.id, actor),
                revoker=self._revoker,
                clock=self._clock,
                unload=lambda: self._unload(consult.id),
            )
            self._rooms[consult.id] = room
        return room

    async def join(
        self, identity: JoinIdentity, consult: ConsultView, channel: Channel
    ) -> RoomState:
        room = self.room_for(consult)
        try:
            return await room.join(identity, channel)
        except TriadError as error:
            # Unloaded (empty, never hosted) while this join waited: a fresh room takes it.
            if error.code is ErrorCode.CONSULT_ENDED and room.unloaded:
                self._forget(consult.id, room)
                return await self.room_for(consult).join(identity, channel)
            raise

    async def _unload(self, consult_id: ConsultId) -> None:
        """Drop a room nobody is in from memory without ending its consult (no host ever came:
        see `autoend.py`); a later join makes a new one."""
        room = self._rooms.get(consult_id)
        if room is not None and await room.unload_if_empty():
            self._forget(consult_id, room)

    def _forget(self, consult_id: ConsultId, room: ConsultRoom) -> None:
        if self._rooms.get(consult_id) is room:
            del self._rooms[consult_id]

    async def care_changed(self, consult_id: ConsultId) -> None:
        """Consent or presence changed (a REST call): the live room, if any, catches up."""
        room = self._rooms.get(consult_id)
        if room is not None:
            await room.care_changed()

    async def raise_safety_flag(self, consult_id: ConsultId, flag: Mapping[str, Any]) -> None:
        """A check-in flagged a safety item: the clinicians in the live room see it at once
        (a clinician who joins later gets it in the join state)."""
        room = self._rooms.get(consult_id)
        if room is not None:
            await room.raise_safety_flag(flag)

    async def end_consult(self, consult_id: ConsultId, actor: Actor) -> str:
        """End the consult (by a participant or the system); returns the saved plan's id."""
        await self._records.end(consult_id, actor)
        return await self.finish(consult_id, actor)

    async def finish(self, consult_id: ConsultId, actor: Actor) -> str:
        """After the consult row is ended: save the plan, tell the room, close it."""
        self._ended.add(consult_id)
        plan_id = await self._plans.save_plan(consult_id)
        room = self._rooms.pop(consult_id, None)
        if room is not None:
            await room.close(ended=Ended(plan_id=plan_id, ended_by=actor.label()))
        return plan_id

    async def close_rooms(self) -> list[ConsultId]:
        """Close every room without ending its consult (this worker stops serving them: it
        was fenced or drained); a later join makes a new one. The consults it closed."""
        rooms, self._rooms = dict(self._rooms), {}
        await asyncio.gather(*(room.close() for room in rooms.values()), return_exceptions=True)
        return list(rooms)

    async def close(self) -> None:
        """Server shutdown: close every room without ending its consult (participants come
        back to another process and resume). Safe to call twice."""
        self._closed = True
        await self.close_rooms()
