"""What one receiver decoded of one remote participant over a measuring window: frames per
second, and the freezes (gaps between decoded frames) a person would see.

A `FrameRecorder` is a `ClientPeer`'s `on_decoded` listener: it keeps the decode times of the
window only (bounded by the window's length times the frame rate), then turns them into
`Reception`s.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from itertools import pairwise

# A gap between decoded video frames longer than this is a freeze (a person sees the picture
# stop; shorter stalls read as a lower frame rate).
FREEZE_SECONDS = 1.0
# Video has "returned" once a receiver decodes at least this many frames within one second
# (half of 30 fps: a picture that moves again, not one stray frame).
RETURNED_FRAMES = 15
# At most this many decode times per remote track per window (10 min of 30 fps video, 50 fps
# audio); past it the recorder stops recording that track rather than grow.
MAX_TIMES_PER_TRACK = 30_000


@dataclass(frozen=True)
class TrackWindow:
    """One remote track as one receiver decoded it during the window."""

    frames: int
    seconds: float  # the window's length
    longest_gap_s: float  # the window's edges count as frames: nothing decoded = the window
    freezes: int  # gaps over FREEZE_SECONDS
    frozen_s: float  # the total of those gaps

    def __post_init__(self) -> None:
        if self.frames < 0 or self.freezes < 0 or self.seconds <= 0:
            raise ValueError(f"impossible track figures: {self}")
        if not 0 <= self.frozen_s <= self.seconds + 1e-6:
            raise ValueError(f"frozen longer than the window: {self}")

    @property
    def fps(self) -> float:
        return self.frames / self.seconds

    @classmethod
    def from_times(cls, times: list[float], start: float, end: float) -> TrackWindow:
        """Figures for decode `times` (ascending) within [start, end]."""
        inside = [t for t in times if start <= t <= end]
        edges = [start, *inside, end]
        gaps = [b - a for a, b in pairwise(edges)]
        freezes = [g for g in gaps if g > FREEZE_SECONDS]
        return cls(len(inside), end - start, max(gaps), len(freezes), sum(freezes))


@dataclass(frozen=True)
class Reception:
    """What `receiver` decoded of `sender` in the window."""

    receiver: str
    sender: str
    audio: TrackWindow
    video: TrackWindow
    # Decoded over the whole run, from the first offer (warm-up included).
    audio_in_run: int
    video_in_run: int

    def __post_init__(self) -> None:
        if self.receiver == self.sender:
            raise ValueError("a participant does not receive itself")
        if self.audio_in_run < self.audio.frames or self.video_in_run < self.video.frames:
            raise ValueError(f"fewer frames in the run than in its window: {self}")


class FrameRecorder:
    """Decode times per (remote participant, kind), kept only while recording."""

    def __init__(self) -> None:
        self._times: defaultdict[tuple[str, str], list[float]] = defaultdict(list)
        self._recording = False
        self.total: defaultdict[tuple[str, str], int] = defaultdict(int)  # the whole run

    def __call__(self, sender: str, kind: str, at: float) -> None:
        self.total[(sender, kind)] += 1
        if not self._recording:
            return
        times = self._times[(sender, kind)]
        if len(times) < MAX_TIMES_PER_TRACK:
            times.append(at)

    def start(self) -> None:
        self._times.clear()
        self._recording = True

    def stop(self) -> None:
        self._recording = False

    def returned_at(self, sender: str, kind: str, since: float) -> float | None:
        """When `sender`'s track was decoded at `RETURNED_FRAMES` a second again, after
        `since` (the end of the first such second), or None if it has not yet."""
        return returned_at(self._times.get((sender, kind), []), since)

    def window(self, sender: str, kind: str, start: float, end: float) -> TrackWindow:
        return TrackWindow.from_times(self._times.get((sender, kind), []), start, end)


def returned_at(times: list[float], since: float) -> float | None:
    """The first decode time t after `since` with `RETURNED_FRAMES` decodes in [t - 1 s, t]."""
    after = [t for t in times if t >= since]
    for i in range(RETURNED_FRAMES - 1, len(after)):
        if after[i] - after[i - RETURNED_FRAMES + 1] <= 1.0:
            return after[i]
    return None
