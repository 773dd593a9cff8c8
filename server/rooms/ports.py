"""What a consult room needs from outside, declared here and implemented by its callers.

Rooms know nothing of Socket.IO, the notes channel or how consults are stored: the signaling
layer hands each participant's connection in as a `Channel`, and the app wiring supplies
`ConsultRecords` (the database) and `PlanKeeper` (the notes channel)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ..consults.audit import AuditAction
from ..consults.care import CareState
from ..consults.model import Actor
from ..errors import ErrorCode
from ..ids import ConsultId, ParticipantId
from .events import ServerEvent


class Channel(Protocol):
    """One live connection of one participant."""

    async def send(self, message: ServerEvent) -> None:
        """Deliver a server event to this connection (never raises for a gone peer)."""

    async def close(self, code: ErrorCode | None = None, message: str = "") -> None:
        """Disconnect the peer, first telling it why (an `error` event) when there is a code."""


class ConsultRecords(Protocol):
    """The persisted side of a consult's lifecycle; every change writes its audit event."""

    async def mark_live(self, consult_id: ConsultId) -> None:
        """`scheduled` -> `live` on the first admission; a no-op otherwise."""

    async def end(self, consult_id: ConsultId, actor: Actor) -> bool:
        """End the consult; True for the one call that changed it, False when already ended."""

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
    """Saves the consult's notes as its plan when it ends."""

    async def save_plan(self, consult_id: ConsultId) -> str:
        """Freeze the notes into the consult's plan, exactly once; returns the plan id (the
        same id to every caller, however many race)."""


class RoomMedia(Protocol):
    """The media plane of one room (the SFU in `rooms/media`): one peer connection per admitted
    participant, the server always the offerer."""

    async def add(self, participant_id: ParticipantId) -> None: ...

    async def remove(self, participant_id: ParticipantId) -> None: ...

    async def answer(self, participant_id: ParticipantId, sdp: str) -> None: ...

    async def add_candidate(
        self, participant_id: ParticipantId, candidate: Mapping[str, object] | None
    ) -> None: ...

    async def close(self) -> None: ...


class IceServers(Protocol):
    """The STUN/TURN list handed to one participant's browser (TURN credentials are minted
    per participant)."""

    def __call__(self, participant_id: ParticipantId) -> list[dict[str, Any]]: ...
