"""The consult room's side of media negotiation: answers, candidates and restarts from the
participants, offers and failures from the SFU. Part of `ConsultRoom` (split by concern, as
LiveKit splits its room across files); the state it uses is the room's and is declared here.

Every change runs under the room's lock, like the rest of the room: which peer connection
(`pc`) is current is membership state."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from .. import logs
from ..errors import ErrorCode, TriadError
from ..ids import ParticipantId
from . import events
from .events import ServerEvent
from .media import Offer
from .occupant import Occupant
from .ports import RoomMedia
from .tasks import RoomTasks
from .views import offer_message

log = logs.get(__name__)

MediaFactory = Callable[["MediaNegotiation"], RoomMedia]


class MediaNegotiation:
    """The SFU's `MediaEvents`, and the participants' media events."""

    # The room's state and methods, declared for the type checker.
    _lock: asyncio.Lock
    _tasks: RoomTasks
    _occupants: dict[ParticipantId, Occupant]
    _media: RoomMedia | None
    _media_factory: MediaFactory
    _active_speaker: ParticipantId | None
    closed: bool

    if TYPE_CHECKING:

        def require_admitted(self, pid: ParticipantId) -> Occupant: ...

        async def _broadcast(
            self, message: ServerEvent, *, skip: ParticipantId | None = None
        ) -> None: ...

    @property
    def media(self) -> RoomMedia | None:
        return self._media

    async def answer(self, pid: ParticipantId, pc: int, sdp: str) -> None:
        async with self._lock:
            occupant = self._media_peer(pid, pc)
            assert self._media is not None  # _media_peer checked it
            await self._media.answer(occupant.id, sdp)

    async def candidate(
        self, pid: ParticipantId, pc: int, candidate: Mapping[str, object] | None
    ) -> None:
        async with self._lock:
            occupant = self._media_peer(pid, pc)
            assert self._media is not None
            await self._media.add_candidate(occupant.id, candidate)

    async def restart_media(self, pid: ParticipantId, pc: int) -> int:
        """The browser's own peer connection failed (its ICE gave up while the socket lived):
        a new one with a new offer, unless the server already started one after `pc`.
        Returns the current peer connection's number."""
        async with self._lock:
            occupant = self.require_admitted(pid)
            if self._media is None or not occupant.in_media or pc > occupant.pc:
                raise TriadError(ErrorCode.NO_PENDING_OFFER, "no such peer connection")
            if pc == occupant.pc:
                log.warning("room.media_restart_asked", participant_id=pid)
                await self._restart_media(occupant)
            return occupant.pc

    # MediaEvents, called by the SFU.
    async def send_offer(self, participant_id: ParticipantId, offer: Offer) -> None:
        occupant = self._occupants.get(participant_id)
        if occupant is not None and occupant.channel is not None:
            await occupant.channel.send(offer_message(offer, occupant.pc))

    def active_speaker_changed(self, participant_id: ParticipantId | None) -> None:
        if participant_id == self._active_speaker or self.closed:
            return
        self._active_speaker = participant_id
        self._tasks.spawn(self._broadcast(events.ActiveSpeaker(participant_id=participant_id)))

    def media_quality(
        self, participant_id: ParticipantId, publisher: ParticipantId, video_paused: bool
    ) -> None:
        """MediaEvents: tell the participant their link made the SFU pause (or resume) the
        publisher's video for them; their page shows it on that tile."""
        occupant = self._occupants.get(participant_id)
        if self.closed or occupant is None or occupant.channel is None:
            return
        message = events.MediaQuality(
            participant_id=publisher,
            video="paused" if video_paused else "playing",
            reason="weak-connection" if video_paused else None,
        )
        self._tasks.spawn(occupant.channel.send(message))

    def media_failed(self, participant_id: ParticipantId) -> None:
        """MediaEvents: the participant's peer connection failed. A connected participant gets
        a new one (a new `pc` number and offer) rather than a frozen tile; one who is not
        connected gets it when they return."""
        if not self.closed:
            self._tasks.spawn(self._recover_media(participant_id))

    async def _recover_media(self, participant_id: ParticipantId) -> None:
        async with self._lock:
            occupant = self._occupants.get(participant_id)
            if self.closed or occupant is None or not occupant.in_media or not occupant.connected:
                return
            log.warning("room.media_restarted", participant_id=participant_id)
            await self._restart_media(occupant)

    async def _start_media(self, occupant: Occupant) -> None:
        if self._media is None:
            self._media = self._media_factory(self)
        occupant.in_media = True
        await self._media.add(occupant.id)

    async def _restart_media(self, occupant: Occupant) -> None:
        """A new connection gets a new peer connection; the old one may be dead or orphaned."""
        assert self._media is not None
        await self._media.remove(occupant.id)
        occupant.pc += 1
        await self._media.add(occupant.id)

    def _media_peer(self, pid: ParticipantId, pc: int) -> Occupant:
        occupant = self.require_admitted(pid)
        if self._media is None or not occupant.in_media or pc != occupant.pc:
            raise TriadError(ErrorCode.NO_PENDING_OFFER, "no offer is outstanding for that")
        return occupant
