"""The server's estimate of one publisher's uplink, sent to it as REMB.

Loss-based (the SFU no longer runs aiortc's receive-side delay estimator per packet): while the
publisher's packets arrive with little loss the estimate may grow to half again what arrives;
heavy loss cuts it to what actually gets through. A publisher on a narrow uplink is thus told
to send less than its link carries, so its audio (which it sends beside the video) gets through.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from .ingress import Ingress

MIN_ESTIMATE: Final = 50_000.0
MAX_ESTIMATE: Final = 2_500_000.0
LOW_LOSS: Final = 0.02
HIGH_LOSS: Final = 0.10
GROWTH: Final = 1.04  # per update (one per RTCP round, about two a second)


class Uplink:
    def __init__(self) -> None:
        self.estimate: float | None = None

    def update(self, publications: Iterable[Ingress], now: float) -> float | None:
        """The REMB value for the publisher's video (bit/s), or None before anything arrived.

        Call after each `Ingress.receiver_report` (which refreshes `fraction_lost`)."""
        audio = video = 0.0
        loss = 0.0
        for ingress in publications:
            if ingress.kind == "audio":
                audio += ingress.bitrate
            else:
                video += ingress.bitrate
            loss = max(loss, ingress.fraction_lost)
        arriving = audio + video
        if arriving <= 0:
            return None
        estimate = self.estimate
        if estimate is None:
            estimate = arriving * 1.5 + 50_000
        elif loss > HIGH_LOSS:
            estimate = min(estimate, arriving * (1 - loss / 2))
        elif loss < LOW_LOSS:
            # About 8% a second at two updates a second (GCC's loss-based increase).
            estimate = max(estimate, min(estimate * GROWTH, arriving * 1.5 + 50_000))
        estimate = min(MAX_ESTIMATE, max(MIN_ESTIMATE, estimate))
        self.estimate = estimate
        # REMB names the video SSRC: leave the audio its share.
        return max(MIN_ESTIMATE, estimate - audio)
