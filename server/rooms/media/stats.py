"""Counters the forwarding path keeps, and the frozen snapshot tests and benches read."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from server.ids import ParticipantId

Kind = Literal["audio", "video"]
TrackKey = tuple[ParticipantId, Kind]


@dataclass
class Counters:
    """Mutable counters, one set per Sfu. Plain integer bumps: this is the per-frame path."""

    received: Counter[TrackKey] = field(default_factory=Counter)
    forwarded: Counter[TrackKey] = field(default_factory=Counter)
    dropped: Counter[TrackKey] = field(default_factory=Counter)
    keyframe_requests_received: Counter[ParticipantId] = field(default_factory=Counter)
    keyframe_requests_sent: Counter[ParticipantId] = field(default_factory=Counter)
    decoded_frames: int = 0

    def snapshot(self, peers: int) -> SfuStats:
        return SfuStats(
            peers=peers,
            received_frames=MappingProxyType(dict(self.received)),
            forwarded_frames=MappingProxyType(dict(self.forwarded)),
            dropped_frames=MappingProxyType(dict(self.dropped)),
            keyframe_requests_received=MappingProxyType(dict(self.keyframe_requests_received)),
            keyframe_requests_sent=MappingProxyType(dict(self.keyframe_requests_sent)),
            decoded_frames=self.decoded_frames,
        )


@dataclass(frozen=True)
class SfuStats:
    """What the SFU did since it started.

    received_frames: encoded frames assembled from each publisher's track.
    forwarded_frames: frames handed to subscribers' senders, summed over subscribers.
    dropped_frames: frames a subscriber did not get (not yet connected, fell behind, resync).
    keyframe_requests_received: keyframe wishes for a publisher (subscriber PLI/FIR, new or
        resynced subscribers); keyframe_requests_sent: PLIs actually sent after rate limiting.
    decoded_frames: frames the server decoded; stays 0 with encoded forwarding.
    """

    peers: int
    received_frames: MappingProxyType[TrackKey, int]
    forwarded_frames: MappingProxyType[TrackKey, int]
    dropped_frames: MappingProxyType[TrackKey, int]
    keyframe_requests_received: MappingProxyType[ParticipantId, int]
    keyframe_requests_sent: MappingProxyType[ParticipantId, int]
    decoded_frames: int
