"""What the signaling layer is handed by the app: services opened at startup."""

from __future__ import annotations

from dataclasses import dataclass

from ..consults.access import ParticipantAccess
from ..notes.service import NotesService
from ..rooms.registry import RoomRegistry


@dataclass(frozen=True)
class SocketLimits:
    events_per_second: float
    event_burst: int

    def __post_init__(self) -> None:
        if self.events_per_second <= 0 or self.event_burst < 1:
            raise ValueError("socket limits must be positive")


@dataclass(frozen=True)
class SignalingDeps:
    access: ParticipantAccess
    rooms: RoomRegistry
    notes: NotesService
    limits: SocketLimits
