"""The aiortc/aioice internals `server/rooms/media/seam.py` relies on are still where it expects.

When this fails after an upgrade, read the named aiortc code again, adjust seam.py, and update
the pins (pyproject.toml and seam.AIORTC_CHECKED) together.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
)
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcdtlstransport import RTCDtlsTransport

from server.rooms.media import seam

# RTCRtpReceiver.receive is re-implemented without its decoder thread in seam.divert_receiver;
# when its source changes at all, the copy must be checked against it.
RECEIVE_SHA256 = "d6d8d8d7a0bf4e95f3fb7cb78cf275d0a5f50c4912e0cb8498272008779916ef"


def test_versions_are_the_checked_ones() -> None:
    assert importlib.metadata.version("aiortc").startswith(seam.AIORTC_CHECKED)
    assert importlib.metadata.version("aioice").startswith(seam.AIOICE_CHECKED)


async def test_receiver_sender_and_transport_have_what_the_seam_uses() -> None:
    pc = loopback_pc()
    try:
        transceiver = pc.addTransceiver("audio", direction="recvonly")
        receiver, sender = transceiver.receiver, transceiver.sender
        for name in seam.RECEIVER_ATTRIBUTES:
            assert name in vars(receiver), f"RTCRtpReceiver lost {name}"
        for name in seam.RECEIVER_METHODS:
            assert callable(getattr(RTCRtpReceiver, name, None)), f"RTCRtpReceiver.{name}"
        for name in seam.SENDER_METHODS:
            assert callable(getattr(RTCRtpSender, name, None)), f"RTCRtpSender.{name}"
        for name in seam.SENDER_ATTRIBUTES:
            assert name in vars(sender), f"RTCRtpSender lost {name}"
        for name in seam.DTLS_METHODS:
            assert callable(getattr(RTCDtlsTransport, name, None)), f"RTCDtlsTransport.{name}"
        connection = receiver.transport.transport.iceGatherer._connection
        for name in seam.ICE_ATTRIBUTES:
            assert hasattr(connection, name), f"aioice Connection lost {name}"
    finally:
        await pc.close()


def test_signatures_the_seam_wraps() -> None:
    params = inspect.signature(RTCRtpReceiver._handle_rtp_packet).parameters
    assert list(params) == ["self", "packet", "arrival_time_ms"]
    assert list(inspect.signature(RTCRtpSender._send_keyframe).parameters) == ["self"]
    assert list(inspect.signature(RTCRtpReceiver._send_rtcp_pli).parameters) == [
        "self",
        "media_ssrc",
    ]
    frame = JitterFrame(data=b"\x00", timestamp=1)
    assert (frame.data, frame.timestamp) == (b"\x00", 1)


def test_the_decoder_hand_off_is_where_the_seam_hooks_it() -> None:
    handle = inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
    assert "self.__decoder_queue.put((codec, encoded_frame))" in handle
    assert "self.__timestamp_mapper.map(" in handle
    assert "and self.__decoder_thread" in handle
    stop = inspect.getsource(RTCRtpReceiver._RTCRtpReceiver__stop_decoder)  # type: ignore[attr-defined]
    assert "self.__decoder_queue.put(None)" in stop
    assert "self.__decoder_thread.join()" in stop
    keyframe = inspect.getsource(RTCRtpSender._handle_rtcp_packet)
    assert "self._send_keyframe()" in keyframe


def test_receive_is_unchanged_since_the_seam_copied_it() -> None:
    source = inspect.getsource(RTCRtpReceiver.receive)
    digest = hashlib.sha256(source.encode()).hexdigest()
    assert digest == RECEIVE_SHA256, (
        "RTCRtpReceiver.receive changed: compare it with seam.divert_receiver's receive()"
    )


async def test_a_diverted_receiver_hands_frames_on_and_never_starts_a_decoder() -> None:
    frames: list[tuple[bytes, int]] = []
    pc = loopback_pc()
    try:
        receiver = pc.addTransceiver("video", direction="recvonly").receiver
        seam.divert_receiver(receiver, lambda d, t: frames.append((d, t)), lambda: None)
        assert seam.is_diverted(receiver)
        queue = receiver._RTCRtpReceiver__decoder_queue  # type: ignore[attr-defined]
        queue.put((None, JitterFrame(data=b"\x10", timestamp=123456)))
        mapper = receiver._RTCRtpReceiver__timestamp_mapper  # type: ignore[attr-defined]
        assert mapper.map(4_000_000_000) == 4_000_000_000
    finally:
        await pc.close()
    assert frames == [(b"\x10", 123456)]


def loopback_pc() -> RTCPeerConnection:
    return RTCPeerConnection(
        RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    )


def test_aioice_functions_the_seam_calls() -> None:
    from aioice import ice

    assert list(inspect.signature(ice.Connection.get_component_candidates).parameters) == [
        "self",
        "component",
        "addresses",
        "timeout",
    ]
    assert list(inspect.signature(ice.get_host_addresses).parameters) == ["use_ipv4", "use_ipv6"]
    assert list(inspect.signature(ice.server_reflexive_candidate).parameters) == [
        "protocol",
        "stun_server",
    ]
    assert list(inspect.signature(ice.StunProtocol).parameters) == ["receiver"]
