"""One participant's RTCPeerConnection to the SFU, and its offer/answer state.

The server is always the offerer. The participant's own audio and video arrive on two recvonly
transceivers; everybody else's go out on sendonly "slots". A slot whose publisher left turns
inactive and is reused for the next publisher of its kind, so churn does not grow the SDP.
One offer is outstanding at a time: a change while an offer is pending is remembered and
offered after the answer.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    pack_remb_fci,
    unpack_remb_fci,
)

from server import logs
from server.errors import ErrorCode, TriadError
from server.ids import ParticipantId

from . import rtp, sdpcheck, seam
from .candidates import CandidatePolicy, parse_trickled
from .codecs import NegotiatedTrack, codec_preferences, with_opus_options
from .config import MediaConfig
from .downlink import Downlink
from .egress import Egress
from .ice import rtc_ice_servers
from .ingress import Ingress
from .ntp import middle_32
from .roundtrip import MAX_SAMPLE, RoundTrip
from .stats import Counters, Kind
from .transport import PeerTransport
from .uplink import Uplink

logger = logs.get(__name__)

KINDS: tuple[Kind, Kind] = ("audio", "video")
RTCP_INTERVAL: Final = 0.5  # seconds, varied by +-20% (RFC 3550 6.3.1)
QualityCallback = Callable[[ParticipantId, bool], None]
SpeakerLookup = Callable[[], ParticipantId | None]


@dataclass(frozen=True)
class TrackInfo:
    """Which m-line carries whose media. For the offer's own participant, the mids it sends on."""

    mid: str
    participant_id: ParticipantId
    kind: Literal["audio", "video"]

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be audio or video, not {self.kind!r}")


@dataclass(frozen=True)
class Offer:
    sdp: str
    tracks: tuple[TrackInfo, ...]

    def __post_init__(self) -> None:
        if not self.sdp.startswith("v=0"):
            raise ValueError("an offer's SDP starts with v=0")


@dataclass(frozen=True)
class MediaSummary:
    """What one peer connection's media did, logged when it closes: counts only, so an
    operator can tell a weak link (NACKs, refusals, pauses) from a broken one."""

    received_packets: int
    nacks_sent: int
    keyframe_requests_sent: int
    refused_packets: int
    sent_packets: int
    nacked: int
    retransmitted: int
    not_in_history: int
    retransmissions_refused: int
    unprotectable_packets: int
    video_pauses: int
    rtt_ms: int

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value < 0:
                raise ValueError(f"{name} cannot be negative")


@dataclass
class _Slot:
    transceiver: RTCRtpTransceiver
    egress: Egress


class Peer:
    """One participant's peer connection: its publications (`ingress`) and the slots it
    receives the others on (`egress`), with the RTCP that goes with both."""

    def __init__(
        self,
        participant_id: ParticipantId,
        config: MediaConfig,
        counters: Counters,
        on_audio_level: Callable[[int], None],
        on_failed: Callable[[], None] = lambda: None,
        on_quality: QualityCallback = lambda publisher, paused: None,
        active_speaker: SpeakerLookup = lambda: None,
    ) -> None:
        self.participant_id = participant_id
        self._config = config
        self._counters = counters
        self._active_speaker = active_speaker
        # iceServers is never None: aiortc would add a public STUN server.
        self.pc = RTCPeerConnection(
            RTCConfiguration(
                iceServers=rtc_ice_servers(config.ice_servers),
                bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
            )
        )

        @self.pc.on("connectionstatechange")
        def _state_changed() -> None:
            # ICE or DTLS gave up (consent lost, network changed): the room starts over. When
            # aioice loses consent it closes its connection, DTLS closes with it and aiortc
            # closes the whole peer connection, so a close we did not ask for is a failure too.
            state = self.pc.connectionState
            if state == "failed" or (state == "closed" and not self.closed):
                on_failed()

        self.publications: dict[Kind, Ingress] = {}
        self._receivers: dict[Kind, RTCRtpTransceiver] = {}
        self.rtt = RoundTrip()  # from this participant's receiver reports; NACK pacing both ways
        for kind in KINDS:
            transceiver = self.pc.addTransceiver(kind, direction="recvonly")
            transceiver.setCodecPreferences(codec_preferences(kind))
            self._receivers[kind] = transceiver
            ingress = Ingress(
                participant_id,
                kind,
                counters,
                config.keyframe_request_interval,
                on_audio_level=on_audio_level if kind == "audio" else None,
                round_trip=self.rtt,
            )
            configure = functools.partial(self._configure_ingress, ingress, transceiver)
            seam.take_receiver(transceiver.receiver, configure)
            self.publications[kind] = ingress
        # BUNDLE: everything travels on the first transceiver's DTLS transport.
        dtls = self._receivers["audio"].receiver.transport
        self.transport = PeerTransport(dtls, self._on_rtp, self._on_rtcp)

        @dtls.on("statechange")
        def _dtls_state_changed() -> None:
            if dtls.state == "connecting":  # once per peer connection: ICE is up
                for slot in self._slots:
                    slot.egress.hold_for_join()

        self.downlink = Downlink(lambda publisher, paused: on_quality(publisher, paused))
        self.downlink.pad = self._pad
        self.downlink.probe_starts = self._probe_starts
        self.downlink.probe_ends = self._probe_ends
        self.uplink = Uplink()
        seam.restrict_host_candidates(self.pc, config.host_addresses, config.port_range)
        self._candidates = CandidatePolicy.for_hosts(
            config.host_addresses,
            allow_private=config.allow_private_candidates,
            max_per_connection=config.max_remote_candidates,
        )
        self._candidates_accepted = 0
        self._slots: list[_Slot] = []
        self._by_ssrc: dict[int, Egress] = {}
        self._pending: str | None = None
        self._offer_again = False
        self.refused_packets = 0
        self.closed = False
        self._rtcp_task = asyncio.get_running_loop().create_task(self._run_rtcp())

    def _configure_ingress(
        self, ingress: Ingress, transceiver: RTCRtpTransceiver, parameters: Any
    ) -> None:
        track = NegotiatedTrack.from_parameters(ingress.kind, parameters)
        if track is not None:
            ingress.configure(track, self.transport, transceiver.sender._ssrc)

    def _configure_egress(self, slot: _Slot, parameters: Any) -> None:
        egress = slot.egress
        track = NegotiatedTrack.from_parameters(egress.kind, parameters)
        if track is None:
            return
        sender = slot.transceiver.sender
        egress.configure(track, sender._ssrc, sender._rtx_ssrc)
        self._by_ssrc[sender._ssrc] = egress
        if track.rtx_payload_type:  # its receiver reports count the probes' padding too
            self._by_ssrc[sender._rtx_ssrc] = egress

    # The packet path ---------------------------------------------------------------------

    def _on_rtp(self, packet: bytes, arrival: float) -> None:
        view = rtp.read(packet)
        if view is None:
            self.refused_packets += 1
            return
        payload_type = view.payload_type
        audio, video = self.publications["audio"], self.publications["video"]
        if audio.track is not None and payload_type == audio.track.payload_type:
            audio.on_media(packet, view, arrival)
        elif video.track is not None and payload_type == video.track.payload_type:
            video.on_media(packet, view, arrival)
        elif video.track is not None and payload_type == video.track.rtx_payload_type:
            video.on_rtx(packet, view, arrival)
        else:
            self.refused_packets += 1

    def _on_rtcp(self, packets: Sequence[AnyRtcpPacket], arrival: float) -> None:
        for packet in packets:
            if isinstance(packet, RtcpSrPacket):
                for ingress in self.publications.values():
                    if ingress.ssrc == packet.ssrc:
                        info = packet.sender_info
                        ingress.on_sender_report(info.ntp_timestamp, info.rtp_timestamp, arrival)
                self._on_reports(packet.reports, arrival)
            elif isinstance(packet, RtcpRrPacket):
                self._on_reports(packet.reports, arrival)
            elif isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
                egress = self._by_ssrc.get(packet.media_ssrc)
                if egress is not None:
                    egress.retransmit(packet.lost, self.rtt.floor)
            elif isinstance(packet, RtcpPsfbPacket):
                self._on_payload_feedback(packet, arrival)

    def _on_payload_feedback(self, packet: RtcpPsfbPacket, arrival: float) -> None:
        if packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            ssrc = packet.media_ssrc
            if packet.fmt == RTCP_PSFB_FIR and len(packet.fci) >= 4:
                ssrc = int.from_bytes(packet.fci[:4], "big")  # RFC 5104 4.3.1.1
            egress = self._by_ssrc.get(ssrc)
            if egress is not None and egress.ingress is not None:
                egress.ingress.request_keyframe()
        elif packet.fmt == RTCP_PSFB_APP:
            try:
                bitrate, _ = unpack_remb_fci(packet.fci)
            except (ValueError, IndexError):
                return
            self.downlink.on_remb(float(bitrate), arrival)

    def _on_reports(self, reports: Sequence[Any], arrival: float) -> None:
        padded = self._padded()
        for report in reports:
            egress = self._by_ssrc.get(report.ssrc)
            if egress is None:
                continue
            loss = egress.link_loss(
                report.ssrc, report.highest_sequence, report.packets_lost, arrival
            )
            if loss is not None:
                probed = padded is egress and report.ssrc == egress.rtx_ssrc
                self.downlink.on_loss(*loss, arrival, probed=probed)
            if report.lsr:
                since = ((middle_32() - report.lsr) & 0xFFFFFFFF) / 65536  # our report's age
                rtt = ((middle_32() - report.lsr - report.dlsr) & 0xFFFFFFFF) / 65536
                if since < MAX_SAMPLE:
                    usual = max(self.rtt.floor, self.rtt.smoothed)
                    self.downlink.on_round_trip(rtt, arrival - since, usual)
                self.rtt.add(rtt)

    def _padded(self) -> Egress | None:
        """The slot whose RTX stream carries the probes' padding: the first video slot."""
        return next((s.egress for s in self._slots if s.egress.kind == "video"), None)

    def _probe_starts(self) -> None:
        egress = self._padded()
        if egress is not None:
            egress.write_off_unseen_rtx()

    def _probe_ends(self) -> None:
        """Sender reports now, while the probe's padding is queued on the subscriber's link (if
        its link could not take it): the round trip of the reports answering them shows it."""
        now = time.monotonic()
        for slot in self._slots:
            report_packets = slot.egress.sender_report(now)
            if report_packets:
                self.transport.send_rtcp(report_packets)

    def _pad(self, size: int) -> None:
        """Padding for a bandwidth probe (nothing when that slot has no RTX)."""
        egress = self._padded()
        if egress is None:
            return
        now = time.monotonic()
        sent = 0
        while sent < size:
            packet = egress.padding(255, now)
            if packet is None or not self.transport.send_rtp(packet):
                return
            sent += len(packet) + 38
            self.downlink.sent(len(packet) + 38)

    async def _run_rtcp(self) -> None:
        """Receiver reports and REMB to this participant about what it publishes, sender
        reports for what it receives, and the downlink allocation: one loop per peer."""
        while True:
            await asyncio.sleep(RTCP_INTERVAL * (0.8 + 0.4 * random.random()))  # noqa: S311 - timing jitter
            try:
                self._rtcp_round(time.monotonic())
            except Exception as exc:  # one bad round must not end the reports for good
                logger.exception("media.rtcp_round_failed", error=type(exc).__name__)

    def _rtcp_round(self, now: float) -> None:
        if not self.transport.poll():
            return
        reports = []
        for ingress in self.publications.values():
            ingress.measure(now)
            report = ingress.receiver_report(now)
            if report is not None:
                reports.append(report)
        if reports:
            rtcp_ssrc = self.publications["audio"].rtcp_ssrc or self.publications["video"].rtcp_ssrc
            packets: list[AnyRtcpPacket] = [RtcpRrPacket(ssrc=rtcp_ssrc, reports=reports)]
            video = self.publications["video"]
            remb = self.uplink.update(self.publications.values(), now)
            if remb is not None and video.ssrc is not None:
                packets.append(
                    RtcpPsfbPacket(
                        fmt=RTCP_PSFB_APP,
                        ssrc=rtcp_ssrc,
                        media_ssrc=0,
                        fci=pack_remb_fci(int(remb), [video.ssrc]),
                    )
                )
            self.transport.send_rtcp(packets)
        for slot in self._slots if not self.downlink.holds_sender_reports() else ():
            report_packets = slot.egress.sender_report(now)
            if report_packets:
                self.transport.send_rtcp(report_packets)
        egresses = [slot.egress for slot in self._slots if slot.egress.ingress is not None]
        self.downlink.allocate(egresses, self._active_speaker(), now)

    # Subscriptions -----------------------------------------------------------------------

    def subscribe(self, publication: Ingress) -> None:
        """Send `publication` to this participant (takes effect with the next offer)."""
        kind = publication.kind
        slot = next(
            (s for s in self._slots if s.egress.kind == kind and s.egress.ingress is None),
            None,
        )
        if slot is None:
            transceiver = self.pc.addTransceiver(kind, direction="sendonly")
            transceiver.setCodecPreferences(codec_preferences(kind))
            cname = seam.cname(self.pc)
            egress = Egress(kind, self.transport, self.downlink, self._counters, cname)
            slot = _Slot(transceiver, egress)
            seam.take_sender(transceiver.sender, functools.partial(self._configure_egress, slot))
            self._slots.append(slot)
        slot.transceiver.direction = "sendonly"
        slot.egress.attach(publication)
        # One stream id per publisher: browsers lip-sync the audio and video of one stream;
        # a new track id, so the next offer's msid names a new track for this slot.
        seam.set_stream_id(slot.transceiver.sender, publication.publisher)
        seam.new_track_id(slot.transceiver.sender)

    def unsubscribe(self, publisher: ParticipantId) -> bool:
        """Stop sending `publisher`'s media here; True when something changed."""
        changed = False
        for slot in self._slots:
            if slot.egress.publisher == publisher:
                slot.egress.detach()
                slot.egress.paused = False
                slot.transceiver.direction = "inactive"
                changed = True
        return changed

    def track_map(self) -> tuple[TrackInfo, ...]:
        tracks = [
            TrackInfo(t.mid, self.participant_id, kind)
            for kind, t in self._receivers.items()
            if t.mid is not None
        ]
        for slot in self._slots:
            publisher = slot.egress.publisher
            if publisher is not None and slot.transceiver.mid is not None:
                tracks.append(TrackInfo(slot.transceiver.mid, publisher, slot.egress.kind))
        return tuple(tracks)

    # Negotiation -------------------------------------------------------------------------

    async def make_offer(self) -> Offer | None:
        """A new offer, or None when one is pending (then it is made after the answer)."""
        if self.closed:
            return None
        if self._pending is not None:
            self._offer_again = True
            return None
        offer = await self.pc.createOffer()
        await self.pc.setLocalDescription(
            RTCSessionDescription(sdp=with_opus_options(offer.sdp), type="offer")
        )
        sdp = self.pc.localDescription.sdp
        self._pending = sdp
        return Offer(sdp, self.track_map())

    async def accept_answer(self, sdp: object) -> bool:
        """Apply the answer; True when a change is waiting to be offered."""
        if not isinstance(sdp, str) or not sdp:
            raise sdpcheck.invalid("the answer must be an SDP string")
        if len(sdp.encode()) > self._config.max_sdp_bytes:
            raise sdpcheck.invalid(f"the answer is larger than {self._config.max_sdp_bytes} bytes")
        if self._pending is None or self.closed:
            raise TriadError(ErrorCode.NO_PENDING_OFFER, "there is no offer to answer")
        sdpcheck.check_answer(self._pending, sdp)
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        except sdpcheck.SDP_ERRORS as exc:
            raise sdpcheck.invalid(
                f"the answer could not be applied ({type(exc).__name__})"
            ) from None
        self._pending = None
        again, self._offer_again = self._offer_again, False
        return again

    async def add_candidate(self, candidate: Mapping[str, object] | None) -> None:
        """A trickled remote candidate (browser form); None or an empty one ends the list."""
        transceivers = self.pc.getTransceivers()
        parsed = parse_trickled(candidate, {t.mid for t in transceivers if t.mid is not None})
        if parsed is None:
            await self.pc.addIceCandidate(None)
            return
        self._candidates.check_address(parsed.ip)
        self._candidates.check_count(self._candidates_accepted)
        # Everything is bundled on the first m-line's transport (MAX_BUNDLE).
        parsed.sdpMid = transceivers[0].mid
        parsed.sdpMLineIndex = 0
        await self.pc.addIceCandidate(parsed)
        self._candidates_accepted += 1

    def remote_candidates(self) -> tuple[tuple[str, int], ...]:
        """(address, port) of each remote candidate the ICE agent holds (bundled: one)."""
        transceivers = self.pc.getTransceivers()
        if not transceivers:
            return ()
        ice = transceivers[0].receiver.transport.transport
        return tuple((c.ip, c.port) for c in ice.getRemoteCandidates())

    # Lifetime ----------------------------------------------------------------------------

    def summary(self) -> MediaSummary:
        egresses = [slot.egress for slot in self._slots]
        ingresses = list(self.publications.values())
        return MediaSummary(
            received_packets=sum(i.received for i in ingresses),
            nacks_sent=sum(i.nacks_sent for i in ingresses),
            keyframe_requests_sent=sum(i.plis_sent for i in ingresses),
            refused_packets=self.refused_packets + self.transport.refused,
            sent_packets=sum(e.packets_sent for e in egresses),
            nacked=sum(e.nacked for e in egresses),
            retransmitted=sum(e.retransmitted for e in egresses),
            not_in_history=sum(e.not_in_history for e in egresses),
            retransmissions_refused=sum(e.refused for e in egresses),
            unprotectable_packets=self.transport.unprotectable,
            video_pauses=self.downlink.pauses,
            rtt_ms=round(self.rtt.smoothed * 1000),
        )

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._rtcp_task.cancel()
        await asyncio.gather(self._rtcp_task, return_exceptions=True)
        self.downlink.close()
        for slot in self._slots:
            slot.egress.detach()
        for publication in self.publications.values():
            publication.close()
        self.transport.close()
        await self.pc.close()
