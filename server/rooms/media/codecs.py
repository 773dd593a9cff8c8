"""What one negotiated m-line means for the packet path, and what the offer asks for.

The server is always the offerer, so every peer connection uses the payload types and header
extension ids of the server's own offers; `NegotiatedTrack` still reads them from aiortc's
negotiated parameters rather than assume them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from aiortc import RTCRtpSender
from aiortc.rtcrtpparameters import RTCRtpCodecCapability

from .stats import Kind

MID_URI: Final = "urn:ietf:params:rtp-hdrext:sdes:mid"
AUDIO_LEVEL_URI: Final = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
ABS_SEND_TIME_URI: Final = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
# Opus in-band FEC (a lost 20 ms frame is rebuilt from the next packet) and DTX (silence costs
# almost nothing): what a patient on a lossy or narrow link needs most (RFC 7587 6.1).
OPUS_PARAMETERS: Final = {"minptime": 10, "useinbandfec": 1, "usedtx": 1}


@dataclass(frozen=True)
class NegotiatedTrack:
    """One m-line's payload types, clock and header extension ids (0: not negotiated), and for
    a receiver the SSRCs the publisher's answer announced for it (0: none announced)."""

    kind: Kind
    mid: str
    payload_type: int
    clock_rate: int
    rtx_payload_type: int = 0
    mid_id: int = 0
    audio_level_id: int = 0
    abs_send_time_id: int = 0
    ssrc: int = 0
    rtx_ssrc: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("audio", "video"):
            raise ValueError("kind must be audio or video")
        if not 0 <= self.payload_type <= 127 or not 0 <= self.rtx_payload_type <= 127:
            raise ValueError("payload types are 0-127")
        if self.clock_rate <= 0:
            raise ValueError("clock_rate must be positive")
        for ext_id in (self.mid_id, self.audio_level_id, self.abs_send_time_id):
            if not 0 <= ext_id <= 14:
                raise ValueError("one-byte header extension ids are 1-14")
        if not 0 <= self.ssrc <= 0xFFFFFFFF or not 0 <= self.rtx_ssrc <= 0xFFFFFFFF:
            raise ValueError("SSRCs are 32-bit")

    @classmethod
    def from_parameters(cls, kind: Kind, parameters: Any) -> NegotiatedTrack | None:
        """From aiortc's RTCRtpSendParameters/RTCRtpReceiveParameters; None without codecs."""
        codecs = list(parameters.codecs)
        if not codecs:
            return None
        media = codecs[0]
        rtx = next(
            (
                c
                for c in codecs
                if c.mimeType.lower().endswith("/rtx")
                and c.parameters.get("apt") == media.payloadType
            ),
            None,
        )
        ids = {ext.uri: ext.id for ext in parameters.headerExtensions if 1 <= ext.id <= 14}
        # Receive parameters carry the answer's SSRCs (aiortc: one encoding per codec, all
        # naming the m-line's first a=ssrc, RTX the second of its FID group).
        encoding = next(iter(getattr(parameters, "encodings", None) or ()), None)
        rtx_encoding = None if encoding is None else encoding.rtx
        return cls(
            kind=kind,
            mid=parameters.muxId or "",
            payload_type=media.payloadType,
            clock_rate=media.clockRate,
            rtx_payload_type=rtx.payloadType if rtx is not None else 0,
            mid_id=ids.get(MID_URI, 0),
            audio_level_id=ids.get(AUDIO_LEVEL_URI, 0),
            abs_send_time_id=ids.get(ABS_SEND_TIME_URI, 0),
            ssrc=0 if encoding is None else encoding.ssrc,
            rtx_ssrc=0 if rtx_encoding is None else rtx_encoding.ssrc,
        )


def codec_preferences(kind: Kind) -> list[RTCRtpCodecCapability]:
    """Opus for audio; VP8 with RTX for video: forwarding never transcodes, so every
    participant sends and receives the same codecs."""
    wanted = ("audio/opus",) if kind == "audio" else ("video/vp8", "video/rtx")
    codecs = RTCRtpSender.getCapabilities(kind).codecs
    return [codec for name in wanted for codec in codecs if codec.mimeType.lower() == name]


def with_opus_options(sdp: str) -> str:
    """The server's own offer with `OPUS_PARAMETERS` on every Opus payload type (aiortc offers
    Opus without an fmtp line; in an offer, fmtp says what its sender wants to receive)."""
    lines = sdp.split("\r\n")
    opus_types = {
        line.split()[0].removeprefix("a=rtpmap:")
        for line in lines
        if line.startswith("a=rtpmap:") and line.lower().endswith(" opus/48000/2")
    }
    wanted = ";".join(f"{name}={value}" for name, value in OPUS_PARAMETERS.items())
    out: list[str] = []
    for line in lines:
        if line.startswith("a=fmtp:") and line.split()[0].removeprefix("a=fmtp:") in opus_types:
            continue  # replaced below, right after its rtpmap
        out.append(line)
        if line.startswith("a=rtpmap:"):
            payload_type = line.split()[0].removeprefix("a=rtpmap:")
            if payload_type in opus_types:
                out.append(f"a=fmtp:{payload_type} {wanted}")
    return "\r\n".join(out)
