"""A peer connection's round-trip time, from the LSR/DLSR of its receiver reports (RFC 3550
6.4.1).

Two figures: `smoothed` (what the operator reads) and `floor`, the least of the recent samples.
A sample includes however long the receiver's event loop took to notice our sender report, and
a busy receiver (a phone decoding two videos) can add hundreds of milliseconds. Spacing
retransmissions by that figure means a lost retransmission is not resent before the receiver
stops asking for it (aiortc gives up after 128 packets), and its video waits seconds for the
hole. The floor is the path's own delay: what a resend has to wait for.
"""

from __future__ import annotations

from collections import deque
from typing import Final

INITIAL: Final = 0.1  # seconds, until the first report says otherwise
MIN_SAMPLE: Final = 0.005  # loopback is faster, but a resend sooner than this is a duplicate
MAX_SAMPLE: Final = 5.0  # anything longer is a clock or a report we cannot trust
WINDOW: Final = 8  # samples (receiver reports every ~0.5-1 s): the floor follows a path change


class RoundTrip:
    def __init__(self) -> None:
        self.smoothed = INITIAL
        self._recent: deque[float] = deque(maxlen=WINDOW)

    @property
    def floor(self) -> float:
        return min(self._recent, default=INITIAL)

    def add(self, seconds: float) -> bool:
        """One sample; False (and nothing changes) when it cannot be a round trip."""
        if not 0 < seconds < MAX_SAMPLE:
            return False
        sample = max(MIN_SAMPLE, seconds)
        self._recent.append(sample)
        self.smoothed = 0.8 * self.smoothed + 0.2 * sample
        return True
