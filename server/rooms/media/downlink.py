"""What one subscriber's link can take, and what it is served: audio first.

The estimate comes from the subscriber itself: its REMB (the receiver's delay-based estimate:
a drop below what we send means its link is queueing) together with the loss in its receiver
reports (a queue that overflows), or heavy loss alone.
Every allocation round (`allocate`, twice a second) gives audio everything it needs, then
video per publisher (the active speaker first) while it fits; a video that does not fit is
paused for this subscriber only, and its page is told. What one weak receiver gets never
changes what the publisher sends or what the others receive.

A paused video comes back only when the link shows room for it: short probes of padding
packets (on the slot's RTX stream, which receivers count for their estimate and then discard),
each asking at most half again what is known to pass, up to what the video needs. A probe the
link takes without a sign of queueing (the receiver's REMB does not drop, and its first report
written after the probe shows no more loss than its link usually has) raises the estimate and
the next step follows a second later; once the video fits it resumes at its next keyframe.
A probe the link does not take backs off (4 s, then up to 6 s).

Loss a receiver reports includes what its publisher's uplink lost before the SFU (the SFU
forwards the gaps); `on_loss` is given only what its own link lost (`Egress.link_loss`).

Retransmissions draw on a budget: a share of the estimate (or of what is sent, while the
estimate is unknown), so repairing loss can never crowd out the audio.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final

from server import logs
from server.ids import ParticipantId

if TYPE_CHECKING:
    from .egress import Egress

logger = logs.get(__name__)

RETRANSMIT_SHARE: Final = 0.15
PAUSE_LOSS: Final = 0.10  # receiver-report loss that means the link is overloaded
CONGESTED_SHARE: Final = 0.7  # a REMB drop below this share of the send rate is congestion
QUEUE_LOSS: Final = 0.08  # ... when the receiver's own link also loses this much
LOSS_SAMPLE: Final = 500  # packets a loss figure is judged over
CORROBORATION_SECONDS: Final = 3.0  # ... within this long of the drop
HEADROOM: Final = 0.9  # allocate up to this share of the estimate
MIN_PAUSE_SECONDS: Final = 2.0
# A video paused again within this long of resuming was resumed too soon: its next pause lasts
# twice as long (up to MAX_PAUSE_SECONDS), so a video that nearly fits does not flap, each
# resume costing the receiver's audio a second of overload.
FLAP_SECONDS: Final = 5.0
MAX_PAUSE_SECONDS: Final = 8.0
# Sending over the estimate this long after the last sign of congestion: the link carries it,
# the estimate is stale (the link got better), and it rises to what is sent instead.
QUIET_SECONDS: Final = 3.0
PAUSE_AFTER_SECONDS: Final = 1.0  # video is paused once the overload outlasts this
PROBE_SECONDS: Final = 0.4
PROBE_VERDICT_SECONDS: Final = 0.6  # feedback about the probe arrives within about an RTT
# ... and a receiver report that covers the probe within its RTCP interval (aiortc's is up to
# 1.5 s): a probe waits this long after its end for one, then passes without.
PROBE_REPORT_WAIT: Final = 1.6
REPORT_LAG: Final = 0.1  # a report arriving this long after the probe's end covers it
# A probe whose packets the link lost this much more often than it usually loses overflowed
# the link's queue. (A receive-side REMB, the other sign, often comes after the verdict.)
PROBE_LOSS_MARGIN: Final = 0.02
BACKOFF_START: Final = 4.0
BACKOFF_MAX: Final = 6.0  # a healed link is found in about 10 s; a weak one asked every 6 s
RESUME_MARGIN: Final = 1.1  # a paused video comes back when it fits with this to spare
REMB_TRUST: Final = 1.5  # a REMB raises the estimate up to this times what is sent
PROBE_STEP: Final = 1.5  # a probe asks at most half again what is known to pass
# ... or twice, right after one that passed: a link that healed is found in a few steps (the
# video should be back within 10 s), a link that stays weak is only asked half again.
PROBE_STEP_AFTER_PASS: Final = 2.0
PROBE_AGAIN_SECONDS: Final = 1.0  # after a probe that passed, the next step
PROBE_TICK: Final = 0.02
PADDING_BYTES: Final = 255

QualityCallback = Callable[[ParticipantId, bool], None]


class Downlink:
    """Per subscriber peer connection; all methods run on the room's loop, and every `now`
    is `time.monotonic()`."""

    def __init__(self, on_quality: QualityCallback) -> None:
        self._on_quality = on_quality
        self.estimate = math.inf  # bit/s; unknown until the receiver says otherwise
        self._last_remb = 0.0
        self._remb_drop = (math.inf, -math.inf)  # the last REMB drop: (bit/s, when)
        self._lossy_at = -math.inf
        self._lost = 0
        self._expected = 0
        self._congested_at = -math.inf
        self._sent_bytes = 0
        self._sent_since = 0.0
        self.send_rate = 0.0
        self._budget = 0.0
        self._budget_at = 0.0
        self._paused_at: dict[ParticipantId, float] = {}
        self._resumed_at: dict[ParticipantId, float] = {}
        self._min_pause: dict[ParticipantId, float] = {}
        self._over_since: float | None = None  # since when the allocation has not fit
        self._backoff = BACKOFF_START
        self._passed_last_probe = False
        self._next_probe = 0.0
        self._probe: asyncio.TimerHandle | None = None
        self._probe_until = 0.0
        self._probe_verdict_at = 0.0
        self._probe_target = 0.0
        self._probe_failed = False
        self._probe_lost = self._probe_expected = 0
        self._probe_covered = False  # a receiver report written after the probe's end came
        self.loss = 0.0  # the link's own loss when not overloaded, judged over `LOSS_SAMPLE`
        self.pauses = 0
        # Set by the peer: sends about `size` bytes of padding on one of its video slots.
        self.pad: Callable[[int], None] | None = None
        self.closed = False

    # Signals -----------------------------------------------------------------------------

    def sent(self, size: int) -> None:
        self._sent_bytes += size

    def on_remb(self, bitrate: float, now: float) -> None:
        """A receive-side estimate starts low and grows with what arrives, so only a drop
        means something: the receiver saw its queue grow and cut to about what it received.
        A drop to well under what we send, with loss beside it, is congestion; a drop alone is
        as often a busy receiver (delay without loss), which pausing video would not help."""
        previous, self._last_remb = self._last_remb, bitrate
        if previous and bitrate < 0.95 * previous and self._probe_target:
            self._probe_failed = True  # our own probe made its queue grow: that is the answer
        if previous and bitrate < 0.95 * previous and bitrate < CONGESTED_SHARE * self.send_rate:
            self._remb_drop = (bitrate, now)
            if now - self._lossy_at < CORROBORATION_SECONDS:
                self._congestion(min(self.estimate, bitrate), now, "remb_drop_with_loss")
        elif bitrate > self.estimate:
            # A receive-side estimate may run ahead of what it has seen (a probe's padding
            # lifts it too): trusted up to half again what is sent, past that only probes.
            self.estimate = min(bitrate, max(self.estimate, REMB_TRUST * self.send_rate))

    def on_loss(self, lost: int, expected: int, now: float) -> None:
        """What one of the subscriber's receiver report blocks says its own link lost. Judged
        over at least `LOSS_SAMPLE` packets across all its streams: a few packets lost from
        a 50-packet audio interval is chance on a lossy link, not congestion."""
        if self._probe_target:
            self._probe_lost += lost
            self._probe_expected += expected
            if now >= self._probe_until + REPORT_LAG:
                self._probe_covered = True
        self._lost += lost
        self._expected += expected
        if self._expected < LOSS_SAMPLE:
            return
        fraction = self._lost / self._expected
        self._lost = self._expected = 0
        if fraction < QUEUE_LOSS:
            self.loss = fraction  # what the link loses when it is not overloaded
        if fraction > PAUSE_LOSS and self.send_rate > 0:
            # At most what got through: an overflowing queue delivers about its rate.
            estimate = min(self.estimate, self.send_rate * (1 - fraction))
            self._congestion(estimate, now, "heavy_loss")
        elif fraction >= QUEUE_LOSS:
            self._lossy_at = now
            remb, at = self._remb_drop
            if now - at < CORROBORATION_SECONDS:
                self._congestion(min(self.estimate, remb), now, "loss_with_remb_drop")

    def _congestion(self, estimate: float, now: float, reason: str) -> None:
        if estimate < self.estimate:
            logger.info(
                "media.downlink_congested",
                reason=reason,
                estimate=int(estimate),
                send_rate=int(self.send_rate),
            )
        self.estimate = estimate
        self._congested_at = now
        if self._probe_target:
            self._probe_failed = True

    def may_retransmit(self, size: int, now: float) -> bool:
        rate = RETRANSMIT_SHARE * min(self.estimate, max(self.send_rate, 300_000.0))
        self._budget = min(rate / 8 * 0.5, self._budget + (now - self._budget_at) * rate / 8)
        self._budget_at = now
        if self._budget < size:
            return False
        self._budget -= size
        return True

    # Allocation --------------------------------------------------------------------------

    def allocate(
        self, egresses: Sequence[Egress], speaker: ParticipantId | None, now: float
    ) -> None:
        """Serve audio, then each video while it fits; pause the rest, probe to resume."""
        elapsed = now - self._sent_since
        if elapsed >= 0.25:
            rate = self._sent_bytes * 8 / elapsed
            self.send_rate = rate if self.send_rate == 0 else 0.5 * self.send_rate + 0.5 * rate
            self._sent_bytes, self._sent_since = 0, now
        available = self.estimate * HEADROOM
        needed = sum(e.ingress.bitrate for e in egresses if e.kind == "audio" and e.ingress)
        videos = [e for e in egresses if e.kind == "video" and e.ingress is not None]
        videos.sort(key=lambda e: (e.publisher != speaker, e.publisher or ""))
        # What plays keeps its place while it fits (in priority order); only then may a
        # paused video come back, with room to spare, so two videos never take turns.
        over = False
        for egress in videos:
            assert egress.ingress is not None
            if egress.paused:
                continue
            need = egress.ingress.bitrate
            if needed + need <= available or need == 0:
                needed += need
                continue
            quiet = now - self._congested_at > QUIET_SECONDS and not self._probing(now)
            if quiet and self.send_rate > self.estimate:
                # Carried without complaint: known to pass.
                self.estimate = self.send_rate / HEADROOM
                available = self.estimate * HEADROOM
                if needed + need <= available:
                    needed += need
                    continue
            over = True
            if self._over_since is None:
                self._over_since = now
            if now - self._over_since >= PAUSE_AFTER_SECONDS:
                self._pause(egress, egress.ingress.publisher, now)
            else:
                needed += need  # not for long yet: a receiver busy for a moment recovers
        if not over:
            self._over_since = None
        probe_for = 0.0
        for egress in videos:
            assert egress.ingress is not None
            if not egress.paused or egress.ingress.publisher not in self._paused_at:
                continue
            need = egress.ingress.bitrate
            publisher = egress.ingress.publisher
            pause = self._min_pause.get(publisher, MIN_PAUSE_SECONDS)
            settled = now - self._paused_at[publisher] >= pause
            if not settled:
                continue
            if needed + need * RESUME_MARGIN <= available:
                self._resume(egress, publisher, now)
                needed += need
            elif not probe_for:
                probe_for = needed + need * RESUME_MARGIN
        self._judge_probe(now)
        if probe_for and not self._probing(now) and now >= self._next_probe:
            # Step up from what is known to pass (at most half again), so a probe into a link
            # that cannot take it fills its queue rather than overflowing it.
            known = self.estimate if self.estimate != math.inf else self.send_rate
            step = PROBE_STEP_AFTER_PASS if self._passed_last_probe else PROBE_STEP
            self._start_probe(min(probe_for, max(known * step, known + 100_000)), now)

    def _pause(self, egress: Egress, publisher: ParticipantId, now: float) -> None:
        egress.paused = True
        self.pauses += 1
        self._paused_at[publisher] = now
        self._passed_last_probe = False
        if now - self._resumed_at.get(publisher, -math.inf) < FLAP_SECONDS:
            longer = 2 * self._min_pause.get(publisher, MIN_PAUSE_SECONDS)
            self._min_pause[publisher] = min(MAX_PAUSE_SECONDS, longer)
        else:
            self._min_pause.pop(publisher, None)
        self._next_probe = max(self._next_probe, now + self._backoff)
        logger.info(
            "media.video_paused",
            publisher=publisher,
            estimate=int(self.estimate),
            send_rate=int(self.send_rate),
        )
        self._on_quality(publisher, True)

    def _resume(self, egress: Egress, publisher: ParticipantId, now: float) -> None:
        egress.paused = False
        self._resumed_at[publisher] = now
        egress.awaiting_keyframe = True
        self._paused_at.pop(publisher, None)
        if egress.ingress is not None:
            egress.ingress.request_keyframe(new_subscriber=True)
        logger.info("media.video_resumed", publisher=publisher, estimate=int(self.estimate))
        self._on_quality(publisher, False)

    # Probing -----------------------------------------------------------------------------

    def _probing(self, now: float) -> bool:
        return bool(self._probe_target) or now < self._probe_verdict_at

    def _start_probe(self, target: float, now: float) -> None:
        self._probe_target = target
        self._probe_failed = False
        self._probe_lost = self._probe_expected = 0
        self._probe_covered = False
        self._probe_until = now + PROBE_SECONDS
        self._probe_verdict_at = self._probe_until + PROBE_VERDICT_SECONDS
        self._schedule_padding()

    def _judge_probe(self, now: float) -> None:
        if not self._probe_target or now < self._probe_verdict_at:
            return
        reported = self._probe_failed or self._probe_covered
        if not reported and now < self._probe_until + PROBE_REPORT_WAIT:
            return  # no report about the probe's end yet
        lost, expected = self._probe_lost, self._probe_expected
        if expected and lost / expected > self.loss + PROBE_LOSS_MARGIN:
            self._probe_failed = True
        target, self._probe_target = self._probe_target, 0.0
        logger.debug(
            "media.probe_judged",
            target=int(target),
            lost=lost,
            expected=expected,
            reported=reported,
            failed=self._probe_failed,
        )
        if self._probe_failed:
            self._backoff = min(BACKOFF_MAX, self._backoff * 2)
            self._passed_last_probe = False
            self._next_probe = now + self._backoff
        else:
            # The link took it: that much is known to pass, and the next step can follow soon.
            self.estimate = max(self.estimate, target / HEADROOM * 1.02)
            self._backoff = BACKOFF_START
            self._passed_last_probe = True
            self._next_probe = now + PROBE_AGAIN_SECONDS

    def _schedule_padding(self) -> None:
        if self.closed:
            return
        loop = asyncio.get_running_loop()
        self._probe = loop.call_later(PROBE_TICK, self._pad)

    def _pad(self) -> None:
        self._probe = None
        now = time.monotonic()
        if self.closed or now >= self._probe_until or self._probe_failed:
            return
        missing = self._probe_target - self.send_rate
        if missing > 0 and self.pad is not None:
            self.pad(int(missing / 8 * PROBE_TICK))
        self._schedule_padding()

    def close(self) -> None:
        self.closed = True
        if self._probe is not None:
            self._probe.cancel()
            self._probe = None
