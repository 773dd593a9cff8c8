"""What an offer tells a participant: its SDP, and which m-line carries whose track."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from server.ids import ParticipantId

from .config import IceServer
from .stats import Kind

KINDS: tuple[Kind, Kind] = ("audio", "video")


@dataclass(frozen=True)
class TrackInfo:
    """Which m-line carries whose media. For the offer's own participant, the mids it sends on.
    `screen`: the line carries the participant's shared screen, not their camera."""

    mid: str
    participant_id: ParticipantId
    kind: Literal["audio", "video"]
    screen: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be audio or video, not {self.kind!r}")
        if self.screen and self.kind != "video":
            raise ValueError("a shared screen is a video")


@dataclass(frozen=True)
class Offer:
    sdp: str
    tracks: tuple[TrackInfo, ...]
    # The participant's ICE servers with TURN credentials minted with this offer: a new peer
    # connection (a restart over a live socket, maybe hours after the join) uses these.
    ice_servers: tuple[IceServer, ...] = ()

    def __post_init__(self) -> None:
        if not self.sdp.startswith("v=0"):
            raise ValueError("an offer's SDP starts with v=0")
