"""The SFU of one consult room: a peer connection per admitted participant, and forwarding.

The room layer calls `add`/`remove` as participants are admitted and leave, relays answers and
trickled candidates, and implements `MediaEvents` to carry offers and active-speaker changes to
the clients. Nothing here knows about sockets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Protocol

from server import logs
from server.errors import ErrorCode, TriadError
from server.ids import ParticipantId

from .config import MediaConfig
from .peer import Offer, Peer, TrackInfo
from .speaker import SpeakerDetector
from .stats import Counters, SfuStats

__all__ = ["MediaEvents", "Offer", "Sfu", "SfuStats", "TrackInfo"]

logger = logs.get(__name__)


class MediaEvents(Protocol):
    """Implemented by the room layer."""

    async def send_offer(self, participant_id: ParticipantId, offer: Offer) -> None:
        """Deliver a server offer; the answer comes back through `Sfu.answer`."""

    def active_speaker_changed(self, participant_id: ParticipantId | None) -> None:
        """The loudest participant changed (None: nobody is speaking)."""

    def media_failed(self, participant_id: ParticipantId) -> None:
        """The participant's peer connection failed; only a new one can bring media back."""

    def media_quality(
        self, participant_id: ParticipantId, publisher: ParticipantId, video_paused: bool
    ) -> None:
        """`publisher`'s video to `participant_id` was paused (their link cannot take it) or
        resumed."""


class Sfu:
    """One per consult room. All methods run on the room's event loop."""

    def __init__(self, config: MediaConfig, events: MediaEvents) -> None:
        self._config = config
        self._events = events
        self._peers: dict[ParticipantId, Peer] = {}
        self._counters = Counters()
        self._speaker = SpeakerDetector()
        # Membership changes and offers/answers of all peers are serialised: they are rare
        # (joins, leaves, answers) and interleaving them is where renegotiation bugs live.
        self._lock = asyncio.Lock()
        self._closing: asyncio.Future[None] | None = None

    @property
    def participants(self) -> tuple[ParticipantId, ...]:
        return tuple(self._peers)

    @property
    def active_speaker(self) -> ParticipantId | None:
        return self._speaker.active

    async def add(self, participant_id: ParticipantId) -> None:
        """Give an admitted participant a peer connection, offer it, renegotiate the others.

        Adding a participant who is already here replaces their peer connection (a second
        connection of the same participant replaces the first).
        """
        async with self._lock:
            self._check_open()
            old = self._peers.pop(participant_id, None)
            if old is not None:
                await self._drop(old)
            peer = Peer(
                participant_id,
                self._config,
                self._counters,
                on_audio_level=lambda level: self._on_audio_level(participant_id, level),
                on_failed=lambda: self._on_failed(participant_id),
                on_quality=lambda publisher, paused: self._on_quality(
                    participant_id, publisher, paused
                ),
                active_speaker=lambda: self._speaker.active,
            )
            for other in self._peers.values():
                for publication in other.publications.values():
                    peer.subscribe(publication)
                for publication in peer.publications.values():
                    other.subscribe(publication)
            self._peers[participant_id] = peer
            logger.info("media.peer_added", participant_id=participant_id)
            offers = [await self._offer(p) for p in self._peers.values()]
        await self._deliver(offers)

    async def remove(self, participant_id: ParticipantId) -> None:
        """Close the participant's peer connection and renegotiate the others; no-op if unknown."""
        async with self._lock:
            peer = self._peers.pop(participant_id, None)
            if peer is None:
                return
            await self._drop(peer)
            offers = [await self._offer(p) for p in self._peers.values()]
        await self._deliver(offers)

    async def answer(self, participant_id: ParticipantId, sdp: str) -> None:
        """The participant's answer to the pending offer.

        Raises TriadError SDP_INVALID (malformed, oversized, not matching the offer),
        NO_PENDING_OFFER, or PARTICIPANT_NOT_FOUND; the peer keeps its pending offer and the
        room carries on.
        """
        async with self._lock:
            peer = self._peer(participant_id)
            offer_again = await peer.accept_answer(sdp)
            offers = [await self._offer(peer)] if offer_again else []
        await self._deliver(offers)

    async def add_candidate(
        self, participant_id: ParticipantId, candidate: Mapping[str, object] | None
    ) -> None:
        """A trickled ICE candidate from the participant (`{candidate, sdpMid, sdpMLineIndex}`);
        None or an empty candidate string ends the list. Raises CANDIDATE_INVALID."""
        peer = self._peer(participant_id)
        await peer.add_candidate(candidate)

    def remote_candidates(self, participant_id: ParticipantId) -> tuple[tuple[str, int], ...]:
        """The remote ICE candidates the participant's peer connection holds (for checks)."""
        peer = self._peers.get(participant_id)
        return () if peer is None else peer.remote_candidates()

    async def close(self) -> None:
        """Close every peer connection and wait for their tasks. Safe to call again."""
        if self._closing is not None:
            await asyncio.shield(self._closing)
            return
        self._closing = asyncio.get_running_loop().create_future()
        try:
            async with self._lock:
                peers = list(self._peers.values())
                self._peers.clear()
                for peer in peers:
                    await self._drop(peer, notify=False)
        finally:
            self._closing.set_result(None)

    def stats(self) -> SfuStats:
        return self._counters.snapshot(peers=len(self._peers))

    # Internals ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closing is not None:
            raise RuntimeError("the SFU is closed")

    def _peer(self, participant_id: ParticipantId) -> Peer:
        peer = self._peers.get(participant_id)
        if peer is None:
            raise TriadError(
                ErrorCode.PARTICIPANT_NOT_FOUND, "no media connection for this participant"
            )
        return peer

    async def _drop(self, peer: Peer, *, notify: bool = True) -> None:
        for other in self._peers.values():
            other.unsubscribe(peer.participant_id)
        now = asyncio.get_running_loop().time()
        if self._speaker.forget(peer.participant_id, now) and notify:
            self._events.active_speaker_changed(self._speaker.active)
        await peer.close()
        logger.info("media.peer_closed", participant_id=peer.participant_id)

    async def _offer(self, peer: Peer) -> tuple[ParticipantId, Offer] | None:
        offer = await peer.make_offer()
        return None if offer is None else (peer.participant_id, offer)

    async def _deliver(self, offers: list[tuple[ParticipantId, Offer] | None]) -> None:
        """Hand offers to the room layer outside the lock: its handler may answer at once."""
        for item in offers:
            if item is None:
                continue
            participant_id, offer = item
            try:
                await self._events.send_offer(participant_id, offer)
            except Exception as exc:  # one undeliverable offer must not stop the others
                logger.warning(
                    "media.offer_undelivered",
                    participant_id=participant_id,
                    error=type(exc).__name__,
                )

    def _on_failed(self, participant_id: ParticipantId) -> None:
        if self._closing is None and participant_id in self._peers:
            logger.warning("media.peer_failed", participant_id=participant_id)
            self._events.media_failed(participant_id)

    def _on_quality(
        self, participant_id: ParticipantId, publisher: ParticipantId, paused: bool
    ) -> None:
        if self._closing is None and participant_id in self._peers:
            if paused:
                self._counters.video_pauses += 1
            self._events.media_quality(participant_id, publisher, paused)

    def _on_audio_level(self, participant_id: ParticipantId, level: int) -> None:
        now = asyncio.get_running_loop().time()
        if self._speaker.observe(participant_id, level, now):
            self._events.active_speaker_changed(self._speaker.active)
