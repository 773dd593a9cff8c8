"""The rooms live in this process, by consult, and the one way a consult ends.

Every end (a host, the empty-room timer, the platform API) goes through `finish`: the
consult row is ended by one conditional update (`ConsultRecords.end`), the notes are saved as
the plan (`PlanKeeper.save_plan`, itself exactly-once), then the room tells whoever is still
connected and closes. Each step is idempotent, so racing ends converge on one plan, also across
workers: the platform's end on another worker arrives here as a command (`apply`), or, if that
was lost, by the sweep of ended rows (`sweep_ended`)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

from .. import logs, metrics
from ..consults.model import Actor, ConsultStatus, ConsultView, JoinIdentity
from ..errors import ErrorCode, TriadError
from ..ids import ConsultId
from .commands import RoomCommand, RoomCommandKind
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

log = logs.get(__name__)

# How long this worker remembers a consult it ended. A join reads the consult's row, then asks
# for its room within moments: this covers a row read just before the end committed, and
# keeps a long-lived worker from holding every consult it ever ended.
ENDED_MEMORY = timedelta(minutes=10)


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
        # Ended here while sockets may still hold a verified token: refuse their joins. When
        # each ended.
        self._ended: dict[ConsultId, datetime] = {}
        self._closed = False
        self._sweeper: asyncio.Task[None] | None = None

    def occupancy(self) -> tuple[int, int]:
        """The rooms live here, and the participants connected to them (this worker's load)."""
        return len(self._rooms), sum(room.connected_count for room in self._rooms.values())

    def sample_metrics(self) -> None:
        """The rooms here by state and their seats by place, into this process's gauges."""
        rooms: Counter[str] = Counter()
        seats: Counter[str] = Counter()
        for room in self._rooms.values():
            if not room.closed:
                room.census(rooms, seats)
        metrics.set_counts(metrics.ROOMS, metrics.ROOM_STATES, rooms)
        metrics.set_counts(metrics.PARTICIPANTS, metrics.PARTICIPANT_STATES, seats)

    def get(self, consult_id: ConsultId) -> ConsultRoom | None:
        return self._rooms.get(consult_id)

    def ended_here(self, consult_id: ConsultId) -> bool:
        """This worker ended the consult within `ENDED_MEMORY`."""
        return consult_id in self._ended

    def room_for(self, consult: ConsultView) -> ConsultRoom:
        if self._closed or self.ended_here(consult.id) or consult.status == ConsultStatus.ENDED:
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
            await self._plans.release(consult_id)

    def _forget(self, consult_id: ConsultId, room: ConsultRoom) -> None:
        if self._rooms.get(consult_id) is room:
            del self._rooms[consult_id]

    async def apply(self, command: RoomCommand) -> None:
        """A REST call's change, committed (here or on another worker): the room here acts."""
        consult_id = command.consult_id
        if command.kind is RoomCommandKind.ENDED:
            # Only for a row that is ended (a message is not proof); whether or not a room is
            # here, the notes documents this worker holds are frozen and dropped.
            await self._finish_ended([consult_id], told=True)
            return
        room = self._rooms.get(consult_id)
        if room is None:
            return
        if command.kind is RoomCommandKind.CARE_CHANGED:
            await room.care_changed()
        elif command.kind is RoomCommandKind.SAFETY_FLAG:
            await room.safety_flags_changed()
        elif command.kind is RoomCommandKind.BRIEF_UPDATED:
            await room.brief_updated()

    async def save_plan(self, consult_id: ConsultId) -> str:
        """The consult's plan, saved once (the row is ended): the same id to every caller."""
        return await self._plans.save_plan(consult_id)

    def start_sweep(self) -> None:
        """Several workers: an end another worker served reaches this one as a command, which
        can be lost; this catches it within `ended_sweep` seconds. Started once."""
        if self._sweeper is None and not self._closed:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self._settings.ended_sweep)
            try:
                await self.sweep_ended()
            except Exception as exc:  # the database is away: try again at the next round
                log.error("rooms.sweep_failed", **logs.failure(exc))

    async def sweep_ended(self) -> None:
        """Close each room here whose consult row was ended elsewhere (one query for all)."""
        if self._rooms:
            await self._finish_ended(list(self._rooms), told=False)

    async def _finish_ended(self, consult_ids: list[ConsultId], *, told: bool) -> None:
        """Finish those of `consult_ids` whose row is ended, named by whoever ended it. `told`:
        a command said it ended; one whose row is not ended changes nothing."""
        ended = await self._records.ended_among(consult_ids)
        for consult_id in consult_ids:
            if consult_id in ended:
                log.info("rooms.ended_elsewhere", consult_id=consult_id, told=told)
                await self.finish(consult_id, _actor_of(ended[consult_id]))
            elif told:
                log.warning("rooms.end_refused", consult_id=consult_id)

    async def end_consult(self, consult_id: ConsultId, actor: Actor) -> str:
        """End the consult (by a participant or the system); returns the saved plan's id."""
        await self._records.end(consult_id, actor)
        return await self.finish(consult_id, actor)

    async def finish(self, consult_id: ConsultId, actor: Actor) -> str:
        """After the consult row is ended: save the plan, tell the room, close it."""
        self._remember_end(consult_id)
        plan_id = await self._plans.save_plan(consult_id)
        room = self._rooms.pop(consult_id, None)
        if room is not None:
            await room.close(ended=Ended(plan_id=plan_id, ended_by=actor.label()))
        return plan_id

    def _remember_end(self, consult_id: ConsultId) -> None:
        now = self._clock()
        self._ended[consult_id] = now
        forget_before = now - ENDED_MEMORY
        for old in [c for c, at in self._ended.items() if at < forget_before]:
            del self._ended[old]

    async def close_rooms(self) -> None:
        """Close every room without ending its consult (this worker stops serving them: it
        was fenced or drained), and let go of their notes; a later join makes a new one."""
        rooms, self._rooms = dict(self._rooms), {}
        await asyncio.gather(*(room.close() for room in rooms.values()), return_exceptions=True)
        for consult_id in rooms:
            await self._plans.release(consult_id)

    async def close(self) -> None:
        """Server shutdown: close every room without ending its consult (participants come
        back to another process and resume). Safe to call twice."""
        self._closed = True
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            await asyncio.gather(sweeper, return_exceptions=True)
        await self.close_rooms()


def _actor_of(label: str) -> Actor:
    """The actor an `Actor.label()` names (an unknown kind reads as the system)."""
    kind, _, actor_id = label.partition(":")
    if kind not in ("platform", "participant", "operator"):
        return Actor("system")
    return Actor(kind, actor_id or None)  # type: ignore[arg-type]  # one of the kinds above
