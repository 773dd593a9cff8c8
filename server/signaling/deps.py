"""What the signaling layer is handed by the app: services opened at startup."""

from __future__ import annotations

from dataclasses import dataclass

from ..cluster.placement import Placement
from ..consults.access import ParticipantAccess
from ..consults.access_events import AccessEvents
from ..notes.service import NotesService
from ..rooms.registry import RoomRegistry


@dataclass(frozen=True)
class SocketLimits:
    events_per_second: float
    event_burst: int
    # `join` and `media-restart`, each costly: their own bucket on top of the general one.
    joins_per_second: float = 1.0
    join_burst: int = 5
    # An authenticated socket that has not joined this long after connecting is closed.
    join_timeout: float = 10.0
    max_unjoined_per_participant: int = 3
    # Clock skew allowed on a token's `exp`: a socket is closed this long after it.
    token_leeway: float = 0.0
    # Every live socket's token is re-checked against the database this often.
    access_recheck: float = 30.0

    def __post_init__(self) -> None:
        if self.events_per_second <= 0 or self.event_burst < 1:
            raise ValueError("socket limits must be positive")
        if self.joins_per_second <= 0 or self.join_burst < 1 or self.join_timeout <= 0:
            raise ValueError("socket join limits must be positive")
        if self.max_unjoined_per_participant < 1 or self.token_leeway < 0:
            raise ValueError("socket limits must be positive")
        if self.access_recheck <= 0:
            raise ValueError("socket limits must be positive")


@dataclass(frozen=True)
class SignalingDeps:
    access: ParticipantAccess
    rooms: RoomRegistry
    notes: NotesService
    limits: SocketLimits
    access_events: AccessEvents
    # Where consults live when the server is several workers (None: one process holds all).
    placement: Placement | None = None
