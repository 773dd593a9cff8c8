"""The aiortc/aioice internals `server/rooms/media/seam.py` relies on are still where it expects.

When this fails after an upgrade, read the named aiortc code again, adjust seam.py, and update
the pins (pyproject.toml and seam.AIORTC_CHECKED) together.
"""

from __future__ import annotations

import gc
import importlib.metadata
import inspect

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
)
from aiortc.rate import RateBucket
from aiortc.rtcdtlstransport import RTCDtlsTransport

from server.rooms.media import seam


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
        for name in seam.DTLS_ATTRIBUTES:
            assert name in vars(receiver.transport), f"RTCDtlsTransport lost {name}"
        for name in seam.PC_ATTRIBUTES:
            assert name in vars(pc), f"RTCPeerConnection lost {name}"
        connection = receiver.transport.transport.iceGatherer._connection
        for name in seam.ICE_ATTRIBUTES:
            assert hasattr(connection, name), f"aioice Connection lost {name}"
    finally:
        await pc.close()


def test_signatures_the_seam_wraps() -> None:
    assert list(inspect.signature(RTCRtpReceiver.receive).parameters) == ["self", "parameters"]
    assert list(inspect.signature(RTCRtpSender.send).parameters) == ["self", "parameters"]
    assert list(inspect.signature(RTCRtpSender._send_keyframe).parameters) == ["self"]
    assert list(inspect.signature(RTCDtlsTransport._handle_rtp_data).parameters) == [
        "self",
        "data",
        "arrival_time_ms",
    ]
    assert list(inspect.signature(RTCDtlsTransport._handle_rtcp_data).parameters) == [
        "self",
        "data",
    ]


def test_the_dtls_loop_hands_rtp_where_the_seam_takes_it() -> None:
    loop = inspect.getsource(RTCDtlsTransport._recv_next)
    assert "data = self._rx_srtp.unprotect(data)" in loop
    assert "await self._handle_rtp_data(data, arrival_time_ms=arrival_time_ms)" in loop
    assert "await self._handle_rtcp_data(data)" in loop
    receive = inspect.getsource(RTCRtpReceiver.stop)
    assert "if self.__started:" in receive  # a receiver that never started stops as a no-op
    send = inspect.getsource(RTCRtpSender.stop)
    assert "if self.__started:" in send


async def test_taken_receivers_and_senders_report_parameters_and_start_nothing() -> None:
    got: list[object] = []
    pc = loopback_pc()
    try:
        transceiver = pc.addTransceiver("video", direction="sendrecv")
        seam.take_receiver(transceiver.receiver, got.append)
        seam.take_sender(transceiver.sender, got.append)
        assert seam.is_taken(transceiver.receiver)
        assert seam.is_taken(transceiver.sender)
        await transceiver.receiver.receive("receive-parameters")  # type: ignore[arg-type]
        await transceiver.sender.send("send-parameters")  # type: ignore[arg-type]
        assert got == ["receive-parameters", "send-parameters"]
        assert not transceiver.receiver._RTCRtpReceiver__started  # type: ignore[attr-defined]
        assert seam.cname(pc)
    finally:
        await pc.close()


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


async def test_a_transceiver_the_sfu_adds_carries_no_bitrate_estimator() -> None:
    """aiortc's own video receiver makes a 1,000-bucket estimator; the SFU's makes none (the
    garbage collector would walk those buckets on every full collection)."""

    def buckets() -> int:
        gc.collect()
        return sum(1 for o in gc.get_objects() if isinstance(o, RateBucket))

    pc = loopback_pc()
    try:
        before = buckets()
        plain = pc.addTransceiver("video", direction="recvonly")
        assert buckets() - before >= 1000  # what the seam sheds is really there
        before = buckets()
        shed = [
            seam.add_transceiver(pc, "video", "recvonly"),
            seam.add_transceiver(pc, "video", "sendonly"),
            seam.add_transceiver(pc, "audio", "sendonly"),
        ]
        assert buckets() == before
        assert [t.direction for t in shed] == ["recvonly", "sendonly", "sendonly"]
        assert plain.receiver is not shed[0].receiver
    finally:
        await pc.close()
