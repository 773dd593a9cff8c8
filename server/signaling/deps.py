"""What the signaling layer is handed by the app: services opened at startup."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..auth.roles import Role
from ..consults.access import ParticipantAccess
from ..ids import ConsultId, ParticipantId
from ..rooms.registry import RoomRegistry


@dataclass(frozen=True)
class SocketLimits:
    events_per_second: float
    event_burst: int
    max_message_bytes: int

    def __post_init__(self) -> None:
        if self.events_per_second <= 0 or self.event_burst < 1 or self.max_message_bytes < 1:
            raise ValueError("socket limits must be positive")


class SyncReply(Protocol):
    @property
    def update(self) -> bytes: ...
    @property
    def state_vector(self) -> bytes: ...


class Applied(Protocol):
    @property
    def seq(self) -> int: ...


class Notes(Protocol):
    """The notes channel as signaling uses it (`server.notes.service.NotesService`)."""

    async def sync(
        self, consult_id: ConsultId, role: Role, doc: str, state_vector: bytes
    ) -> SyncReply: ...

    async def apply(
        self,
        consult_id: ConsultId,
        participant_id: ParticipantId,
        role: Role,
        doc: str,
        update: bytes,
    ) -> Applied: ...


@dataclass(frozen=True)
class SignalingDeps:
    access: ParticipantAccess
    rooms: RoomRegistry
    notes: Notes
    limits: SocketLimits
