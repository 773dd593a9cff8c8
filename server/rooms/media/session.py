"""One participant's media session: which of their peer connections is current, where its
offers go, and what a failure or a new connection of theirs does to it.

A session outlives its peer connections. Each new one (a new connection of the participant, a
restart they ask for, a recovery after a failure) is one *generation* on: the `pc` number of the
protocol. Offers go out tagged with their generation, and an answer, candidate or restart that
names another one is refused (`NO_PENDING_OFFER`), so nothing meant for an old peer connection
reaches the new one. The `Sfu` owns the sessions of a room, builds their peers and wires who
receives whom; the session owns the rest, as LiveKit's participant owns its transport.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from aiortc import exceptions as rtc_errors

from server.errors import ErrorCode, TriadError
from server.ids import ParticipantId

from .offers import Offer
from .peer import Peer


class MediaSink(Protocol):
    """The participant's connection as the media plane sees it (the room implements it over
    their socket): where the offers of their current peer connection go, and what it has to
    tell them about the media they receive."""

    async def send_offer(self, offer: Offer, *, generation: int) -> None:
        """Deliver the offer of peer connection `generation`; its answer must name the same."""

    async def send_media_quality(
        self, publisher: ParticipantId, *, video_paused: bool, screen: bool = False
    ) -> None:
        """`publisher`'s video (`screen`: their shared screen) to this participant was paused
        (their link cannot take it) or resumed."""


@dataclass(frozen=True)
class Delivery:
    """An offer made under the SFU's lock, delivered after it (a sink may answer at once)."""

    participant_id: ParticipantId
    sink: MediaSink
    offer: Offer
    generation: int

    def __post_init__(self) -> None:
        if self.generation < 0:
            raise ValueError("a generation is never negative")

    async def send(self) -> None:
        await self.sink.send_offer(self.offer, generation=self.generation)


def _no_such_offer(message: str) -> TriadError:
    return TriadError(ErrorCode.NO_PENDING_OFFER, message)


class MediaSession:
    """One admitted participant's media, from admission to leaving. Not locked itself: the
    `Sfu` calls it under its own lock."""

    def __init__(self, peer: Peer, connection: MediaSink | None) -> None:
        self.participant_id = peer.participant_id
        self.peer = peer
        self.generation = 0
        # None while the participant is not connected: offers are made but go nowhere, and
        # a failed peer connection waits for them to come back.
        self.connection = connection
        # Whether they share their screen: each of their peer connections publishes it then.
        self.sharing = False

    def replace(self, peer: Peer) -> Peer:
        """The next generation's peer connection; returns the old one for the SFU to drop."""
        if peer.participant_id != self.participant_id:
            raise ValueError("a session's peers are all its participant's")
        old, self.peer = self.peer, peer
        self.generation += 1
        return old

    def still_for(self, delivery: Delivery) -> bool:
        """Whether an offer made earlier is for the current peer connection and connection."""
        return delivery.generation == self.generation and delivery.sink is self.connection

    def restart_wanted(self, generation: int) -> bool:
        """The participant's side of peer connection `generation` failed: True when that is
        the current one (replace it), False when it was already replaced."""
        if generation > self.generation:
            raise _no_such_offer("no such peer connection")
        return generation == self.generation

    def recovers(self, failed: Peer) -> bool:
        """The server's side of `failed` gave up: replace it now only when it is the current
        one and the participant is connected; otherwise their next connection brings a new one."""
        return failed is self.peer and self.connection is not None

    async def offer(self) -> Delivery | None:
        """Offer the current peer connection's changes (None: one is pending, or nobody to
        send it to)."""
        try:
            offer = await self.peer.make_offer()
        except rtc_errors.InvalidStateError:
            # aiortc closed it on a failure: the recovery, or the participant's return,
            # replaces it; the others' renegotiation must not stop here.
            return None
        if offer is None or self.connection is None:
            return None
        return Delivery(self.participant_id, self.connection, offer, self.generation)

    async def answer(self, generation: int, sdp: object) -> Delivery | None:
        """Apply the answer to peer connection `generation`; returns the offer of what changed
        while it was pending."""
        if await self._current(generation).accept_answer(sdp):
            return await self.offer()
        return None

    async def add_candidate(self, generation: int, candidate: Mapping[str, object] | None) -> None:
        await self._current(generation).add_candidate(candidate)

    def _current(self, generation: int) -> Peer:
        if generation != self.generation:
            raise _no_such_offer("no offer is outstanding for that")
        return self.peer
