"""What a consult room needs from outside, declared here and implemented by its callers.

Rooms know nothing of Socket.IO, the notes channel or how consults are stored: the signaling
layer hands each participant's connection in as a `Channel`, and the app wiring supplies
`ConsultRecords` (the database), `PlanKeeper` (the notes channel) and the media plane
(`RoomMedia`, through a `MediaFactory`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from ..consults.audit import AuditAction
from ..consults.care import CareState
from ..consults.model import Actor
from ..errors import ErrorCode
from ..ids import ConsultId, ParticipantId
from .events import ServerEvent
from .media import MediaSink, SpeakerListener


class Channel(Protocol):
    """One live connection of one participant."""

    @property
    def fanout(self) -> Fanout:
        """How an event reaches this connection together with others (`Fanout`)."""

    async def send(self, message: ServerEvent) -> None:
        """Deliver a server event to this connection (never raises for a gone peer)."""

    async def close(self, code: ErrorCode | None = None, message: str = "") -> None:
        """Disconnect the peer, first telling it why (an `error` event) when there is a code."""


class Fanout(Protocol):
    """Delivers one event to several connections: those sharing a fanout are sent it with
    one encoding (each notes update reaches two readers; per connection, it was encoded and
    queued twice)."""

    async def send(self, channels: Sequence[Channel], message: ServerEvent) -> None:
        """`message` to each of `channels` (all of this fanout; never raises for a gone peer)."""


class ConsultRecords(Protocol):
    """The persisted side of a consult's lifecycle; every change writes its audit event."""

    async def mark_live(self, consult_id: ConsultId) -> None:
        """`scheduled` -> `live` on the first admission; a no-op otherwise."""

    async def end(self, consult_id: ConsultId, actor: Actor) -> bool:
        """End the consult; True for the one call that changed it, False when already ended."""

    async def ended_among(self, consult_ids: Sequence[ConsultId]) -> Mapping[ConsultId, str]:
        """Those of `consult_ids` whose row is ended, each with who ended it (`Actor.label`)."""

    async def record(
        self,
        consult_id: ConsultId,
        actor: Actor,
        action: AuditAction,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Append an audit event (ids and codes only)."""


class Revoker(Protocol):
    """Revokes a participant's join tokens (audited, and published to every process's sockets):
    what a host's `remove` does beyond the room."""

    async def revoke(
        self,
        consult_id: ConsultId,
        participant_id: ParticipantId,
        actor: Actor,
        *,
        removed: bool = False,
    ) -> object: ...


class CareRecords(Protocol):
    """The care workflow's facts a room acts on: consent before a client is admitted, who sits
    with whom, and the check-ins' safety flags."""

    async def care_state(self, consult_id: ConsultId) -> CareState: ...


class PlanKeeper(Protocol):
    """Saves the consult's notes as its plan when it ends; lets go of them when its room
    closes without ending."""

    async def save_plan(self, consult_id: ConsultId) -> str:
        """Freeze the notes into the consult's plan, exactly once; returns the plan id (the
        same id to every caller, however many race)."""

    async def release(self, consult_id: ConsultId) -> None:
        """Drop this process's copy of the consult's notes: its room left memory without
        ending, and another worker may write them before a room here holds them again. The
        database has every acknowledged update; the next room here loads them afresh."""


class RoomMedia(Protocol):
    """The media plane of one room (`rooms/media/sfu.Sfu`): a media session per admitted
    participant, which owns their peer connection's number (`pc`, its generation), offers,
    answers, candidates, restarts and recovery. The room tells it who is admitted and connected;
    offers and media-quality news reach the participant through the `MediaSink` the room hands in
    with the connection."""

    def generation(self, participant_id: ParticipantId) -> int | None:
        """The current peer connection's number (None: the participant has no media)."""

    async def add(self, participant_id: ParticipantId, connection: MediaSink | None) -> None:
        """Admitted: media starts. Already here: a new connection of theirs, so a new peer
        connection (the next `pc`)."""

    def disconnect(self, participant_id: ParticipantId) -> None:
        """Their connection dropped; the seat (and the session) are held."""

    def sharing(self, participant_id: ParticipantId) -> bool:
        """Whether their shared screen is published (it ends when their page answers it away)."""

    async def share_screen(self, participant_id: ParticipantId) -> None:
        """Publish their shared screen to everyone else (kept across their peer connections)."""

    async def unshare_screen(self, participant_id: ParticipantId) -> None: ...

    async def remove(self, participant_id: ParticipantId) -> None: ...

    async def restart(self, participant_id: ParticipantId, generation: int) -> int:
        """The browser's peer connection `generation` failed; returns the current number."""

    async def answer(self, participant_id: ParticipantId, generation: int, sdp: str) -> None: ...

    async def add_candidate(
        self,
        participant_id: ParticipantId,
        generation: int,
        candidate: Mapping[str, object] | None,
    ) -> None: ...

    async def close(self) -> None: ...


# Builds a room's media plane, handed what it reports about the room as a whole.
MediaFactory = Callable[[SpeakerListener], RoomMedia]


class IceServers(Protocol):
    """The STUN/TURN list handed to one participant's browser (TURN credentials are minted
    per participant)."""

    def __call__(self, participant_id: ParticipantId) -> list[dict[str, Any]]: ...
