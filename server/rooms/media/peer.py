"""One participant's RTCPeerConnection to the SFU, and its offer/answer state.

The server is always the offerer. The participant's own audio and video arrive on two recvonly
transceivers (a third while they share their screen); everybody else's go out on sendonly
"slots". A slot whose publisher left turns inactive and is reused for the next publisher of its
kind, so churn does not grow the SDP; so does a shared screen's receiver between shares.
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
from typing import Any, Final

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
from .ice import offer_ice_servers, sfu_ice_servers
from .ingress import Ingress
from .metering import PeerStateMeter
from .ntp import middle_32
from .offers import KINDS, Offer, TrackInfo
from .roundtrip import MAX_SAMPLE, RoundTrip
from .router import Router
from .stats import Counters, Kind, MediaSummary, TrackKey, TrackName
from .transport import PeerTransport
from .uplink import Uplink

log = logs.get(__name__)

RTCP_INTERVAL: Final = 0.5  # seconds, varied by +-20% (RFC 3550 6.3.1)
QualityCallback = Callable[[TrackKey, bool], None]  # a publication paused here, or resumed
SpeakerLookup = Callable[[], ParticipantId | None]


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
        on_quality: QualityCallback = lambda track, paused: None,
        active_speaker: SpeakerLookup = lambda: None,
    ) -> None:
        self.participant_id = participant_id
        self._config = config
        self._counters = counters
        self._active_speaker = active_speaker
        self._on_audio_level = on_audio_level
        # iceServers is never None: aiortc would add a public STUN server.
        self.pc = RTCPeerConnection(
            RTCConfiguration(
                iceServers=sfu_ice_servers(config, participant_id),
                bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
            )
        )

        self._meter = PeerStateMeter()

        @self.pc.on("connectionstatechange")
        def _state_changed() -> None:
            # ICE or DTLS gave up (consent lost, network changed): the room starts over. When
            # aioice loses consent it closes its connection, DTLS closes with it and aiortc
            # closes the whole peer connection, so a close we did not ask for is a failure too.
            state = self.pc.connectionState
            self._meter.move(state)
            if state == "failed" or (state == "closed" and not self.closed):
                on_failed()

        self.publications: dict[TrackName, Ingress] = {}
        self._receivers: dict[TrackName, RTCRtpTransceiver] = {}
        self.router = Router()
        self.rtt = RoundTrip()  # from this participant's receiver reports; NACK pacing both ways
        for kind in KINDS:
            self._publish(kind, seam.add_transceiver(self.pc, kind, "recvonly"))
        # BUNDLE: everything travels on the first transceiver's DTLS transport.
        dtls = self._receivers["audio"].receiver.transport
        self.transport = PeerTransport(dtls, self._on_rtp, self._on_rtcp)

        @dtls.on("statechange")
        def _dtls_state_changed() -> None:
            if dtls.state == "connecting":  # once per peer connection: ICE is up
                for slot in self._slots:
                    slot.egress.hold_for_join()

        self.downlink = Downlink(on_quality)
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
        self._screen_offered = False  # the pending offer asks for the shared screen
        self.screen_refused = False  # ... and the answer to it did not send one
        self.refused_packets = 0
        self.closed = False
        self._rtcp_task = asyncio.get_running_loop().create_task(self._run_rtcp())

    def _publish(self, name: TrackName, transceiver: RTCRtpTransceiver) -> None:
        kind: Kind = "audio" if name == "audio" else "video"
        transceiver.setCodecPreferences(codec_preferences(kind))
        ingress = Ingress(
            self.participant_id,
            kind,
            self._counters,
            self._config.keyframe_request_interval,
            on_audio_level=self._on_audio_level if kind == "audio" else None,
            round_trip=self.rtt,
            screen=name == "screen",
        )
        configure = functools.partial(self._configure_ingress, ingress, transceiver)
        seam.take_receiver(transceiver.receiver, configure)
        self._receivers[name] = transceiver
        self.publications[name] = ingress

    def _configure_ingress(
        self, ingress: Ingress, transceiver: RTCRtpTransceiver, parameters: Any
    ) -> None:
        track = NegotiatedTrack.from_parameters(ingress.kind, parameters)
        if track is not None and not ingress.closed:
            ingress.configure(track, self.transport, transceiver.sender._ssrc)
            self.router.declare(ingress, track)

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
        route = None if view is None else self.router.route(packet, view, self.publications)
        if route is None or view is None:
            self.refused_packets += 1
        elif route.rtx:
            route.ingress.on_rtx(packet, view, arrival)
        else:
            route.ingress.on_media(packet, view, arrival)

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
                log.exception("media.rtcp_round_failed", error=type(exc).__name__)

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
            # One REMB for all the publisher's video (camera and shared screen): it divides it.
            videos = [i.ssrc for i in self.publications.values() if i.kind == "video" and i.ssrc]
            remb = self.uplink.update(self.publications.values(), now)
            if remb is not None and videos:
                fci = pack_remb_fci(int(remb), videos)
                packets.append(
                    RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=fci)
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
            transceiver = seam.add_transceiver(self.pc, kind, "sendonly")
            transceiver.setCodecPreferences(codec_preferences(kind))
            cname = seam.cname(self.pc)
            egress = Egress(kind, self.transport, self.downlink, self._counters, cname)
            slot = _Slot(transceiver, egress)
            seam.take_sender(transceiver.sender, functools.partial(self._configure_egress, slot))
            self._slots.append(slot)
        slot.transceiver.direction = "sendonly"
        slot.egress.attach(publication)
        # One stream id per publisher: browsers lip-sync the audio and video of one stream (a
        # shared screen is a stream of its own); a new track id, so the next offer's msid names
        # a new track for this slot.
        stream = f"{publication.publisher}-screen" if publication.screen else publication.publisher
        seam.set_stream_id(slot.transceiver.sender, stream)
        seam.new_track_id(slot.transceiver.sender)

    def unsubscribe(self, publisher: ParticipantId, track: TrackName | None = None) -> bool:
        """Stop sending `publisher`'s media here (only `track` of it when given); True when
        something changed."""
        changed = False
        for slot in self._slots:
            ingress = slot.egress.ingress
            if ingress and ingress.publisher == publisher and track in (None, ingress.name):
                slot.egress.detach()
                slot.egress.paused = False
                slot.transceiver.direction = "inactive"
                changed = True
        return changed

    def track_map(self) -> tuple[TrackInfo, ...]:
        tracks = [
            TrackInfo(t.mid, self.participant_id, ingress.kind, screen=ingress.screen)
            for name, t in self._receivers.items()
            if t.mid is not None and (ingress := self.publications.get(name)) is not None
        ]
        for slot in self._slots:
            ingress = slot.egress.ingress
            if ingress is not None and slot.transceiver.mid is not None:
                info = TrackInfo(
                    slot.transceiver.mid, ingress.publisher, ingress.kind, ingress.screen
                )
                tracks.append(info)
        return tuple(tracks)

    # The shared screen -------------------------------------------------------------------

    def share_screen(self) -> Ingress:
        """Receive the participant's shared screen (a second video, on an m-line of its own
        from the next offer), published like their camera."""
        current = self.publications.get("screen")
        if current is not None:
            return current
        transceiver = self._receivers.get("screen")
        if transceiver is None:
            transceiver = seam.add_transceiver(self.pc, "video", "recvonly")
        transceiver.direction = "recvonly"
        self._publish("screen", transceiver)
        return self.publications["screen"]

    def unshare_screen(self) -> None:
        """No more shared screen: its publication closes (unsubscribe its slots first) and its
        m-line turns inactive, kept for the next share so the SDP does not grow."""
        ingress = self.publications.pop("screen", None)
        if ingress is not None:
            self._receivers["screen"].direction = "inactive"
            self.router.forget(ingress)
            ingress.close()
            self.screen_refused = False

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
        self._screen_offered = "screen" in self.publications
        return Offer(sdp, self.track_map(), offer_ice_servers(self._config, self.participant_id))

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
        # A participant whose page lost its capture answers the screen's line inactive.
        offered = self._screen_offered and "screen" in self.publications
        self.screen_refused = offered and self._receivers["screen"].currentDirection != "recvonly"
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
            local_candidate=self.transport.route[0],
            remote_candidate=self.transport.route[1],
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
        self._meter.move("closed")
        await self.pc.close()
