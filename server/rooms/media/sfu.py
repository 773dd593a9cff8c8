"""The SFU of one consult room: a media session per admitted participant, and who receives whom.

The room tells it who is admitted (`add`, `remove`) and whether they are connected (`add` with
their new connection, `disconnect`), who shares their screen (`share_screen`, `unshare_screen`),
and passes on what each participant sends about their media (answers, trickled candidates,
restarts), each naming the peer connection it is meant for. Each
participant's `MediaSession` (session.py) owns their peer connection's generation, offers and
recovery; offers and `media-quality` news reach the participant through the `MediaSink` the room
handed in with their connection. Nothing here knows about sockets or the room.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any, Final

from server import logs
from server.errors import ErrorCode, TriadError
from server.ids import ParticipantId

from .config import MediaConfig
from .offers import Offer, TrackInfo
from .peer import Peer
from .session import Delivery, MediaSession, MediaSink
from .speaker import SpeakerDetector
from .stats import Counters, SfuStats, TrackKey

# A page that reloads closes its peer connection (DTLS close_notify, at once) before the server
# has seen its socket go (TCP, a moment later): a failure is acted on this long after it is seen,
# so a participant who went away is not offered a replacement on the socket they just left.
RECOVERY_GRACE: Final = 1.0

__all__ = ["MediaSink", "Offer", "Sfu", "SfuStats", "TrackInfo"]

log = logs.get(__name__)

SpeakerListener = Callable[[ParticipantId | None], None]


def _nobody_listens(participant_id: ParticipantId | None) -> None:
    pass


class Sfu:
    """One per consult room. All methods run on the room's event loop."""

    def __init__(
        self, config: MediaConfig, on_active_speaker: SpeakerListener = _nobody_listens
    ) -> None:
        self._config = config
        self._on_active_speaker = on_active_speaker
        self._sessions: dict[ParticipantId, MediaSession] = {}
        self._counters = Counters()
        self._speaker = SpeakerDetector()
        # Membership changes and offers/answers of all peers are serialised: they are rare
        # (joins, leaves, answers) and interleaving them is where renegotiation bugs live.
        self._lock = asyncio.Lock()
        # Recoveries and media-quality news, cancelled on close.
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing: asyncio.Future[None] | None = None

    @property
    def participants(self) -> tuple[ParticipantId, ...]:
        return tuple(self._sessions)

    @property
    def active_speaker(self) -> ParticipantId | None:
        return self._speaker.active

    def generation(self, participant_id: ParticipantId) -> int | None:
        """The participant's current peer connection's number (None: no media session)."""
        session = self._sessions.get(participant_id)
        return None if session is None else session.generation

    async def add(self, participant_id: ParticipantId, connection: MediaSink | None) -> None:
        """Start an admitted participant's media session (peer connection 0) and renegotiate
        the others. For a participant already here it is a new connection of theirs: a new peer
        connection, one generation on, whose offers go to `connection`."""
        async with self._lock:
            self._check_open()
            session = self._sessions.get(participant_id)
            if session is not None:
                session.connection = connection  # the new peer connection's offers go here
                deliveries = await self._restart(session)
            else:
                joiner = MediaSession(self._new_peer(participant_id), connection)
                self._sessions[participant_id] = joiner
                log.info("media.session_started", participant_id=participant_id)
                # The joiner's offer is made and delivered first: their join waits on it, while
                # the others only gain a track (each offer costs aiortc some milliseconds).
                others = [s for s in self._sessions.values() if s is not joiner]
                deliveries = await self._offers([joiner, *others])
        await self._deliver(deliveries)

    def sharing(self, participant_id: ParticipantId) -> bool:
        """Whether the participant's screen is published (False: not here, or not sharing)."""
        session = self._sessions.get(participant_id)
        return session is not None and session.sharing

    async def share_screen(self, participant_id: ParticipantId) -> None:
        """The participant shares their screen: a second video they publish, asked of them on
        an m-line of its own and forwarded to everyone else. Kept across their new peer
        connections until `unshare_screen` or they leave; no-op while they share. Raises
        PARTICIPANT_NOT_FOUND."""
        async with self._lock:
            session = self._session(participant_id)
            if session.sharing:
                return
            session.sharing = True
            screen = session.peer.share_screen()
            others = [s for s in self._sessions.values() if s is not session]
            for other in others:
                other.peer.subscribe(screen)
            log.info("media.screen_shared", participant_id=participant_id)
            deliveries = await self._offers([session, *others])
        await self._deliver(deliveries)

    async def unshare_screen(self, participant_id: ParticipantId) -> None:
        """The participant's screen is no longer published; no-op when it is not."""
        async with self._lock:
            session = self._sessions.get(participant_id)
            if session is None or not session.sharing:
                return
            deliveries = await self._unpublish_screen(session)
        await self._deliver(deliveries)

    def disconnect(self, participant_id: ParticipantId) -> None:
        """The participant's connection is gone (their seat is held): offers wait for the next
        one, which brings a new peer connection (`add`). No-op if unknown."""
        session = self._sessions.get(participant_id)
        if session is not None:
            session.connection = None

    async def remove(self, participant_id: ParticipantId) -> None:
        """End the participant's session and renegotiate the others; no-op if unknown."""
        async with self._lock:
            session = self._sessions.pop(participant_id, None)
            if session is None:
                return
            await self._drop(session.peer)
            log.info("media.session_ended", participant_id=participant_id)
            deliveries = await self._offers(self._sessions.values())
        await self._deliver(deliveries)

    async def restart(self, participant_id: ParticipantId, generation: int) -> int:
        """The participant's side of peer connection `generation` failed: a new one and its
        offer, unless that one was already replaced. Returns the current generation. Raises
        NO_PENDING_OFFER for a generation not made yet, PARTICIPANT_NOT_FOUND."""
        deliveries: list[Delivery | None] = []
        async with self._lock:
            session = self._session(participant_id)
            if session.restart_wanted(generation):
                log.warning("media.restart_asked", participant_id=participant_id)
                deliveries = await self._restart(session)
            current = session.generation
        await self._deliver(deliveries)
        return current

    async def answer(self, participant_id: ParticipantId, generation: int, sdp: object) -> None:
        """The participant's answer to the pending offer of peer connection `generation`.

        Raises TriadError SDP_INVALID (malformed, oversized, not matching the offer),
        NO_PENDING_OFFER (nothing to answer, or another generation), or PARTICIPANT_NOT_FOUND;
        the peer keeps its pending offer and the room carries on.
        """
        async with self._lock:
            session = self._session(participant_id)
            deliveries = [await session.answer(generation, sdp)]
            if session.sharing and session.peer.screen_refused:
                # Their page has no screen to send any more (its capture ended with the tab).
                deliveries += await self._unpublish_screen(session)
        await self._deliver(deliveries)

    async def add_candidate(
        self,
        participant_id: ParticipantId,
        generation: int,
        candidate: Mapping[str, object] | None,
    ) -> None:
        """A trickled ICE candidate for peer connection `generation` (`{candidate, sdpMid,
        sdpMLineIndex}`); None or an empty candidate string ends the list. Raises
        CANDIDATE_INVALID (and the refusals of `candidates.py`), NO_PENDING_OFFER."""
        await self._session(participant_id).add_candidate(generation, candidate)

    def remote_candidates(self, participant_id: ParticipantId) -> tuple[tuple[str, int], ...]:
        """The remote ICE candidates the participant's peer connection holds (for checks)."""
        session = self._sessions.get(participant_id)
        return () if session is None else session.peer.remote_candidates()

    async def close(self) -> None:
        """Close every peer connection and wait for their tasks. Safe to call again."""
        if self._closing is not None:
            await asyncio.shield(self._closing)
            return
        self._closing = asyncio.get_running_loop().create_future()
        try:
            current = asyncio.current_task()
            tasks = [t for t in self._tasks if t is not current]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            async with self._lock:
                sessions = list(self._sessions.values())
                self._sessions.clear()
                for session in sessions:
                    await self._drop(session.peer, notify=False)
        finally:
            self._closing.set_result(None)

    def stats(self) -> SfuStats:
        return self._counters.snapshot(peers=len(self._sessions))

    # Internals ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closing is not None:
            raise RuntimeError("the SFU is closed")

    def _session(self, participant_id: ParticipantId) -> MediaSession:
        session = self._sessions.get(participant_id)
        if session is None:
            raise TriadError(
                ErrorCode.PARTICIPANT_NOT_FOUND, "no media connection for this participant"
            )
        return session

    def _new_peer(self, participant_id: ParticipantId, *, screen: bool = False) -> Peer:
        """A peer connection for the participant, sending them everyone else's media and
        everyone else theirs (their shared screen too when `screen`)."""
        peer = Peer(
            participant_id,
            self._config,
            self._counters,
            on_audio_level=lambda level: self._on_audio_level(participant_id, level),
            on_failed=lambda: self._on_failed(peer),
            on_quality=lambda track, paused: self._on_quality(peer, track, paused),
            active_speaker=lambda: self._speaker.active,
        )
        if screen:
            peer.share_screen()
        for other in self._sessions.values():
            if other.participant_id == participant_id:
                continue
            for publication in other.peer.publications.values():
                peer.subscribe(publication)
            for publication in peer.publications.values():
                other.peer.subscribe(publication)
        return peer

    async def _restart(self, session: MediaSession) -> list[Delivery | None]:
        """Replace the session's peer connection: the others first renegotiate without the
        old one, then the new one is added (their offer for it follows their answer)."""
        await self._drop(session.peer)
        deliveries = await self._offers(s for s in self._sessions.values() if s is not session)
        session.replace(self._new_peer(session.participant_id, screen=session.sharing))
        log.info(
            "media.session_restarted",
            participant_id=session.participant_id,
            generation=session.generation,
        )
        return deliveries + await self._offers(self._sessions.values())

    async def _unpublish_screen(self, session: MediaSession) -> list[Delivery | None]:
        session.sharing = False
        for other in self._sessions.values():
            if other is not session:
                other.peer.unsubscribe(session.participant_id, "screen")
        session.peer.unshare_screen()
        log.info("media.screen_unshared", participant_id=session.participant_id)
        return await self._offers(self._sessions.values())

    async def _drop(self, peer: Peer, *, notify: bool = True) -> None:
        for other in self._sessions.values():
            if other.peer is not peer:
                other.peer.unsubscribe(peer.participant_id)
        now = asyncio.get_running_loop().time()
        if self._speaker.forget(peer.participant_id, now) and notify:
            self._on_active_speaker(self._speaker.active)
        await peer.close()
        log.info("media.peer_closed", participant_id=peer.participant_id, **vars(peer.summary()))

    async def _offers(self, sessions: Iterable[MediaSession]) -> list[Delivery | None]:
        return [await session.offer() for session in list(sessions)]

    async def _deliver(self, deliveries: list[Delivery | None]) -> None:
        """Hand offers to the participants outside the lock: a sink may answer at once."""
        for delivery in deliveries:
            session = None if delivery is None else self._sessions.get(delivery.participant_id)
            if delivery is None or session is None or not session.still_for(delivery):
                # Superseded while earlier offers were delivered (a recovery, a leave, a new
                # connection): an older peer connection's offer never follows a newer one's.
                continue
            try:
                await delivery.send()
            except Exception as exc:  # one undeliverable offer must not stop the others
                log.warning(
                    "media.offer_undelivered",
                    participant_id=delivery.participant_id,
                    error=type(exc).__name__,
                )

    def _on_failed(self, peer: Peer) -> None:
        session = self._sessions.get(peer.participant_id)
        if self._closing is None and session is not None and session.peer is peer:
            log.warning("media.peer_failed", participant_id=peer.participant_id)
            if session.recovers(peer):
                self._spawn(self._recover(peer))

    async def _recover(self, failed: Peer) -> None:
        """A connected participant gets a new peer connection (a new generation and offer)
        rather than a frozen tile; one who is not connected gets it when they return."""
        await asyncio.sleep(RECOVERY_GRACE)
        async with self._lock:
            session = self._sessions.get(failed.participant_id)
            if self._closing is not None or session is None or not session.recovers(failed):
                return
            deliveries = await self._restart(session)
        await self._deliver(deliveries)

    def _on_quality(self, peer: Peer, track: TrackKey, paused: bool) -> None:
        """A publisher's video (camera or shared screen) to this peer's participant was paused
        to fit their link, or resumed: their page shows it on that tile."""
        session = self._sessions.get(peer.participant_id)
        if self._closing is not None or session is None or session.peer is not peer:
            return
        if paused:
            self._counters.video_pauses += 1
        if session.connection is not None:
            publisher, screen = track[0], track[1] == "screen"
            news = session.connection.send_media_quality(
                publisher, video_paused=paused, screen=screen
            )
            self._spawn(news)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        exc = None if task.cancelled() else task.exception()
        if exc is not None:
            log.error("media.task_failed", **logs.failure(exc))

    def _on_audio_level(self, participant_id: ParticipantId, level: int) -> None:
        now = asyncio.get_running_loop().time()
        if self._speaker.observe(participant_id, level, now):
            self._on_active_speaker(self._speaker.active)
