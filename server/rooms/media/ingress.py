"""One publisher's audio or video as it arrives: the fan-out point of the packet path.

An `Ingress` (a publication: the publisher's microphone, camera or shared screen) takes each
plaintext RTP packet of its track, keeps the receive statistics its
receiver reports need (RFC 3550 A.3, A.8), asks the publisher for each missing packet (a
NACK per packet, never a run again; audio too: a publisher that keeps history resends it in
time for the receivers' jitter buffers, browsers ignore it and rely on Opus FEC), unwraps
retransmissions (RFC 4588), and hands
every packet to each subscriber's `Egress` without copying it. It also holds the keyframe
requests toward the publisher, rate-limited, and the publisher's last sender report (what the
subscribers' sender reports map timestamps with, so A/V sync survives the SFU).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from aiortc.rtp import RTCP_PSFB_PLI, RtcpPsfbPacket, RtcpReceiverInfo

from server.ids import ParticipantId

from . import rtp
from .codecs import NegotiatedTrack
from .nack import Nack
from .ntp import send_time
from .roundtrip import RoundTrip
from .stats import TALLY, Counters, Kind, TrackKey, TrackName

if TYPE_CHECKING:
    from .egress import Egress
    from .transport import PeerTransport

# A gap wider than this is a restart or a burst no NACK repairs: ask for a keyframe instead.
MAX_NACK_GAP: Final = 64
MAX_PENDING_NACKS: Final = 256
# A packet still missing a round trip after its NACK is asked for again, up to this many asks
# in all: one lost retransmission must not leave a hole for good, since every subscriber's
# decoder waits on it (aiortc's until 512 packets later: seconds of frozen video on a weak
# uplink). Never more: past that the publisher's history has moved on.
NACK_TRIES: Final = 3
_SEEN_RING: Final = 1024
# Minimum spacing of keyframe requests made for subscribers that just started.
NEW_SUBSCRIBER_PLI_FLOOR: Final = 0.1
# ... and of reminders for one that has shown nothing yet: a join waits on this, not on the
# full interval, when its first keyframe was lost (or came before its transport was up).
NEW_SUBSCRIBER_REMINDER: Final = 0.3
# How far back `peak_bitrate` looks: a few of an encoder's swings (a VP8 encoder holding a
# target rate undershoots and overshoots it for a second or two at a time).
PEAK_SECONDS: Final = 5.0


class Ingress:
    def __init__(
        self,
        publisher: ParticipantId,
        kind: Kind,
        counters: Counters,
        keyframe_interval: float,
        on_audio_level: Callable[[int], None] | None = None,
        round_trip: RoundTrip | None = None,
        *,
        screen: bool = False,
    ) -> None:
        if screen and kind != "video":
            raise ValueError("a shared screen is a video")
        self.publisher = publisher
        self.kind: Kind = kind
        self.name: TrackName = "screen" if screen else kind
        self.key: TrackKey = (publisher, self.name)
        self._counters = counters
        self.keyframe_interval = keyframe_interval
        self._on_audio_level = on_audio_level
        self.track: NegotiatedTrack | None = None
        self.transport: PeerTransport | None = None
        self.rtcp_ssrc = 0
        self.subscribers: list[Egress] = []
        self.ssrc: int | None = None
        self.malformed = 0  # packets whose payload descriptor did not hold together
        self.nacks_sent = 0
        self.plis_sent = 0
        self.source = 0  # bumps when the publisher's SSRC changes: subscribers rebase
        # Receive statistics (RFC 3550 A.3).
        self._base_seq = 0
        self._max_seq = 0
        self._cycles = 0
        self._received = 0
        self._expected_prior = 0
        self._received_prior = 0
        self._jitter = 0.0
        self._transit: float | None = None
        self.fraction_lost = 0.0
        self._seen = [-1] * _SEEN_RING
        # Missing packets asked for: sequence -> (when last asked, asks so far).
        self._pending_nacks: dict[int, tuple[float, int]] = {}
        self._ask_again_at = float("inf")
        self._round_trip = round_trip or RoundTrip()  # the peer connection's, shared
        # The publisher's last sender report: (NTP, RTP timestamp, arrival, NTP middle bits).
        self.sender_report: tuple[int, int, float] | None = None
        self._lsr = 0
        self._lsr_arrival = 0.0
        # Bitrate over the last interval, for allocation (what forwarding it to one more
        # subscriber costs): bytes counted here, rate computed by `measure`.
        self._bytes = 0
        self._measured_at = time.monotonic()
        self.bitrate = 0.0
        # The highest of the rates measured over the last PEAK_SECONDS: what a paused video is
        # resumed against (an encoder's rate swings; resumed on a dip, it would not fit).
        self.peak_bitrate = 0.0
        self._rates: deque[tuple[float, float]] = deque()
        self.last_packet = 0.0
        self.last_level = 0x7F  # RFC 6464 level of the last audio packet (127: silence)
        self.send_time = b"\x00\x00\x00"  # abs-send-time for the packet being forwarded
        # Keyframe requests.
        self._last_pli = float("-inf")
        self._pli_timer: asyncio.TimerHandle | None = None
        self.closed = False

    # Set up ------------------------------------------------------------------------------

    def configure(self, track: NegotiatedTrack, transport: PeerTransport, rtcp_ssrc: int) -> None:
        self.track = track
        self.transport = transport
        self.rtcp_ssrc = rtcp_ssrc

    def attach(self, egress: Egress) -> None:
        if egress not in self.subscribers:
            self.subscribers.append(egress)

    def detach(self, egress: Egress) -> None:
        if egress in self.subscribers:
            self.subscribers.remove(egress)

    # The packet path ---------------------------------------------------------------------

    def on_media(self, packet: bytes, view: rtp.RtpView, arrival: float) -> None:
        track = self.track
        assert track is not None
        seq = view.sequence
        vp8 = None
        if self.kind == "video":
            vp8 = rtp.read_vp8(packet, view.payload_start, view.payload_end)
            if vp8 is None:
                self.malformed += 1
                return
        if view.ssrc != self.ssrc:
            self._new_source(view.ssrc, seq)
        elif self._seen[seq % _SEEN_RING] == seq:
            return  # a duplicate (the network's, or a retransmission that raced the original)
        self._count(seq, view.timestamp, arrival, track.clock_rate)
        if arrival >= self._ask_again_at:
            self._ask_again(arrival)
        self._bytes += len(packet) + 38  # SRTP tag, UDP and IP headers
        self.last_packet = arrival
        if self.kind == "video":
            self.send_time = send_time()  # once per packet, not once per subscriber
            if view.marker:
                self._counters.received[self.key] += 1
        else:
            self._counters.received[self.key] += 1
            if track.audio_level_id:
                level = rtp.audio_level(packet, view, track.audio_level_id)
                self.last_level = 0x7F if level is None else level
                if level is not None and self._on_audio_level is not None:
                    self._on_audio_level(level)
        for egress in self.subscribers:
            egress.forward(packet, view, vp8, arrival)

    def on_rtx(self, packet: bytes, view: rtp.RtpView, arrival: float) -> None:
        """A retransmission from the publisher (or its bandwidth-probe padding)."""
        self._bytes += len(packet) + 38
        original = rtp.unwrap_rtx(packet, view)
        if original is None or self.ssrc is None or self.track is None:
            return
        self._pending_nacks.pop(original, None)
        if self._seen[original % _SEEN_RING] == original:
            return
        self._seen[original % _SEEN_RING] = original
        unwrapped = view._replace(
            payload_type=self.track.payload_type,
            sequence=original,
            ssrc=self.ssrc,
            payload_start=view.payload_start + 2,
        )
        vp8 = rtp.read_vp8(packet, unwrapped.payload_start, unwrapped.payload_end)
        if vp8 is None:
            return
        self.send_time = send_time()
        for egress in self.subscribers:
            egress.forward(packet, unwrapped, vp8, arrival)

    @property
    def screen(self) -> bool:
        """The publisher's shared screen (a video beside their camera)."""
        return self.name == "screen"

    @property
    def received(self) -> int:
        """Packets received from this publication (its current source)."""
        return self._received

    def _new_source(self, ssrc: int, seq: int) -> None:
        self.ssrc = ssrc
        self.source += 1
        self._base_seq = self._max_seq = (seq - 1) & 0xFFFF
        self._cycles = 0
        self._received = self._expected_prior = self._received_prior = 0
        self._transit = None
        self._jitter = 0.0
        self._seen = [-1] * _SEEN_RING
        self._pending_nacks.clear()
        self._ask_again_at = float("inf")
        self.sender_report = None

    def _count(self, seq: int, timestamp: int, arrival: float, clock_rate: int) -> None:
        self._seen[seq % _SEEN_RING] = seq
        self._received += 1
        delta = rtp.seq_delta(seq, self._max_seq)
        if delta > 0:
            if seq < self._max_seq:
                self._cycles += 1 << 16
            if delta > 1:
                self._missing(self._max_seq, delta - 1, arrival)
            self._max_seq = seq
        elif self._pending_nacks:
            self._pending_nacks.pop(seq, None)
        # Interarrival jitter (RFC 3550 A.8), in timestamp units.
        transit = arrival * clock_rate - timestamp
        if self._transit is not None:
            d = abs(transit - self._transit)
            self._jitter += (d - self._jitter) / 16
        self._transit = transit

    def _missing(self, last: int, count: int, arrival: float) -> None:
        """`count` packets after `last` did not arrive: NACK each, or ask for a keyframe."""
        if count > MAX_NACK_GAP:
            self._pending_nacks.clear()
            self._ask_again_at = float("inf")
            self.request_keyframe()  # video only; audio just goes on
            return
        lost = [(last + i) & 0xFFFF for i in range(1, count + 1)]
        for seq in lost:
            self._pending_nacks[seq] = (arrival, 1)
        while len(self._pending_nacks) > MAX_PENDING_NACKS:
            del self._pending_nacks[next(iter(self._pending_nacks))]
        self._ask_again_at = min(self._ask_again_at, arrival + self._round_trip.floor)
        self._send_nack(lost)

    def _ask_again(self, now: float) -> None:
        """Ask again for the packets whose last NACK is a round trip old (each on its own
        schedule, so a run is never re-requested whole), and forget those asked enough."""
        spacing = self._round_trip.floor
        again: list[int] = []
        next_at = float("inf")
        for seq, (asked, tries) in list(self._pending_nacks.items()):
            if now - asked < spacing:
                next_at = min(next_at, asked + spacing)
            elif tries >= NACK_TRIES:
                del self._pending_nacks[seq]
            else:
                self._pending_nacks[seq] = (now, tries + 1)
                again.append(seq)
                next_at = min(next_at, now + spacing)
        self._ask_again_at = next_at
        if again:
            self._send_nack(again)

    def _send_nack(self, lost: list[int]) -> None:
        transport = self.transport
        if transport is not None and self.ssrc is not None:
            nack = Nack(ssrc=self.rtcp_ssrc, media_ssrc=self.ssrc, lost=tuple(lost))
            if transport.send_rtcp([nack]):
                self._counters.nacks_sent[self.publisher] += len(lost)
                self.nacks_sent += len(lost)

    # RTCP --------------------------------------------------------------------------------

    def on_sender_report(self, ntp: int, rtp_timestamp: int, arrival: float) -> None:
        self.sender_report = (ntp, rtp_timestamp, arrival)
        self._lsr = (ntp >> 16) & 0xFFFFFFFF
        self._lsr_arrival = arrival

    def receiver_report(self, now: float) -> RtcpReceiverInfo | None:
        """This interval's report block (RFC 3550 6.4.1, A.3); None before any packet."""
        if self.ssrc is None or self._received == 0:
            return None
        extended_max = self._cycles + self._max_seq
        expected = extended_max - self._base_seq
        lost = max(0, expected - self._received)
        expected_interval = expected - self._expected_prior
        received_interval = self._received - self._received_prior
        self._expected_prior, self._received_prior = expected, self._received
        lost_interval = expected_interval - received_interval
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        self.fraction_lost = fraction / 256
        dlsr = int((now - self._lsr_arrival) * 65536) if self._lsr else 0
        return RtcpReceiverInfo(
            ssrc=self.ssrc,
            fraction_lost=fraction,
            packets_lost=min(lost, 0x7FFFFF),
            highest_sequence=extended_max & 0xFFFFFFFF,
            jitter=int(self._jitter) & 0xFFFFFFFF,
            lsr=self._lsr,
            dlsr=dlsr & 0xFFFFFFFF,
        )

    def measure(self, now: float) -> float:
        """Bits per second since the last call (smoothed); what one more subscriber costs."""
        elapsed = now - self._measured_at
        if elapsed >= 0.2:
            rate = self._bytes * 8 / elapsed
            self.bitrate = rate if self.bitrate == 0 else 0.6 * self.bitrate + 0.4 * rate
            self._bytes = 0
            self._measured_at = now
            rates = self._rates
            rates.append((now, self.bitrate))
            while rates[0][0] < now - PEAK_SECONDS:
                rates.popleft()
            self.peak_bitrate = max(rate for _, rate in rates)
        if now - self.last_packet > 2.0:
            self.bitrate = self.peak_bitrate = 0.0  # the publisher stopped (camera off, gone)
            self._rates.clear()
        return self.bitrate

    # Keyframe requests -------------------------------------------------------------------

    def request_keyframe(self, *, new_subscriber: bool = False) -> None:
        """Ask the publisher for a keyframe, at most once per `keyframe_interval`.

        A request inside the interval is not lost: one PLI goes out when the interval ends.
        A subscriber that just started has nothing to show until a keyframe comes, so its
        request only waits out a short floor (coalescing the subscribers of one join); the
        subscriber-driven PLI/FIR are the ones that need the full limit.
        """
        if self.kind != "video" or self.closed:
            return
        self._counters.keyframe_requests_received[self.publisher] += 1
        TALLY.keyframes_asked += 1
        loop = asyncio.get_running_loop()
        interval = NEW_SUBSCRIBER_PLI_FLOOR if new_subscriber else self.keyframe_interval
        due = max(loop.time(), self._last_pli + interval)
        if due <= loop.time():
            self._send_pli()
        elif self._pli_timer is None or due < self._pli_timer.when():
            if self._pli_timer is not None:
                self._pli_timer.cancel()
            self._pli_timer = loop.call_at(due, self._send_pli)

    def remind(self, *, new_subscriber: bool = False) -> None:
        """A subscriber still waits for a keyframe: ask again once the interval has passed. A
        lost PLI or keyframe, or a request the encoder declined, must not leave a tile black
        until the publisher's next natural keyframe (libvpx's is minutes away)."""
        if self.kind != "video" or self.closed or self._pli_timer is not None:
            return
        interval = (
            min(NEW_SUBSCRIBER_REMINDER, self.keyframe_interval)
            if new_subscriber
            else self.keyframe_interval
        )
        if asyncio.get_running_loop().time() >= self._last_pli + interval:
            self._send_pli()

    def _send_pli(self) -> None:
        self._pli_timer = None
        if self.closed:
            return
        self._last_pli = asyncio.get_running_loop().time()
        transport = self.transport
        if transport is None or self.ssrc is None:
            # Nothing received yet: its first frame is a keyframe anyway, and the next
            # request should not wait out an interval.
            self._last_pli = float("-inf")
            return
        pli = RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=self.rtcp_ssrc, media_ssrc=self.ssrc)
        if transport.send_rtcp([pli]):
            self._counters.keyframe_requests_sent[self.publisher] += 1
            TALLY.keyframes_sent += 1
            self.plis_sent += 1
        else:
            self._last_pli = float("-inf")

    def close(self) -> None:
        self.closed = True
        if self._pli_timer is not None:
            self._pli_timer.cancel()
            self._pli_timer = None
        for egress in list(self.subscribers):
            egress.detach()
