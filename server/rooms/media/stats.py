"""Counters the forwarding path keeps, and the frozen snapshot tests and benches read."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from server.ids import ParticipantId

Kind = Literal["audio", "video"]
# A publisher's tracks: their microphone, their camera and, while they share it, their screen
# (a second video).
TrackName = Literal["audio", "video", "screen"]
TrackKey = tuple[ParticipantId, TrackName]


@dataclass
class Counters:
    """Mutable counters, one set per Sfu. Plain integer bumps: this is the per-frame path."""

    received: Counter[TrackKey] = field(default_factory=Counter)
    forwarded: Counter[TrackKey] = field(default_factory=Counter)
    dropped: Counter[TrackKey] = field(default_factory=Counter)
    keyframe_requests_received: Counter[ParticipantId] = field(default_factory=Counter)
    keyframe_requests_sent: Counter[ParticipantId] = field(default_factory=Counter)
    nacks_sent: Counter[ParticipantId] = field(default_factory=Counter)
    retransmissions: Counter[Kind] = field(default_factory=Counter)
    retransmissions_refused: Counter[Kind] = field(default_factory=Counter)
    video_pauses: int = 0
    decoded_frames: int = 0

    def snapshot(self, peers: int) -> SfuStats:
        return SfuStats(
            peers=peers,
            received_frames=MappingProxyType(dict(self.received)),
            forwarded_frames=MappingProxyType(dict(self.forwarded)),
            dropped_frames=MappingProxyType(dict(self.dropped)),
            keyframe_requests_received=MappingProxyType(dict(self.keyframe_requests_received)),
            keyframe_requests_sent=MappingProxyType(dict(self.keyframe_requests_sent)),
            nacks_sent=MappingProxyType(dict(self.nacks_sent)),
            retransmissions=sum(self.retransmissions.values()),
            retransmissions_refused=sum(self.retransmissions_refused.values()),
            video_pauses=self.video_pauses,
            decoded_frames=self.decoded_frames,
        )


@dataclass(slots=True)
class KindTally:
    """One kind's counts in this process, all rooms together (see `TALLY`)."""

    packets: int = 0
    frames: int = 0
    dropped_frames: int = 0


@dataclass(slots=True)
class MediaTally:
    """What the media plane of this process did since it started, for the metrics: plain
    integer adds on the packet path (a Prometheus increment there would take a lock and, with
    several workers, write to a shared file per packet), handed to Prometheus in batches by
    `metering.flush`."""

    audio: KindTally = field(default_factory=KindTally)
    video: KindTally = field(default_factory=KindTally)
    keyframes_asked: int = 0
    keyframes_sent: int = 0

    def of(self, kind: Kind) -> KindTally:
        return self.video if kind == "video" else self.audio


# One per process: rooms come and go, their counts must not go with them.
TALLY = MediaTally()


@dataclass(frozen=True)
class SfuStats:
    """What the SFU did since it started.

    received_frames: frames received from each publisher's track (video and screen: packets
        ending a frame; audio: packets, one 20 ms frame each).
    forwarded_frames: the same, forwarded to subscribers, summed over subscribers.
    dropped_frames: frames a subscriber did not get (not yet connected, paused, resync).
    keyframe_requests_received: keyframe wishes for a publisher (subscriber PLI/FIR, new or
        resynced subscribers); keyframe_requests_sent: PLIs actually sent after rate limiting.
    nacks_sent: missing packets asked of each publisher (once each).
    retransmissions / retransmissions_refused: packets resent to subscribers from history,
        and NACKed packets not resent because the receiver's budget was spent.
    video_pauses: times a subscriber's video from a publisher was paused to fit its link.
    decoded_frames: frames the server decoded; stays 0: the SFU forwards packets.
    """

    peers: int
    received_frames: MappingProxyType[TrackKey, int]
    forwarded_frames: MappingProxyType[TrackKey, int]
    dropped_frames: MappingProxyType[TrackKey, int]
    keyframe_requests_received: MappingProxyType[ParticipantId, int]
    keyframe_requests_sent: MappingProxyType[ParticipantId, int]
    nacks_sent: MappingProxyType[ParticipantId, int]
    retransmissions: int
    retransmissions_refused: int
    video_pauses: int
    decoded_frames: int


@dataclass(frozen=True)
class MediaSummary:
    """What one peer connection's media did, logged when it closes: counts only, so an
    operator can tell a weak link (NACKs, refusals, pauses) from a broken one."""

    received_packets: int
    nacks_sent: int
    keyframe_requests_sent: int
    refused_packets: int
    sent_packets: int
    nacked: int
    retransmitted: int
    not_in_history: int
    retransmissions_refused: int
    unprotectable_packets: int
    video_pauses: int
    rtt_ms: int
    # The ICE candidate types media went over ("host", "srflx", "prflx", "relay"; "none" when
    # ICE never nominated a pair): the participant's side "relay" means through TURN.
    local_candidate: str = "none"
    remote_candidate: str = "none"

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if isinstance(value, int) and value < 0:
                raise ValueError(f"{name} cannot be negative")
