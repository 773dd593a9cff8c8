"""One send slot of one subscriber: a publisher's packets rewritten for this receiver.

Each forwarded packet gets this slot's SSRC, payload type and header extensions (its own mid,
a fresh abs-send-time for the receiver's bandwidth estimate, the audio level passed through)
and a sequence number, timestamp and VP8 picture id that continue without a gap across
everything the slot did not forward: a resync at a keyframe, a publisher that reconnected (a new
SSRC and origin). After a pause the sequence numbers jump instead (`RESUME_SEQUENCE_SKIP`): the
receiver may still hold a hole from the overload that paused it, and its jitter buffer would
keep the resumed keyframe waiting behind it. The packet is copied once, into the buffer that is
protected and sent, and kept in a short history for retransmission (RFC 4588 RTX) within the
receiver's retransmission budget.
"""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING, Final

from aiortc import clock
from aiortc.rtp import RtcpSdesPacket, RtcpSenderInfo, RtcpSourceInfo, RtcpSrPacket

from server.ids import ParticipantId

from . import rtp
from .codecs import NegotiatedTrack
from .ntp import send_time
from .stats import TALLY, Counters, Kind

if TYPE_CHECKING:
    from .downlink import Downlink
    from .ingress import Ingress
    from .transport import PeerTransport

HISTORY: Final = 512  # ~3 s of 1.2 Mbit/s video: longer than any useful retransmission
# A joiner's first keyframe, held from its DTLS handshake until the slot is configured: a
# 640x480 keyframe is 30-60 packets; past this the hold starts again at the next keyframe.
HOLD_PACKETS: Final = 256
MAX_NACKED_PER_FEEDBACK: Final = 64
GAPS_RING: Final = 1024
# A receiver report written this long after the last RTX packet was sent has seen every one of
# them that the link delivered (the emulated and real queues hold well under this).
RTX_SETTLED_SECONDS: Final = 0.5
# Sequence numbers skipped when a paused video resumes: more than a receiver's jitter buffer
# holds (aiortc's video buffer: 512 packets, which it otherwise fills behind a hole before giving
# up on it) and than libwebrtc lists for NACK (1,000: past that it clears the list and asks for a
# keyframe, which is coming anyway). Counted in `gaps`, so the receiver's reported loss of them
# is not taken for its link's.
RESUME_SEQUENCE_SKIP: Final = 1024
# A packet this many sequence numbers behind the newest of its stream is forwarded no more: it
# is no use to any jitter buffer by then, and the outbound SRTP session refuses one more than
# its replay window (1,024 in aiortc's policy) behind the newest it protected. The mark it is
# judged against trails the stream, so it never falls half the sequence space behind (where a
# fixed mark would, after 32,768 packets, turn every new packet into an old one).
LATE_LIMIT: Final = 512


class Egress:
    def __init__(
        self,
        kind: Kind,
        transport: PeerTransport,
        downlink: Downlink,
        counters: Counters,
        cname: str,
    ) -> None:
        self.kind: Kind = kind
        self._transport = transport
        self._downlink = downlink
        self._counters = counters
        self._tally = TALLY.of(kind)  # this process's counts of the kind, for the metrics
        self._cname = cname.encode()
        self.ingress: Ingress | None = None
        self.track: NegotiatedTrack | None = None
        self.ssrc = 0
        self.rtx_ssrc = 0
        self._first_byte = 0
        self._ext_before = self._ext_after = b""
        self._has_value = False
        self._header_size = 0
        # Rewriting state: what the receiver saw last, and how input maps to output.
        self._source = -1
        self._seq_offset = 0
        self._ts_offset = 0
        self._pid_offset = 0
        self._last_seq = random.getrandbits(16)
        self._last_ts = random.getrandbits(32)
        self._last_pid = random.getrandbits(15)
        self._last_sent_at = 0.0
        self._started = False  # something was forwarded since the last rebase
        # Packets from before the last rebase (or more than LATE_LIMIT behind) are not forwarded.
        self._first_in_seq = 0
        self._rtx_seq = random.getrandbits(16)
        self.awaiting_keyframe = kind == "video"
        self.paused = False  # by the downlink allocation (video only)
        self._skip_on_rebase = False  # a pause dropped packets: the next rebase jumps
        self._history_seq = [-1] * HISTORY if kind == "video" else []
        self._history: list[bytes | None] = [None] * HISTORY if kind == "video" else []
        self._history_resent = [0.0] * HISTORY if kind == "video" else []
        self.packets_sent = 0
        self.octets_sent = 0
        self.retransmitted = 0
        self.nacked = 0  # packets the subscriber asked for again
        self.not_in_history = 0  # ... that were too old (or never sent) to resend
        self.refused = 0  # ... that the receiver's retransmission budget did not allow
        # Sequence numbers skipped in what was sent: the publisher's uplink lost them before
        # the SFU, or a resume jumped them. The receiver reports them as lost; they say nothing
        # about its own link.
        self.gaps = 0
        # The gaps count as each sequence number went out, so a report is compared with the
        # gaps up to the packet it names, not with gaps forwarded since it was written.
        self._gaps_at = [(-1, 0)] * GAPS_RING
        # The publisher's packets from its latest keyframe on, kept while the subscriber's DTLS
        # handshake runs (`hold_for_join`); None: nothing is held.
        self._held: list[tuple[bytes, rtp.RtpView, rtp.Vp8View | None, float]] | None = None
        self._reported: dict[int, tuple[int, int, int]] = {}
        self._rtx_sent_at = 0.0  # the last packet on the RTX stream (a resend or padding)
        self._rtx_reported_at = 0.0  # the receiver's last report on it

    # Set up ------------------------------------------------------------------------------

    def configure(self, track: NegotiatedTrack, ssrc: int, rtx_ssrc: int) -> None:
        """The slot's negotiated parameters (once the subscriber's DTLS is connected)."""
        first = self.track is None
        self.track, self.ssrc, self.rtx_ssrc = track, ssrc, rtx_ssrc
        # The extension block is the same for every packet but one value (abs-send-time for
        # video, the audio level for audio): kept as the bytes before and after that value.
        elements: list[tuple[int, bytes]] = []
        if track.mid_id and track.mid:
            elements.append((track.mid_id, track.mid.encode()[:16]))
        value_id = track.abs_send_time_id if self.kind == "video" else track.audio_level_id
        placeholder = b"\x00\x00\x00" if self.kind == "video" else b"\x7f"
        if value_id:
            elements.append((value_id, placeholder))
        block = rtp.one_byte_extension_block(elements) if elements else b""
        at = rtp.element_at(block, value_id) - 12 if value_id else len(block)
        self._ext_before = block[:at]
        self._ext_after = block[at + len(placeholder) :] if value_id else b""
        self._has_value = bool(value_id)
        self._first_byte = 0x90 if block else 0x80
        self._header_size = 12 + len(block)
        if first and self.ingress is not None:
            if self._held and (self._transport.ready or self._transport.poll()):
                self._release_held()
            if self.kind != "video" or (self.awaiting_keyframe and not self._held):
                self.ingress.request_keyframe(new_subscriber=True)

    def hold_for_join(self) -> None:
        """The subscriber's DTLS handshake has started: ask the publisher for a keyframe now
        and hold it (and what follows) until this slot is configured, when DTLS is up. A join
        over a long round trip then gets its first frame with the handshake's last flight
        instead of a keyframe request later (a round trip at the publisher's end, and up to a
        frame interval). Video slots not yet configured only."""
        if self.kind != "video" or self.track is not None or self.ingress is None:
            return
        self._held = []
        self.ingress.request_keyframe(new_subscriber=True)

    def _hold(
        self, packet: bytes, view: rtp.RtpView, vp8: rtp.Vp8View | None, arrival: float
    ) -> None:
        held = self._held
        assert held is not None
        if vp8 is not None and vp8.keyframe:
            held.clear()  # the latest keyframe is the one to start from
        elif not held:
            return  # nothing before a keyframe decodes
        held.append((packet, view, vp8, arrival))
        if len(held) > HOLD_PACKETS:
            held.clear()

    def attach(self, ingress: Ingress) -> None:
        self.detach()
        self.ingress = ingress
        self.awaiting_keyframe = self.kind == "video"
        # Another Ingress counts its sources from the start too: rebase on its first packet.
        self._source = -1
        ingress.attach(self)
        if self.track is not None:
            ingress.request_keyframe(new_subscriber=True)

    def detach(self) -> None:
        if self.ingress is not None:
            self.ingress.detach(self)
            self.ingress = None

    @property
    def publisher(self) -> ParticipantId | None:
        return None if self.ingress is None else self.ingress.publisher

    # The packet path ---------------------------------------------------------------------

    def forward(
        self, packet: bytes, view: rtp.RtpView, vp8: rtp.Vp8View | None, arrival: float
    ) -> None:
        ingress = self.ingress
        if ingress is None:
            self._drop(view.marker)
            return
        if not self._first_byte or (not self._transport.ready and not self._transport.poll()):
            # Not configured, or not up yet (DTLS done, ICE still nominating, or no datagram
            # from the subscriber so far): poll rather than wait for the RTCP round. A joiner's
            # first keyframe is held meanwhile (`hold_for_join`), else dropped.
            if self._held is not None:
                self._hold(packet, view, vp8, arrival)
            else:
                self._drop(view.marker)
            return
        if self._held is not None:
            self._release_held()
        self._forward(packet, view, vp8, arrival)

    def _release_held(self) -> None:
        """The slot is up: what was held for the joiner goes first, in the order it came."""
        held, self._held = self._held or [], None
        for packet, view, vp8, arrival in held:
            self._forward(packet, view, vp8, arrival)

    def _forward(
        self, packet: bytes, view: rtp.RtpView, vp8: rtp.Vp8View | None, arrival: float
    ) -> None:
        ingress = self.ingress
        assert ingress is not None
        if ingress.source != self._source:
            self._source = ingress.source
            self._started = False
            if self.kind == "video":
                self.awaiting_keyframe = True
        if self.kind == "video":
            assert vp8 is not None
            if self.paused:
                self._skip_on_rebase = self.packets_sent > 0
                self._drop(view.marker)
                return
            if self.awaiting_keyframe:
                if not vp8.keyframe:
                    self._drop(view.marker)
                    ingress.remind(new_subscriber=self.packets_sent == 0)
                    return
                self.awaiting_keyframe = False
                self._rebase(view, vp8, arrival)
        elif not self._started:
            self._rebase(view, None, arrival)
        ahead = (view.sequence - self._first_in_seq) & 0xFFFF
        if ahead >= 0x8000:
            return  # from before the rebase (its output numbers are taken), or too late
        if ahead > LATE_LIMIT:
            self._first_in_seq = (view.sequence - LATE_LIMIT) & 0xFFFF
        self._send(packet, view, vp8, arrival)

    def _rebase(self, view: rtp.RtpView, vp8: rtp.Vp8View | None, arrival: float) -> None:
        """Continue the receiver's numbering from here: the next packet follows the last one
        sent, whatever was skipped (a resync) or whoever published before; after a pause, with
        a jump past the receiver's jitter buffer."""
        self._first_in_seq = view.sequence
        skip = RESUME_SEQUENCE_SKIP if self._skip_on_rebase else 0
        self._skip_on_rebase = False
        self._seq_offset = (self._last_seq + 1 + skip - view.sequence) & 0xFFFF
        if not self._started:
            # A new source (or the first): its timestamps have their own origin. Continue
            # from the last one sent, advanced by the wall time since.
            assert self.track is not None
            advance = max(1, int((arrival - self._last_sent_at) * self.track.clock_rate))
            if self._last_sent_at == 0.0:
                advance = 1
            self._ts_offset = (self._last_ts + advance - view.timestamp) & 0xFFFFFFFF
        if vp8 is not None and vp8.picture_id_bits:
            self._pid_offset = (self._last_pid + 1 - vp8.picture_id) & 0x7FFF
        self._started = True

    def _send(
        self, packet: bytes, view: rtp.RtpView, vp8: rtp.Vp8View | None, arrival: float
    ) -> None:
        """Rewrite and send one packet: the output is built in one join, from views of the
        input, so the payload is copied once. Once per packet per subscriber: every attribute
        read and call here is paid that often (`bench/packetpath.py`)."""
        track = self.track
        ingress = self.ingress
        assert track is not None
        assert ingress is not None
        video = self.kind == "video"
        out_seq = (view.sequence + self._seq_offset) & 0xFFFF
        out_ts = (view.timestamp + self._ts_offset) & 0xFFFFFFFF
        last_seq = self._last_seq
        newer = out_seq != last_seq and (out_seq - last_seq) & 0xFFFF < 0x8000
        header = rtp.HEADER.pack(
            self._first_byte,
            (0x80 if view.marker else 0) | track.payload_type,
            out_seq,
            out_ts,
            self.ssrc,
        )
        value = b""
        if self._has_value:
            value = ingress.send_time if video else bytes((ingress.last_level,))
        data = memoryview(packet)
        if vp8 is not None and vp8.picture_id_bits:
            picture_id = (vp8.picture_id + self._pid_offset) & 0x7FFF
            at = vp8.picture_id_offset
            if vp8.picture_id_bits == 15:
                pid = rtp.U16.pack(0x8000 | picture_id)
                after = at + 2
            else:
                pid = bytes((picture_id & 0x7F,))
                after = at + 1
            out = b"".join(
                (
                    header,
                    self._ext_before,
                    value,
                    self._ext_after,
                    data[view.payload_start : at],
                    pid,
                    data[after : view.payload_end],
                )
            )
            if newer:
                self._last_pid = picture_id
        else:
            out = b"".join(
                (
                    header,
                    self._ext_before,
                    value,
                    self._ext_after,
                    data[view.payload_start : view.payload_end],
                )
            )
        if not self._transport.send_rtp(out):
            self._drop(view.marker)
            return
        sent = self.packets_sent
        if video:
            slot = out_seq % HISTORY
            self._history_seq[slot] = out_seq
            self._history[slot] = out
            self._history_resent[slot] = 0.0
        if sent and newer:
            self.gaps += (out_seq - last_seq - 1) & 0xFFFF
        elif sent and self.gaps:
            self.gaps -= 1  # a late packet (a repaired one) filled a gap
        self._gaps_at[out_seq % GAPS_RING] = (out_seq, self.gaps)
        if newer or sent == 0:
            self._last_seq = out_seq
            self._last_ts = out_ts
            self._last_sent_at = arrival
        self.packets_sent = sent + 1
        tally = self._tally
        tally.packets += 1
        size = len(out)
        self.octets_sent += size - self._header_size
        self._downlink.sent(size + 38)
        if view.marker or not video:
            self._counters.forwarded[ingress.key] += 1
            tally.frames += 1

    def _drop(self, marker: bool) -> None:
        if (marker or self.kind == "audio") and self.ingress is not None:
            self._counters.dropped[self.ingress.key] += 1
            self._tally.dropped_frames += 1

    # Feedback from the subscriber --------------------------------------------------------

    def retransmit(self, lost: list[int], rtt: float) -> None:
        """Answer a NACK from history, within the receiver's budget, each packet at most once
        per round trip."""
        track = self.track
        if self.kind != "video" or track is None or not self._first_byte:
            return
        now = time.monotonic()
        for seq in lost[:MAX_NACKED_PER_FEEDBACK]:
            seq &= 0xFFFF  # aiortc's parser does not wrap the BLP's sequence numbers
            self.nacked += 1
            slot = seq % HISTORY
            original = self._history[slot]
            if original is None or self._history_seq[slot] != seq:
                self.not_in_history += 1
                continue
            if now - self._history_resent[slot] < rtt:
                continue
            size = len(original) + 2 + 38
            if not self._downlink.may_retransmit(size, now):
                self._counters.retransmissions_refused[self.kind] += 1
                self.refused += 1
                break
            self._history_resent[slot] = now
            resend = self._as_rtx(original, seq) if track.rtx_payload_type else original
            if track.rtx_payload_type:
                self._rtx_sent_at = now
            self._transport.send_rtp(resend)
            self.retransmitted += 1
            self._counters.retransmissions[self.kind] += 1

    def _as_rtx(self, original: bytes, seq: int) -> bytes:
        """RFC 4588 4: the RTX stream's own SSRC and sequence, the original sequence first,
        and a fresh abs-send-time (the receiver's estimator reads it)."""
        assert self.track is not None
        self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
        timestamp = rtp.SEQ_TS_SSRC.unpack_from(original, 2)[1]
        header = rtp.HEADER.pack(
            self._first_byte,
            (original[1] & 0x80) | self.track.rtx_payload_type,
            self._rtx_seq,
            timestamp,
            self.rtx_ssrc,
        )
        value = send_time() if self._has_value else b""
        body = memoryview(original)[self._header_size :]
        return b"".join((header, self._ext_before, value, self._ext_after, rtp.U16.pack(seq), body))

    def padding(self, size: int, now: float) -> bytes | None:
        """A padding-only packet on the RTX stream (bandwidth probing), or None without RTX."""
        track = self.track
        if track is None or not track.rtx_payload_type or not self._first_byte:
            return None
        self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
        header = rtp.HEADER.pack(
            self._first_byte | 0x20,
            track.rtx_payload_type,
            self._rtx_seq,
            self._last_ts,
            self.rtx_ssrc,
        )
        value = send_time() if self._has_value else b""
        size = max(1, min(255, size))
        self._rtx_sent_at = now
        return b"".join(
            (header, self._ext_before, value, self._ext_after, bytes(size - 1), bytes((size,)))
        )

    def link_loss(self, ssrc: int, highest: int, lost: int, now: float) -> tuple[int, int] | None:
        """(packets the receiver's own link lost, packets expected) since its last report:
        reported loss less the gaps the SFU forwarded (RFC 3550 6.4.1 cumulative counts;
        None until two reports)."""
        gaps = 0
        if ssrc == self.rtx_ssrc:
            self._rtx_reported_at = now
        if ssrc == self.ssrc:
            seq, gaps_then = self._gaps_at[highest % GAPS_RING]
            gaps = gaps_then if seq == highest & 0xFFFF else self.gaps
        previous = self._reported.get(ssrc)
        self._reported[ssrc] = (highest, lost, gaps)
        if previous is None:
            return None
        expected = (highest - previous[0]) & 0xFFFFFFFF
        if not 0 < expected < 1 << 20:
            return None
        ours = (lost - previous[1]) - (gaps - previous[2])
        return max(0, min(expected, ours)), expected

    def write_off_unseen_rtx(self) -> None:
        """Before a bandwidth probe: RTX packets sent before the receiver's last report on that
        stream and missing from it were lost. A receiver counts a packet lost only once a later
        one arrives, so the tail a drop-tail queue cut from the last probe would otherwise be
        reported with the next probe's packets, and fail a probe on a link that has healed."""
        previous = self._reported.get(self.rtx_ssrc)
        settled = self._rtx_reported_at - self._rtx_sent_at >= RTX_SETTLED_SECONDS
        if previous is None or not settled:
            return
        highest, lost, gaps = previous
        unseen = (self._rtx_seq - highest) & 0xFFFF
        if 0 < unseen < 0x8000:
            self._reported[self.rtx_ssrc] = (highest + unseen, lost + unseen, gaps)

    def sender_report(self, now: float) -> list[RtcpSrPacket | RtcpSdesPacket]:
        """SR (RFC 3550 6.4.1) mapping this slot's timestamps to now, plus its CNAME.

        The mapping follows the publisher's own sender report when there is one (audio and
        video of one publisher then share its clock: the receiver's lip sync holds), else the
        last packet's arrival."""
        ingress, track = self.ingress, self.track
        if ingress is None or track is None or not self._started or self.packets_sent == 0:
            return []
        report = ingress.sender_report
        if report is not None:
            _, rtp_at_report, arrival = report
            in_ts = rtp_at_report + int((now - arrival) * track.clock_rate)
            out_ts = (in_ts + self._ts_offset) & 0xFFFFFFFF
        else:
            out_ts = (self._last_ts + int((now - self._last_sent_at) * track.clock_rate)) & (
                0xFFFFFFFF
            )
        info = RtcpSenderInfo(
            ntp_timestamp=clock.current_ntp_time(),
            rtp_timestamp=out_ts,
            packet_count=self.packets_sent & 0xFFFFFFFF,
            octet_count=self.octets_sent & 0xFFFFFFFF,
        )
        return [
            RtcpSrPacket(ssrc=self.ssrc, sender_info=info),
            RtcpSdesPacket(chunks=[RtcpSourceInfo(ssrc=self.ssrc, items=[(1, self._cname)])]),
        ]
