"""Active-speaker detection from RFC 6464 audio levels.

Each audio RTP packet a publisher sends carries its level in -dBov (0 loudest, 127 silence) in
the ssrc-audio-level header extension; aiortc and browsers both send it. Reading it costs
nothing (no decode), unlike measuring Opus energy. The detector smooths levels per participant,
picks the loudest one above a speech threshold, and switches only when another speaker is
clearly louder, or the current one has been quiet for a while, so tiles do not flicker.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from server.ids import ParticipantId


@dataclass(frozen=True)
class SpeakerPolicy:
    # Louder than -50 dBov counts as sound; room noise sits around -60 to -70 dBov.
    speech_level_dbov: int = 50
    # Exponential smoothing per packet (50 packets a second): ~0.2 s time constant.
    smoothing: float = 0.1
    # Another participant must be this many dB louder to take over from a current speaker.
    switch_margin_db: float = 6.0
    # A quiet current speaker stays active this long when nobody else speaks (pauses).
    hold_seconds: float = 1.5
    # Decisions at most this often.
    decide_every_seconds: float = 0.25

    def __post_init__(self) -> None:
        if not 0 <= self.speech_level_dbov <= 127:
            raise ValueError("speech_level_dbov must be within 0..127")
        if not 0 < self.smoothing <= 1:
            raise ValueError("smoothing must be within (0, 1]")
        if self.switch_margin_db < 0 or self.hold_seconds < 0 or self.decide_every_seconds < 0:
            raise ValueError("margins and durations must not be negative")


@dataclass
class _Level:
    loudness: float  # 127 - level: higher is louder
    last_loud: float


@dataclass
class SpeakerDetector:
    """Feed it `observe()`; it returns the new active speaker when that changes."""

    policy: SpeakerPolicy = field(default_factory=SpeakerPolicy)
    active: ParticipantId | None = None
    _levels: dict[ParticipantId, _Level] = field(default_factory=dict)
    _next_decision: float = 0.0

    def observe(self, participant: ParticipantId, level_dbov: int, now: float) -> bool:
        """Record one packet's level; True when `active` changed."""
        loudness = 127 - min(max(level_dbov, 0), 127)
        entry = self._levels.get(participant)
        if entry is None:
            entry = self._levels[participant] = _Level(loudness=0.0, last_loud=float("-inf"))
        entry.loudness += self.policy.smoothing * (loudness - entry.loudness)
        if entry.loudness >= 127 - self.policy.speech_level_dbov:
            entry.last_loud = now
        if now < self._next_decision:
            return False
        self._next_decision = now + self.policy.decide_every_seconds
        return self._decide(now)

    def forget(self, participant: ParticipantId, now: float) -> bool:
        """The participant left; True when `active` changed."""
        self._levels.pop(participant, None)
        if self.active == participant:
            self.active = None
            self._decide(now)
            return True
        return False

    def _decide(self, now: float) -> bool:
        threshold = 127 - self.policy.speech_level_dbov
        speaking = {p: e.loudness for p, e in self._levels.items() if e.loudness >= threshold}
        chosen = self.active
        if speaking:
            loudest = max(speaking, key=lambda p: speaking[p])
            current = speaking.get(self.active) if self.active is not None else None
            if current is None or speaking[loudest] >= current + self.policy.switch_margin_db:
                chosen = loudest
        elif self.active is not None:
            entry = self._levels.get(self.active)
            if entry is None or now - entry.last_loud > self.policy.hold_seconds:
                chosen = None
        if chosen != self.active:
            self.active = chosen
            return True
        return False
