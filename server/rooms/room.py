"""One live consult room: who is in it, the lobby, roles, seats held for reconnection; when it
ends by itself is `autoend.py`'s.

Plain async Python: the signaling layer calls it, and a test can drive it without a socket.
Membership changes run under one lock so that the room, the media plane and what participants
are told never disagree; events go out through each participant's `Channel`. Each admitted
participant's media session (their peer connection, its `pc` number, offers, restarts and
recovery) is the media plane's: the room tells it who is admitted and connected."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime

from .. import logs
from ..auth.roles import Role, is_host, require_host
from ..consults.audit import AuditAction
from ..consults.care import CareState
from ..consults.model import Actor, ConsultView, JoinIdentity
from ..errors import ErrorCode, TriadError
from ..ids import ConsultId, ParticipantId
from . import events
from .autoend import AutoEnd
from .events import LeaveReason, ServerEvent
from .occupant import LEFT_AUDIT_ACTION, LEFT_BECAUSE, Occupant, Place
from .ports import (
    CareRecords,
    Channel,
    ConsultRecords,
    IceServers,
    MediaFactory,
    Revoker,
    RoomMedia,
)
from .room_care import CareWorkflow
from .settings import RoomSettings
from .sharing import ScreenShare
from .tasks import RoomTasks
from .views import ChannelMedia, lobby, pending_presence, room_state, send_each

log = logs.get(__name__)

EndConsult = Callable[[Actor], Awaitable[object]]


class ConsultRoom(CareWorkflow):
    def __init__(
        self,
        consult: ConsultView,
        *,
        settings: RoomSettings,
        records: ConsultRecords,
        care: CareRecords,
        media_factory: MediaFactory,
        ice_servers: IceServers,
        end_consult: EndConsult,
        revoker: Revoker,
        clock: Callable[[], datetime],
        unload: Callable[[], Awaitable[None]],
    ) -> None:
        self.consult_id: ConsultId = consult.id
        self._auto_admit = consult.auto_admit
        self._roster = {p.id: p for p in consult.participants}
        self._settings = settings
        self._records = records
        self._care_records = care
        self._care = CareState()
        self._media: RoomMedia | None = media_factory(self._active_speaker_changed)
        self._ice_servers = ice_servers
        self._end_consult = end_consult
        self._revoker = revoker
        self._occupants: dict[ParticipantId, Occupant] = {}
        # Removed participants (back with a new link from the platform: their old tokens are
        # revoked) knock again from the lobby, whatever their role.
        self._removed: set[ParticipantId] = set()
        self._active_speaker: ParticipantId | None = None
        self._share = ScreenShare(consult.id, records, self._broadcast)
        self._lock = asyncio.Lock()
        self._tasks = RoomTasks(consult.id)
        self._auto_end = AutoEnd(
            consult.id,
            consult.scheduled_end,
            settings=settings,
            tasks=self._tasks,
            clock=clock,
            connected=lambda: self.connected_count,
            end=end_consult,
            unload=unload,
        )
        self._live = consult.status == "live"
        self.closed = False
        # Set by the registry when it drops this room from memory without ending the consult.
        self.unloaded = False

    # -- joining and leaving ------------------------------------------------------------------

    async def join(self, identity: JoinIdentity, channel: Channel) -> events.RoomState:
        """Seat a connection: a first join, a return within the grace period, or a second
        connection that replaces the first. Returns the room's state for the joiner."""
        pid = identity.participant_id
        async with self._lock:
            self._require_open()
            if pid not in self._roster:
                raise TriadError(ErrorCode.PARTICIPANT_NOT_FOUND, "not a participant here")
            self._auto_end.someone_connected()
            self._care = await self._care_records.care_state(self.consult_id)
            occupant = self._occupants.get(pid)
            rejoin = occupant is not None
            if occupant is None:
                admitted = pid not in self._removed and (
                    is_host(identity.role) or (self._auto_admit and self._may_enter(identity.role))
                )
                occupant = Occupant(
                    id=pid,
                    role=identity.role,
                    name=self._roster[pid].name,
                    place=Place.ROOM if admitted else Place.LOBBY,
                    present_with=self._care.present_with.get(pid, ()),
                )
                self._occupants[pid] = occupant
            else:
                occupant.cancel_seat_expiry()
                if occupant.channel is not None and occupant.channel is not channel:
                    old, occupant.channel = occupant.channel, None
                    await old.close(
                        ErrorCode.CONNECTION_REPLACED, "you connected again from elsewhere"
                    )
            occupant.channel = channel
            await self._records.record(
                self.consult_id,
                _actor(pid),
                AuditAction.PARTICIPANT_JOINED,
                occupant.audited(place=occupant.place.value, rejoin=rejoin),
            )
            await self._broadcast(
                events.PeerUpdated(participant=occupant.view())
                if rejoin
                else events.PeerJoined(participant=occupant.view()),
                skip=pid,
            )
            if occupant.place is Place.ROOM:
                if self._media is not None and self._media.generation(pid) is not None:
                    # Back, or from elsewhere: a new peer connection for the new connection.
                    await self._media.add(pid, ChannelMedia(channel))
                else:
                    await self._enter(occupant, Actor("system"))
            else:
                await self._lobby_changed()
            return self._state_for(occupant)

    async def leave(self, pid: ParticipantId, channel: Channel) -> None:
        """The participant chose to leave: the seat is freed at once."""
        async with self._lock:
            occupant = self._occupants.get(pid)
            if occupant is None or occupant.channel is not channel:
                return
            await self._vacate(occupant, reason=LeaveReason.LEFT, actor=_actor(pid))
            self._maybe_start_empty_timer()

    async def dropped(self, pid: ParticipantId, channel: Channel) -> None:
        """The connection went away without a leave: hold the seat for the grace period."""
        async with self._lock:
            occupant = self._occupants.get(pid)
            if occupant is None or occupant.channel is not channel or self.closed:
                return
            occupant.channel = None
            if self._media is not None:
                self._media.disconnect(pid)
            await self._broadcast(events.PeerUpdated(participant=occupant.view()))
            occupant.seat_expiry = self._tasks.spawn(self._expire_seat(occupant))
            self._maybe_start_empty_timer()

    async def _expire_seat(self, occupant: Occupant) -> None:
        await asyncio.sleep(self._settings.reconnect_grace)
        async with self._lock:
            if self._occupants.get(occupant.id) is occupant and not occupant.connected:
                occupant.seat_expiry = None  # this task; _vacate must not cancel itself
                await self._vacate(occupant, reason=LeaveReason.TIMEOUT, actor=Actor("system"))
                self._maybe_start_empty_timer()

    # -- host actions -------------------------------------------------------------------------

    async def admit(self, host: ParticipantId, target: ParticipantId) -> None:
        async with self._lock:
            self._require_open()
            self._require_host_in_room(host, "admit")
            occupant = self._in_lobby(target)
            self._care = await self._care_records.care_state(self.consult_id)
            if not self._may_enter(occupant.role):
                raise TriadError(
                    ErrorCode.CONSENT_REQUIRED,
                    "the client has not consented to the session and to sharing yet",
                )
            occupant.place = Place.ROOM
            self._removed.discard(target)
            await self._enter(occupant, _actor(host))
            await self._lobby_changed()

    async def deny(self, host: ParticipantId, target: ParticipantId) -> None:
        async with self._lock:
            self._require_open()
            self._require_host_in_room(host, "deny")
            occupant = self._in_lobby(target)
            await self._vacate(occupant, reason=LeaveReason.DENIED, actor=_actor(host))
            if occupant.channel is not None:
                await occupant.channel.close(ErrorCode.LOBBY_DENIED, "a host did not admit you")

    async def remove(self, host: ParticipantId, target: ParticipantId) -> None:
        """Out of the room, and their join tokens revoked (as the platform's `DELETE .../tokens`
        does), so the link stops working for the room and for the REST session reads alike."""
        async with self._lock:
            self._require_open()
            self._require_host_in_room(host, "remove a participant")
            occupant = self._occupants.get(target)
            if occupant is None or target == host:
                raise TriadError(ErrorCode.PARTICIPANT_NOT_FOUND, "no such participant to remove")
            self._removed.add(target)
            await self._vacate(occupant, reason=LeaveReason.REMOVED, actor=_actor(host))
            if occupant.channel is not None:
                await occupant.channel.close(ErrorCode.REMOVED, "a host removed you")
            self._maybe_start_empty_timer()
        # Outside the lock: the revocation is published, and this process's sockets of the
        # removed participant (one still joining, say) are closed through this room.
        await self._revoker.revoke(self.consult_id, target, _actor(host), removed=True)

    async def revoked(
        self, pid: ParticipantId, channel: Channel, code: ErrorCode, message: str
    ) -> None:
        """The connection's token no longer holds (revoked, its key revoked, expired): the
        seat is freed and the connection closed with the code."""
        async with self._lock:
            occupant = self._occupants.get(pid)
            if occupant is not None and occupant.channel is channel and not self.closed:
                occupant.channel = None
                reason = LEFT_BECAUSE.get(code, LeaveReason.REVOKED)
                await self._vacate(occupant, reason=reason, actor=Actor("system"))
                self._maybe_start_empty_timer()
        await channel.close(code, message)

    async def end(self, host: ParticipantId) -> object:
        """A host ends the consult for everyone (idempotent; returns the end's result)."""
        async with self._lock:
            self._require_host_in_room(host, "end the consult")
        # Outside the lock: ending closes this room, which takes the lock itself.
        return await self._end_consult(_actor(host))

    # -- the care workflow ---------------------------------------------------------------------

    @property
    def sharing_withdrawn(self) -> bool:
        """The client withdrew consent to the clinicians sharing information."""
        return self._care.sharing_withdrawn

    def _may_enter(self, role: Role) -> bool:
        return role != Role.CLIENT or self._care.consent_complete

    # -- media --------------------------------------------------------------------------------

    async def set_media_state(self, pid: ParticipantId, *, audio: bool, video: bool) -> None:
        async with self._lock:
            occupant = self._joined(pid)
            occupant.audio, occupant.video = audio, video
            await self._broadcast(events.PeerUpdated(participant=occupant.view()))

    async def send_to_admitted(
        self,
        message: ServerEvent,
        *,
        where: Callable[[Occupant], bool],
        skip: ParticipantId | None = None,
    ) -> None:
        """Deliver an event to the admitted participants `where` accepts (the notes channel
        uses it to reach the readers of a document)."""
        admitted = [o for o in self._occupants.values() if o.place is Place.ROOM and where(o)]
        await send_each(admitted, message, skip=skip)

    async def answer(self, pid: ParticipantId, pc: int, sdp: str) -> None:
        async with self._lock:
            await self._media_of(pid).answer(pid, pc, sdp)
            await self._share.answered(pid, self._media)  # their page may have ended a share

    async def candidate(
        self, pid: ParticipantId, pc: int, candidate: Mapping[str, object] | None
    ) -> None:
        async with self._lock:
            await self._media_of(pid).add_candidate(pid, pc, candidate)

    async def restart_media(self, pid: ParticipantId, pc: int) -> int:
        """The browser's own peer connection failed (its ICE gave up while the socket lived):
        a new one with a new offer, unless the server already started one after `pc`.
        Returns the current peer connection's number."""
        async with self._lock:
            return await self._media_of(pid).restart(pid, pc)

    # Screen share: the rules are sharing.py's.

    async def start_share(self, pid: ParticipantId) -> None:
        async with self._lock:
            await self._share.start(self.require_admitted(pid), self._media)

    async def stop_share(self, pid: ParticipantId, target: ParticipantId | None) -> bool:
        async with self._lock:
            return await self._share.stop(self.require_admitted(pid), target, self._media)

    async def allow_client_share(self, pid: ParticipantId, allowed: bool) -> None:
        async with self._lock:
            await self._share.permit(self.require_admitted(pid), allowed, self._media)

    @property
    def media(self) -> RoomMedia | None:
        return self._media

    def _media_of(self, pid: ParticipantId) -> RoomMedia:
        """The media plane, for an admitted participant's own media events."""
        self.require_admitted(pid)
        if self._media is None:
            raise TriadError(ErrorCode.NO_PENDING_OFFER, "no offer is outstanding for that")
        return self._media

    def _active_speaker_changed(self, participant_id: ParticipantId | None) -> None:
        if participant_id == self._active_speaker or self.closed:
            return
        self._active_speaker = participant_id
        self._tasks.spawn(self._broadcast(events.ActiveSpeaker(participant_id=participant_id)))

    # -- queries ------------------------------------------------------------------------------

    def require_admitted(self, pid: ParticipantId) -> Occupant:
        occupant = self._joined(pid)
        if occupant.place is not Place.ROOM:
            raise TriadError(ErrorCode.NOT_ADMITTED, "waiting in the lobby")
        return occupant

    @property
    def connected_count(self) -> int:
        return sum(1 for o in self._occupants.values() if o.connected)

    def census(self, rooms: Counter[str], seats: Counter[str]) -> None:
        """Count this room by state, and its seats by place (`away`: the connection dropped,
        the seat is held), into the metrics' tallies."""
        rooms["live" if self._live else "waiting"] += 1
        seats.update(o.place.value if o.connected else "away" for o in self._occupants.values())

    # -- closing ------------------------------------------------------------------------------

    async def close(self, *, ended: events.Ended | None = None) -> None:
        """Close the room: tell everyone it ended (when it did), stop media, disconnect.
        Safe to call twice."""
        async with self._lock:
            if self.closed:
                return
            await self._shut(ended)
        await self._tasks.close()

    async def unload_if_empty(self) -> bool:
        """Close without ending, if nobody is connected (checked under the lock, so a join
        cannot slip in between); True when it did."""
        async with self._lock:
            if self.closed or self.connected_count:
                return False
            self.unloaded = True
            await self._shut(None)
        await self._tasks.close()
        return True

    async def _shut(self, ended: events.Ended | None) -> None:
        self.closed = True
        if ended is not None:
            await self._broadcast(ended)
        media, self._media = self._media, None
        if media is not None:
            await media.close()
        for occupant in self._occupants.values():
            occupant.cancel_seat_expiry()
            channel, occupant.channel = occupant.channel, None
            if channel is not None:
                await channel.close()
        self._auto_end.close()

    # -- internals ----------------------------------------------------------------------------

    async def _enter(self, occupant: Occupant, actor: Actor) -> None:
        """Into the room proper: audited, the consult goes live, media starts."""
        if not self._live:
            await self._records.mark_live(self.consult_id)
            self._live = True
        await self._records.record(
            self.consult_id,
            actor,
            AuditAction.PARTICIPANT_ADMITTED,
            occupant.audited(),
        )
        if is_host(occupant.role):
            self._auto_end.host_admitted()
        if occupant.channel is not None:
            await occupant.channel.send(events.Admitted(state=self._state_for(occupant)))
        await self._broadcast(events.PeerUpdated(participant=occupant.view()), skip=occupant.id)
        if self._media is not None:
            channel = occupant.channel
            await self._media.add(occupant.id, None if channel is None else ChannelMedia(channel))

    async def _vacate(self, occupant: Occupant, *, reason: LeaveReason, actor: Actor) -> None:
        occupant.cancel_seat_expiry()
        del self._occupants[occupant.id]
        if self._media is not None:
            await self._media.remove(occupant.id)
        await self._share.left(occupant.id, actor)
        action = LEFT_AUDIT_ACTION.get(reason, AuditAction.PARTICIPANT_LEFT)
        await self._records.record(
            self.consult_id, actor, action, occupant.audited(reason=reason.value)
        )
        await self._broadcast(
            events.PeerLeft(participant_id=occupant.id, reason=reason), skip=occupant.id
        )
        if occupant.place is Place.LOBBY:
            await self._lobby_changed()

    async def _lobby_changed(self) -> None:
        waiting = lobby(self._occupants.values(), self._may_enter)
        hosts = [o for o in self._occupants.values() if is_host(o.role)]
        await send_each(hosts, waiting)

    async def _broadcast(self, message: ServerEvent, *, skip: ParticipantId | None = None) -> None:
        await send_each(list(self._occupants.values()), message, skip=skip)

    def _state_for(self, occupant: Occupant) -> events.RoomState:
        occupant.presence_pending = pending_presence(self._care, occupant)
        media = self._media
        return room_state(
            self.consult_id,
            live=self._live,
            you=occupant,
            occupants=self._occupants.values(),
            active_speaker=self._active_speaker,
            pc=(None if media is None else media.generation(occupant.id)) or 0,
            ice_servers=self._ice_servers(occupant.id),
            care=self._care,
            share=self._share.view(),
        )

    def _require_open(self) -> None:
        if self.closed:
            raise TriadError(ErrorCode.CONSULT_ENDED, "the consult has ended")

    def _joined(self, pid: ParticipantId) -> Occupant:
        occupant = self._occupants.get(pid)
        if occupant is None:
            raise TriadError(ErrorCode.NOT_JOINED, "join the room first")
        return occupant

    def _require_host_in_room(self, pid: ParticipantId, action: str) -> None:
        occupant = self._joined(pid)
        require_host(occupant.role, action)
        if occupant.place is not Place.ROOM:
            raise TriadError(ErrorCode.NOT_ADMITTED, "waiting in the lobby")

    def _in_lobby(self, pid: ParticipantId) -> Occupant:
        occupant = self._occupants.get(pid)
        if occupant is None or occupant.place is not Place.LOBBY:
            raise TriadError(ErrorCode.PARTICIPANT_NOT_FOUND, "nobody by that id in the lobby")
        return occupant

    def _maybe_start_empty_timer(self) -> None:
        if not self.closed and self.connected_count == 0:
            self._auto_end.room_empty()


def _actor(pid: ParticipantId) -> Actor:
    return Actor("participant", pid)
