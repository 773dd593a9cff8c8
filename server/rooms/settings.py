"""How long a room holds a dropped participant's seat, waits before ending when empty, and
lets a consult run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RoomSettings:
    reconnect_grace: float
    empty_room_grace: float
    # A consult ends by itself this long after its scheduled end, or (unscheduled, or a first
    # host admitted after that) this long after the first host was admitted.
    overrun_grace: float = 3600.0
    max_duration: float = 4 * 3600.0
    # Several workers: how often a worker checks whether a consult it holds was ended by a call
    # another worker served, whose word was lost (`registry.sweep_ended`).
    ended_sweep: float = 15.0

    def __post_init__(self) -> None:
        if self.reconnect_grace < 0 or self.empty_room_grace < 0:
            raise ValueError("grace periods must not be negative")
        if self.overrun_grace < 0 or self.max_duration <= 0:
            raise ValueError("a consult's time limits must be positive")
        if self.ended_sweep <= 0:
            raise ValueError("the ended sweep's interval must be positive")
