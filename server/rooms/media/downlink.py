"""What one subscriber's link can take, and what it is served: audio first.

The estimate comes from the subscriber itself: its REMB (the receiver's delay-based estimate:
a drop below what we send means its link is queueing) together with the loss in its receiver
reports (a queue that overflows), or heavy loss alone.
Every allocation round (`allocate`, twice a second) gives audio everything it needs, then
video per publication (a shared screen first, then the active speaker's camera) while it fits;
a video that does not fit is paused for this subscriber only, and its page is told. What one
weak receiver gets never changes what the publisher sends or what the others receive.

A paused video comes back only when the link shows room for it: short probes of padding
packets (on the first video slot's RTX stream, which receivers discard), the first asking half
again what is known to pass, toward what every paused video needs. As the padding ends the
peer sends sender reports and holds the next ones: the round trip of the receiver's answer
(LSR/DLSR) says whether the probe queued on the link (more than 40 ms over the path's usual) or
passed through. A probe fails on that queueing or on congestion, on more loss than
the link usually has in the reports that came meanwhile, or when nothing answers (the link
dropped the reports with the padding); it passes on a clear round trip or on a report about the
padding stream itself (a receiver that reports RTX). A pass raises the estimate, resumes at once
(at the next keyframe) each paused video that now fits, and the next step follows in the next
round asking twice what is known, five times after a clear round trip with nothing lost, so a
healed link brings both videos back from a weak link's estimate in two probes. A probe the link
queued lowers the estimate to what the link carried of it (its rate over its length and the
queue it left) and the next asks a quarter over that: enough to queue again on a link still that
weak, too little to overflow its queue. It comes 3 s later when nothing was lost; a probe the
link lost backs off (4 s, then 6 s). A REMB drop alone is no verdict (`on_remb`).

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

from .stats import TrackKey

if TYPE_CHECKING:
    from .egress import Egress

log = logs.get(__name__)

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
# A video just resumed is on trial for FLAP_SECONDS: loss is judged over this many packets and
# an overload pauses at once, with no REMB drop asked to corroborate it. A resume that does not
# fit (its encoder's rate rose since it was measured, a keyframe's burst) then costs the
# receiver's audio about a second, not the four or five of the ordinary judgement.
TRIAL_LOSS_SAMPLE: Final = 100
PROBE_SECONDS: Final = 0.4
PROBE_VERDICT_SECONDS: Final = 0.6  # a REMB about the probe arrives within about an RTT
# ... and the receiver's answer to the sender reports sent as it ended within its RTCP interval
# (aiortc's is up to 1.5 s): a probe waits this long after its end for one, then fails.
PROBE_REPORT_WAIT: Final = 1.8
REPORT_LAG: Final = 0.1  # a report on the padding arriving this long after the end covers it
# A probe whose packets the link lost this much more often than it usually loses overflowed
# the link's queue. (A receive-side REMB, the other sign, often comes after the verdict.)
PROBE_LOSS_MARGIN: Final = 0.02
# A sender report sent as the probe's padding ends (within this long of its end) measures the
# queue the probe left on the link: a round trip this much over the path's own means it queued.
PROBE_END_REPORT_SECONDS: Final = 0.1
PROBE_QUEUE_DELAY: Final = 0.04
BACKOFF_START: Final = 4.0
# After a probe the link queued but lost nothing of: it cost the receiver a moment of delay, not
# its audio, so the next may come sooner than a backoff.
PROBE_RETRY_SECONDS: Final = 3.0
BACKOFF_MAX: Final = 6.0
RESUME_MARGIN: Final = 1.1  # a paused video comes back when it fits with this to spare
REMB_TRUST: Final = 1.5  # a REMB raises the estimate up to this times what is sent
PROBE_STEP: Final = 1.5  # a probe asks at most half again what is known to pass
# ... or twice, right after one that passed (a link that healed is found in a few steps), a link
# that stays weak is only asked half again.
PROBE_STEP_AFTER_PASS: Final = 2.0
# ... five times after one the link neither queued nor lost: a link that healed is found in one
# step (two videos of 1.5 Mbit/s from a quarter over a 600 kbit/s link: four fell just short);
# a link only somewhat better costs one probe that overflows its queue.
PROBE_STEP_AFTER_CLEAR: Final = 5.0
PROBE_STEP_AFTER_QUEUE: Final = 1.25  # ... a quarter over what the link carried of one it queued
PROBE_AGAIN_SECONDS: Final = 0.3  # after a probe that passed, the next step: the next round
PROBE_TICK: Final = 0.02
PADDING_BYTES: Final = 255

# A publication (its publisher and track) paused for this subscriber (True) or resumed.
QualityCallback = Callable[[TrackKey, bool], None]


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
        self._paused_at: dict[TrackKey, float] = {}
        self._resumed_at: dict[TrackKey, float] = {}
        # When a video was last resumed: it is on trial for FLAP_SECONDS (TRIAL_LOSS_SAMPLE).
        self._trial_from = -math.inf
        self._min_pause: dict[TrackKey, float] = {}
        self._over_since: float | None = None  # since when the allocation has not fit
        self._backoff = BACKOFF_START
        self._step = PROBE_STEP  # what the next probe asks, times what is known to pass
        self._next_probe = 0.0
        self._probe: asyncio.TimerHandle | None = None
        self._probe_until = 0.0
        self._probe_verdict_at = 0.0
        self._probe_target = 0.0
        self._probe_failed = False
        self._probe_lost = self._probe_expected = 0
        self._probe_covered = False  # a receiver report written after the probe's end came
        self._probe_verdict = ""  # what judged it: "queued", "clear" (the round trip), "lost"
        self._probe_ended = False
        self._probe_from = 0.0
        self._probe_queued = 0.0  # how much longer the round trip took as the probe ended
        self._probe_remb_low = math.inf  # the receiver's lowest REMB while it was judged
        self._probe_excess_ms: int | None = None  # the end report's round trip over usual
        self.loss = 0.0  # the link's own loss when not overloaded, judged over `LOSS_SAMPLE`
        self.pauses = 0
        # Set by the peer: sends about `size` bytes of padding on one of its video slots.
        self.pad: Callable[[int], None] | None = None
        # Set by the peer: a probe starts on that slot (what the receiver has not seen of the
        # last one's padding by now was lost, and is not this probe's loss).
        self.probe_starts: Callable[[], None] | None = None
        # ... and its padding ends: the peer sends sender reports, whose round trip says
        # whether the padding queued on the subscriber's link.
        self.probe_ends: Callable[[], None] | None = None
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
        if self._probe_target:
            # Not a probe's verdict: an aiortc receiver's estimate falls to a fraction of what
            # it carries while the round trip shows no queue at all (533 to 85 kbit/s during a
            # probe on a healed link, the end report's round trip 2 ms over usual), and a
            # healed link whose probes failed on it kept a video paused for 45 s.
            self._probe_remb_low = min(self._probe_remb_low, bitrate)
        if previous and bitrate < 0.95 * previous and bitrate < CONGESTED_SHARE * self.send_rate:
            self._remb_drop = (bitrate, now)
            if now - self._lossy_at < CORROBORATION_SECONDS:
                self._congestion(min(self.estimate, bitrate), now, "remb_drop_with_loss")
        elif bitrate > self.estimate:
            # A receive-side estimate may run ahead of what it has seen (a probe's padding
            # lifts it too): trusted up to half again what is sent, past that only probes.
            self.estimate = min(bitrate, max(self.estimate, REMB_TRUST * self.send_rate))

    def on_loss(self, lost: int, expected: int, now: float, *, probed: bool = False) -> None:
        """What one of the subscriber's receiver report blocks says its own link lost (`probed`:
        the block is about the stream that carries the probes' padding). Judged over at least
        `LOSS_SAMPLE` packets across all its streams: a few packets lost from a 50-packet audio
        interval is chance on a lossy link, not congestion."""
        if self._probe_target:
            self._probe_lost += lost
            self._probe_expected += expected
            # Each of the receiver's streams reports on its own schedule: an audio report
            # written after the probe knows nothing of the padding the link dropped.
            if probed and now >= self._probe_until + REPORT_LAG:
                self._probe_covered = True
        self._lost += lost
        self._expected += expected
        on_trial = now - self._trial_from < FLAP_SECONDS
        if self._expected < (TRIAL_LOSS_SAMPLE if on_trial else LOSS_SAMPLE):
            return
        fraction = self._lost / self._expected
        self._lost = self._expected = 0
        if fraction < QUEUE_LOSS and not on_trial:
            self.loss = fraction  # what the link loses when it is not overloaded
        if fraction > PAUSE_LOSS and self.send_rate > 0:
            # At most what got through: an overflowing queue delivers about its rate.
            estimate = min(self.estimate, self.send_rate * (1 - fraction))
            self._congestion(estimate, now, "heavy_loss")
        elif on_trial and fraction >= max(QUEUE_LOSS, self.loss + PROBE_LOSS_MARGIN):
            estimate = min(self.estimate, self.send_rate * (1 - fraction))
            self._congestion(estimate, now, "loss_after_resume")
        elif fraction >= QUEUE_LOSS:
            self._lossy_at = now
            remb, at = self._remb_drop
            if now - at < CORROBORATION_SECONDS:
                self._congestion(min(self.estimate, remb), now, "loss_with_remb_drop")

    def on_round_trip(self, rtt: float, sent_at: float, usual: float) -> None:
        """A round trip measured by the receiver report answering our sender report sent at
        `sent_at`; `usual` is the path's (the larger of its floor and its recent average: a
        receiver busy decoding answers late all the time). A sender report sent as a probe
        ends waits behind whatever of the probe the subscriber's link queued: a link that took
        the probe adds no delay, one that could not adds up to its queue (RFC 3550's LSR/DLSR
        stand in for the transport-wide feedback aiortc does not offer)."""
        if not self._probe_target:
            return
        if not 0 <= sent_at - self._probe_until <= PROBE_END_REPORT_SECONDS:
            return
        self._probe_excess_ms = round((rtt - usual) * 1000)
        if self._probe_verdict:
            return
        if rtt - usual > PROBE_QUEUE_DELAY:
            self._probe_failed = True
            self._probe_verdict = "queued"
            self._probe_queued = rtt - usual
        else:
            self._probe_covered = True
            self._probe_verdict = "clear"

    def holds_sender_reports(self) -> bool:
        """True while the round trip of the reports sent as the probe ended is awaited: a later
        report would replace theirs at the receiver before it answers."""
        return bool(self._probe_target) and self._probe_ended and not self._probe_verdict

    def _congestion(self, estimate: float, now: float, reason: str) -> None:
        if estimate < self.estimate:
            log.info(
                "media.downlink_congested",
                reason=reason,
                estimate=int(estimate),
                send_rate=int(self.send_rate),
            )
        self.estimate = estimate
        self._congested_at = now
        if self._probe_target:
            self._probe_failed = True
            self._probe_verdict = self._probe_verdict or "congested"

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
        self._judge_probe(now)  # first: a probe that passed resumes what it found room for
        available = self.estimate * HEADROOM
        needed = sum(e.ingress.bitrate for e in egresses if e.kind == "audio" and e.ingress)
        videos = [e for e in egresses if e.kind == "video" and e.ingress is not None]
        # A shared screen is what everyone is looking at (shown large), and text blurs first:
        # it is served right after the audio, then the active speaker's camera, then the rest.
        videos.sort(key=_priority(speaker))
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
            # On trial, once its link has shown congestion since the resume: at once. (Not on
            # the rate alone: the resume's own keyframe lifts it for a moment.)
            on_trial = now - self._trial_from < FLAP_SECONDS
            failed_trial = on_trial and self._congested_at >= self._trial_from
            if now - self._over_since >= PAUSE_AFTER_SECONDS or failed_trial:
                self._pause(egress, egress.ingress.key, now)
            else:
                needed += need  # not for long yet: a receiver busy for a moment recovers
        if not over:
            self._over_since = None
        # A probe asks for every paused video that does not fit yet, so a healed link brings
        # them all back from one pass; a smaller step that passes resumes each that then fits.
        wanted = 0.0
        for egress in videos:
            assert egress.ingress is not None
            key = egress.ingress.key
            if not egress.paused or key not in self._paused_at:
                continue
            # Resumed against the highest rate it had lately, not the last: resumed on a dip
            # in its encoder's rate, a video that does not fit overflows the link as it swings
            # back, and the receiver's audio pays for it.
            need = egress.ingress.peak_bitrate
            pause = self._min_pause.get(key, MIN_PAUSE_SECONDS)
            settled = now - self._paused_at[key] >= pause
            if not settled:
                continue
            if needed + need * RESUME_MARGIN <= available:
                self._resume(egress, key, now)
                needed += need
            else:
                wanted += need * RESUME_MARGIN
        if wanted and not self._probing(now) and now >= self._next_probe:
            # Step up from what is known to pass (at most half again), so a probe into a link
            # that cannot take it fills its queue rather than overflowing it.
            known = self.estimate if self.estimate != math.inf else self.send_rate
            step = self._step
            self._start_probe(min(needed + wanted, max(known * step, known + 100_000)), now)

    def _pause(self, egress: Egress, key: TrackKey, now: float) -> None:
        egress.paused = True
        self.pauses += 1
        self._paused_at[key] = now
        self._step = PROBE_STEP
        if now - self._resumed_at.get(key, -math.inf) < FLAP_SECONDS:
            longer = 2 * self._min_pause.get(key, MIN_PAUSE_SECONDS)
            self._min_pause[key] = min(MAX_PAUSE_SECONDS, longer)
        else:
            self._min_pause.pop(key, None)
        self._next_probe = max(self._next_probe, now + self._backoff)
        log.info(
            "media.video_paused",
            publisher=key[0],
            track=key[1],
            estimate=int(self.estimate),
            send_rate=int(self.send_rate),
        )
        self._on_quality(key, True)

    def _resume(self, egress: Egress, key: TrackKey, now: float) -> None:
        egress.paused = False
        self._resumed_at[key] = now
        self._trial_from = now
        self._lost = self._expected = 0  # the trial's loss is judged from here
        egress.awaiting_keyframe = True
        self._paused_at.pop(key, None)
        if egress.ingress is not None:
            egress.ingress.request_keyframe(new_subscriber=True)
        log.info("media.video_resumed", publisher=key[0], track=key[1], estimate=int(self.estimate))
        self._on_quality(key, False)

    # Probing -----------------------------------------------------------------------------

    def _probing(self, now: float) -> bool:
        return bool(self._probe_target) or now < self._probe_verdict_at

    def _start_probe(self, target: float, now: float) -> None:
        self._probe_target = target
        self._probe_from = self.send_rate  # what plays (and was carried) before the padding
        self._probe_remb_low, self._probe_excess_ms = math.inf, None
        self._probe_failed = False
        self._probe_lost = self._probe_expected = 0
        self._probe_covered = False
        self._probe_verdict = ""
        self._probe_ended = False
        self._probe_until = now + PROBE_SECONDS
        self._probe_verdict_at = self._probe_until + PROBE_VERDICT_SECONDS
        if self.probe_starts is not None:
            self.probe_starts()
        self._schedule_padding()

    def _judge_probe(self, now: float) -> None:
        if not self._probe_target:
            return
        if now < self._probe_verdict_at and self._probe_verdict not in ("clear", "queued"):
            return  # a REMB or a report about the probe may still come
        reported = self._probe_failed or self._probe_covered
        if not reported and now < self._probe_until + PROBE_REPORT_WAIT:
            return  # no report about the probe's end yet
        if not reported:
            # Nothing answered the reports sent as it ended: the link dropped them with the
            # padding, or the receiver is too busy to answer. Either way, not room to resume.
            self._probe_failed = True
            self._probe_verdict = "unanswered"
        lost, expected = self._probe_lost, self._probe_expected
        lossy = bool(expected) and lost / expected > self.loss + PROBE_LOSS_MARGIN
        if lossy:
            self._probe_failed = True
            self._probe_verdict = self._probe_verdict or "lost"
        target, self._probe_target = self._probe_target, 0.0
        log.debug(
            "media.probe_judged",
            target=int(target),
            lost=lost,
            expected=expected,
            reported=reported,
            failed=self._probe_failed,
            verdict=self._probe_verdict,
            remb_low=None if self._probe_remb_low == math.inf else int(self._probe_remb_low),
            rtt_excess_ms=self._probe_excess_ms,
            send_rate=int(self.send_rate),
        )
        if self._probe_failed:
            self._step = PROBE_STEP
            if self._probe_verdict == "queued":
                # The link carried at most the probe's rate over its length and the queue it
                # left; the next probe asks a quarter over that, which queues again on a link
                # still that weak but overflows no queue of 150 ms or more.
                carried = target * PROBE_SECONDS / (PROBE_SECONDS + self._probe_queued)
                self.estimate = min(self.estimate, max(carried, self._probe_from / HEADROOM))
                self._step = PROBE_STEP_AFTER_QUEUE
            if self._probe_verdict == "queued" and not lossy:
                self._next_probe = now + PROBE_RETRY_SECONDS
            else:
                self._backoff = min(BACKOFF_MAX, self._backoff * 2)
                self._next_probe = now + self._backoff
        else:
            # The link took it: that much is known to pass, and the next step can follow soon,
            # larger when the link neither queued nor lost any of it.
            self.estimate = max(self.estimate, target / HEADROOM * 1.02)
            self._backoff = BACKOFF_START
            clear = self._probe_verdict == "clear" and not lost
            self._step = PROBE_STEP_AFTER_CLEAR if clear else PROBE_STEP_AFTER_PASS
            self._next_probe = now + PROBE_AGAIN_SECONDS

    def _schedule_padding(self) -> None:
        if self.closed:
            return
        loop = asyncio.get_running_loop()
        self._probe = loop.call_later(PROBE_TICK, self._pad)

    def _pad(self) -> None:
        self._probe = None
        now = time.monotonic()
        if self.closed:
            return
        if now >= self._probe_until or self._probe_failed:
            if not self._probe_ended and self.probe_ends is not None:
                self._probe_ended = True
                self.probe_ends()
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


def _priority(speaker: ParticipantId | None) -> Callable[[Egress], tuple[bool, bool, str]]:
    """The order videos are served in: a shared screen, the active speaker's camera, the rest
    (by publisher, so the order is stable)."""

    def order(egress: Egress) -> tuple[bool, bool, str]:
        ingress = egress.ingress
        screen = ingress is not None and ingress.name == "screen"
        return (not screen, egress.publisher != speaker, egress.publisher or "")

    return order
