"""The media plane's share of the metrics (`server/metrics.py`): the process's tally of
packets, frames and keyframe requests handed over in batches, and each peer connection's
place in the by-state gauge."""

from __future__ import annotations

from dataclasses import replace

from prometheus_client import Counter

from ... import metrics
from .stats import TALLY, MediaTally

# What has been handed to Prometheus so far (a copy of `TALLY` at the last flush).
_reported = MediaTally()


def flush() -> None:
    """Add what the tally counted since the last flush to the counters. Called by the metrics
    sampler and before each exposition; cheap (a few increments), whatever the traffic."""
    global _reported
    for kind in metrics.MEDIA_KINDS:
        now, before = TALLY.of(kind), _reported.of(kind)
        _add(metrics.MEDIA_FORWARDED_PACKETS, kind, now.packets - before.packets)
        _add(metrics.MEDIA_FORWARDED_FRAMES, kind, now.frames - before.frames)
        _add(metrics.MEDIA_DROPPED_FRAMES, kind, now.dropped_frames - before.dropped_frames)
    keyframes = metrics.MEDIA_KEYFRAME_REQUESTS
    _add(keyframes, "asked", TALLY.keyframes_asked - _reported.keyframes_asked)
    _add(keyframes, "sent", TALLY.keyframes_sent - _reported.keyframes_sent)
    _reported = MediaTally(
        audio=replace(TALLY.audio),
        video=replace(TALLY.video),
        keyframes_asked=TALLY.keyframes_asked,
        keyframes_sent=TALLY.keyframes_sent,
    )


def _add(counter: Counter, label: str, amount: int) -> None:
    if amount > 0:
        counter.labels(label).inc(amount)


class PeerStateMeter:
    """One peer connection in `triad_peer_connections`: counted under its current state from
    creation until it is closed, whoever closes it."""

    def __init__(self) -> None:
        self._state: str | None = None
        self.move("new")

    def move(self, state: str) -> None:
        now = state if state in metrics.PEER_STATES else None  # closed: counted no more
        if now == self._state:
            return
        if self._state is not None:
            metrics.PEER_CONNECTIONS.labels(self._state).dec()
        if now is not None:
            metrics.PEER_CONNECTIONS.labels(now).inc()
        self._state = now
