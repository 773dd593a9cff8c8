"""One participant's RTCPeerConnection to the SFU, and its offer/answer state.

The server is always the offerer. The participant's own audio and video arrive on two recvonly
transceivers; everybody else's go out on sendonly "slots". A slot whose publisher left turns
inactive and is reused for the next publisher of its kind, so churn does not grow the SDP.
One offer is outstanding at a time: a change while an offer is pending is remembered and
offered after the answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc import exceptions as rtc_errors
from aiortc.rtcrtpparameters import RTCRtpCodecCapability
from aiortc.sdp import SessionDescription, candidate_from_sdp

from server.errors import ErrorCode, TriadError
from server.ids import ParticipantId

from . import sdpcheck, seam
from .candidates import CandidatePolicy
from .config import MediaConfig
from .forwarding import ForwardTrack, Publication
from .ice import rtc_ice_servers
from .stats import Counters, Kind

KINDS: tuple[Kind, Kind] = ("audio", "video")
_MAX_CANDIDATE_CHARS = 1024
# What aiortc raises on an answer it cannot apply (besides ValueError from its parser).
_SDP_ERRORS = (
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    rtc_errors.InternalError,
    rtc_errors.InvalidAccessError,
    rtc_errors.InvalidStateError,
    rtc_errors.OperationError,
)


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


def codec_preferences(kind: Kind) -> list[RTCRtpCodecCapability]:
    """Opus for audio; VP8 (with RTX for retransmissions) for video: forwarding never transcodes."""
    wanted = ("audio/opus",) if kind == "audio" else ("video/vp8", "video/rtx")
    codecs = RTCRtpSender.getCapabilities(kind).codecs
    return [codec for name in wanted for codec in codecs if codec.mimeType.lower() == name]


@dataclass
class _Slot:
    transceiver: RTCRtpTransceiver
    track: ForwardTrack


def _invalid(message: str) -> TriadError:
    return TriadError(ErrorCode.SDP_INVALID, message)


class Peer:
    def __init__(
        self,
        participant_id: ParticipantId,
        config: MediaConfig,
        counters: Counters,
        on_audio_level: Callable[[int], None],
        on_failed: Callable[[], None] = lambda: None,
    ) -> None:
        self.participant_id = participant_id
        self._config = config
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

        self.publications: dict[Kind, Publication] = {}
        self._receivers: dict[Kind, RTCRtpTransceiver] = {}
        for kind in KINDS:
            transceiver = self.pc.addTransceiver(kind, direction="recvonly")
            transceiver.setCodecPreferences(codec_preferences(kind))
            self._receivers[kind] = transceiver
            publication = Publication(
                participant_id,
                kind,
                transceiver.receiver,
                counters,
                config.keyframe_request_interval,
            )
            seam.divert_receiver(
                transceiver.receiver,
                publication.on_frame,
                on_stop=lambda: None,
                on_audio_level=on_audio_level if kind == "audio" else None,
                estimate_bandwidth=config.publisher_remb,
            )
            self.publications[kind] = publication
        seam.restrict_host_candidates(self.pc, config.host_addresses, config.port_range)
        self._candidates = CandidatePolicy.for_hosts(
            config.host_addresses,
            allow_private=config.allow_private_candidates,
            max_per_connection=config.max_remote_candidates,
        )
        self._candidates_accepted = 0
        self._slots: list[_Slot] = []
        self._pending: str | None = None
        self._offer_again = False
        self.closed = False

    # Subscriptions -----------------------------------------------------------------------

    def subscribe(self, publication: Publication) -> None:
        """Send `publication` to this participant (takes effect with the next offer)."""
        kind = publication.kind
        slot = next(
            (s for s in self._slots if s.track.kind == kind and s.track.publication is None),
            None,
        )
        if slot is None:
            transceiver = self.pc.addTransceiver(kind, direction="sendonly")
            transceiver.setCodecPreferences(codec_preferences(kind))
            limit = (
                self._config.max_queued_video_frames
                if kind == "video"
                else self._config.max_queued_audio_frames
            )
            track = ForwardTrack(kind, limit)
            seam.intercept_keyframe_requests(transceiver.sender, track.request_keyframe)
            slot = _Slot(transceiver, track)
            self._slots.append(slot)
        slot.transceiver.direction = "sendonly"
        slot.track.attach(publication)
        # One stream id per publisher: browsers lip-sync the audio and video of one stream.
        seam.set_stream_id(slot.transceiver.sender, publication.publisher)
        slot.transceiver.sender.replaceTrack(slot.track)

    def unsubscribe(self, publisher: ParticipantId) -> bool:
        """Stop sending `publisher`'s media here; True when something changed."""
        changed = False
        for slot in self._slots:
            publication = slot.track.publication
            if publication is not None and publication.publisher == publisher:
                slot.track.detach()
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
            publication = slot.track.publication
            if publication is not None and slot.transceiver.mid is not None:
                tracks.append(
                    TrackInfo(slot.transceiver.mid, publication.publisher, publication.kind)
                )
        return tuple(tracks)

    # Negotiation -------------------------------------------------------------------------

    async def make_offer(self) -> Offer | None:
        """A new offer, or None when one is pending (then it is made after the answer)."""
        if self.closed:
            return None
        if self._pending is not None:
            self._offer_again = True
            return None
        await self.pc.setLocalDescription(await self.pc.createOffer())
        sdp = self.pc.localDescription.sdp
        self._pending = sdp
        return Offer(sdp, self.track_map())

    async def accept_answer(self, sdp: object) -> bool:
        """Apply the answer; True when a change is waiting to be offered."""
        if not isinstance(sdp, str) or not sdp:
            raise _invalid("the answer must be an SDP string")
        if len(sdp.encode()) > self._config.max_sdp_bytes:
            raise _invalid(f"the answer is larger than {self._config.max_sdp_bytes} bytes")
        if self._pending is None or self.closed:
            raise TriadError(ErrorCode.NO_PENDING_OFFER, "there is no offer to answer")
        self._check_answer(sdp)
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        except _SDP_ERRORS as exc:
            raise _invalid(f"the answer could not be applied ({type(exc).__name__})") from None
        self._pending = None
        again, self._offer_again = self._offer_again, False
        return again

    def _check_answer(self, sdp: str) -> None:
        """Refuse an answer that does not parse or does not match the offer, before aiortc
        applies any of it (aiortc can fail half-way through and leave the PC inconsistent)."""
        offer = SessionDescription.parse(self._pending or "")  # our own, made by aiortc
        sdpcheck.check_answer_text(sdp, max_media=len(offer.media))
        try:
            answer = SessionDescription.parse(sdp)
        except _SDP_ERRORS:
            raise _invalid("the answer does not parse as SDP") from None
        if len(answer.media) != len(offer.media):
            raise _invalid("the answer's media sections do not match the offer")
        for theirs, ours in zip(answer.media, offer.media, strict=True):
            if theirs.kind != ours.kind or theirs.rtp.muxId != ours.rtp.muxId:
                raise _invalid("the answer's media sections do not match the offer")
            if theirs.ice is None or theirs.dtls is None or not theirs.dtls.fingerprints:
                raise _invalid("the answer lacks ICE credentials or a DTLS fingerprint")

    async def add_candidate(self, candidate: Mapping[str, object] | None) -> None:
        """A trickled remote candidate (browser form); None or an empty one ends the list."""
        if candidate is not None and not isinstance(candidate, Mapping):
            raise TriadError(ErrorCode.CANDIDATE_INVALID, "a candidate must be an object")
        text = None if candidate is None else candidate.get("candidate")
        if text is None or text == "":
            if candidate is not None and text is None:
                raise TriadError(ErrorCode.CANDIDATE_INVALID, "the candidate field is missing")
            await self.pc.addIceCandidate(None)
            return
        if not isinstance(text, str) or len(text) > _MAX_CANDIDATE_CHARS:
            raise TriadError(ErrorCode.CANDIDATE_INVALID, "the candidate must be a short string")
        assert candidate is not None
        mid = candidate.get("sdpMid")
        index = candidate.get("sdpMLineIndex")
        if mid is not None and not isinstance(mid, str):
            raise TriadError(ErrorCode.CANDIDATE_INVALID, "sdpMid must be a string")
        if index is not None and (isinstance(index, bool) or not isinstance(index, int)):
            raise TriadError(ErrorCode.CANDIDATE_INVALID, "sdpMLineIndex must be an integer")
        transceivers = self.pc.getTransceivers()
        mids = {t.mid for t in transceivers if t.mid is not None}
        if mid not in mids and not (isinstance(index, int) and 0 <= index < len(mids)):
            raise TriadError(ErrorCode.CANDIDATE_INVALID, "the candidate names no media section")
        line = text.removeprefix("candidate:")
        if not _candidate_shape_ok(line):
            raise TriadError(ErrorCode.CANDIDATE_INVALID, "the candidate does not parse")
        try:
            parsed = candidate_from_sdp(line)
        except (ValueError, IndexError, KeyError, AssertionError):
            raise TriadError(ErrorCode.CANDIDATE_INVALID, "the candidate does not parse") from None
        if parsed.protocol.lower() != "udp":
            raise TriadError(ErrorCode.CANDIDATE_INVALID, "the server speaks ICE over UDP only")
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

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for slot in self._slots:
            slot.track.stop()
        for publication in self.publications.values():
            await publication.close()
        await self.pc.close()


def _candidate_shape_ok(line: str) -> bool:
    """`foundation component transport priority address port typ type ...` (RFC 8839 5.1).

    Checked here because aiortc's parser validates with `assert`, which `python -O` removes.
    """
    bits = line.split()
    return (
        len(bits) >= 8
        and bits[1].isdigit()
        and bits[3].isdigit()
        and bits[5].isdigit()
        and int(bits[5]) <= 65535
        and bits[6] == "typ"
        and len(bits) % 2 == 0
    )
