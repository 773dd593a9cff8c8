"""How long a room holds a dropped participant's seat, and waits before ending when empty."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RoomSettings:
    reconnect_grace: float
    empty_room_grace: float

    def __post_init__(self) -> None:
        if self.reconnect_grace < 0 or self.empty_room_grace < 0:
            raise ValueError("grace periods must not be negative")
