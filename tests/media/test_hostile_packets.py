"""A participant's media packets are hostile too: forged, oversized or malformed SRTP, RTP and
RTCP from a real peer's own socket (and its own SRTP keys) are refused before anything parses
past their end, and everyone's media keeps flowing."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest
from aiortc.rtp import RTCP_PSFB_APP, RTCP_RTPFB_NACK, RtcpPsfbPacket, RtcpRtpfbPacket

from server.ids import ParticipantId
from server.rooms.media import seam
from tests.media.pair import A, still_flowing
from tests.media.peers import ClientPeer, LoopbackRoom
from tests.waiting import wait_for

FOREIGN_SSRC = 0x0BADF00D  # hostile packets use their own SSRC: libsrtp keeps state per SSRC


class RawSender:
    """Writes datagrams from a client peer's own ICE socket to the server, protected with the
    client's own SRTP session when asked: what a modified browser could send."""

    def __init__(self, client: ClientPeer) -> None:
        dtls = client.pc.getTransceivers()[0].receiver.transport
        self._srtp = dtls._tx_srtp
        pair = dtls.transport._connection._nominated[1]
        self._socket, self._to = pair.protocol.transport, pair.remote_addr

    def raw(self, data: bytes) -> None:
        self._socket.sendto(data, self._to)

    def rtp(self, data: bytes) -> None:
        self.raw(self._srtp.protect(data))

    def rtcp(self, data: bytes) -> None:
        self.raw(self._srtp.protect_rtcp(data))


def rtp_header(seq: int, pt: int, *, first: int = 0x80, ssrc: int = FOREIGN_SSRC) -> bytes:
    return struct.pack("!BBHII", first, pt, seq, seq * 3000, ssrc)


def server_peer(room: LoopbackRoom, pid: ParticipantId) -> Any:
    return room.sfu._sessions[pid].peer  # type: ignore[attr-defined]


async def test_forged_and_oversized_srtp_is_refused(room: LoopbackRoom) -> None:
    sender, peer = RawSender(room.clients[A]), server_peer(room, A)
    refused = peer.transport.refused
    for n in range(200):
        sender.raw(b"\x80\x61" + struct.pack("!H", n) + bytes(200))  # no valid auth tag
    sender.raw(rtp_header(1, 97) + bytes(4000))  # larger than one MTU: not even unprotected
    await wait_for(lambda: peer.transport.refused >= refused + 201, 10, "the refusals")
    await still_flowing(room)


@pytest.mark.parametrize(
    ("packet", "what"),
    [
        (rtp_header(5, 55), "an unknown payload type"),
        (rtp_header(6, 97) + b"\x80", "a VP8 descriptor cut after its X bit"),
        (rtp_header(7, 97) + b"\x90\x80\xff", "a 15-bit picture id cut in half"),
        (
            rtp_header(8, 97, first=0x90) + b"\xbe\xde\x00\x01\x2f",
            "an extension element past its block",
        ),
        (rtp_header(9, 98) + b"\x00", "an RTX packet too short to name its original"),
        (rtp_header(10, 96, first=0x8F), "CSRCs announced but absent"),
    ],
)
async def test_malformed_rtp_is_dropped_and_changes_nothing(
    room: LoopbackRoom, packet: bytes, what: str
) -> None:
    sender, peer = RawSender(room.clients[A]), server_peer(room, A)
    video = peer.publications["video"]
    ssrc, source = video.ssrc, video.source
    before = (peer.refused_packets, video.malformed, peer.transport.refused)
    for _ in range(50):
        try:
            sender.rtp(packet)
        except Exception:  # libsrtp itself refuses to protect some of these: nothing sent
            return
    await wait_for(
        lambda: (peer.refused_packets, video.malformed, peer.transport.refused) != before,
        10,
        f"the server to drop {what}",
    )
    assert (video.ssrc, video.source) == (ssrc, source)  # not taken for a new source
    await still_flowing(room)


async def test_hostile_rtcp_is_bounded(room: LoopbackRoom) -> None:
    sender, peer = RawSender(room.clients[A]), server_peer(room, A)
    b_slot = next(slot for slot in peer._slots if slot.egress.kind == "video")
    refused = peer.transport.refused
    # An RTCP datagram far over one MTU (libsrtp would not even protect it): refused unread.
    sender.raw(b"\x81\xcd" + bytes(3000))
    # A NACK naming 5,440 packets in one MTU: at most MAX_NACKED_PER_FEEDBACK are looked up,
    # within the receiver's retransmission budget.
    many = RtcpRtpfbPacket(
        fmt=RTCP_RTPFB_NACK, ssrc=1, media_ssrc=b_slot.egress.ssrc, lost=list(range(5440))
    )
    sender.rtcp(bytes(many))
    # REMB with a garbage FCI, and truncated compound packets.
    sender.rtcp(
        bytes(RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=1, media_ssrc=0, fci=b"REMX\x00\x00\x00\x00"))
    )
    sender.rtcp(b"\x81\xcd\x00\x10" + bytes(8))
    await wait_for(lambda: peer.transport.refused > refused, 10, "the oversized NACK refused")
    await still_flowing(room)


async def test_a_packet_srtp_will_not_protect_is_lost_alone(room: LoopbackRoom) -> None:
    """libsrtp refuses to protect an index its replay window has passed: that packet is lost
    and counted, and nothing raises into the socket callback that was forwarding it."""
    peer = server_peer(room, A)
    egress = next(slot.egress for slot in peer._slots if slot.egress.kind == "video")
    await wait_for(lambda: egress.packets_sent > 0, 10, "video forwarded to A")
    # A stream of its own (the real ones untouched): its index moved 3,000 on, its first
    # number is then past the 1,024-packet window aiortc gives libsrtp. (Taken from a real
    # stream, a number behind the first one SRTP protected reads as the previous rollover's:
    # a new index, protected.)
    used = {slot.egress.ssrc for slot in peer._slots} | {
        slot.egress.rtx_ssrc for slot in peer._slots
    }
    probe_ssrc = next(ssrc for ssrc in range(1, 100) if ssrc not in used)

    def probe(seq: int) -> bytes:
        return struct.pack("!BBHII", 0x80, 97, seq, 0, probe_ssrc) + bytes(20)

    assert peer.transport.send_rtp(probe(100)) is True
    assert peer.transport.send_rtp(probe(3100)) is True  # ahead: protected
    unprotectable = peer.transport.unprotectable
    assert peer.transport.send_rtp(probe(100)) is False
    assert peer.transport.unprotectable == unprotectable + 1
    assert peer.summary().unprotectable_packets == unprotectable + 1
    await still_flowing(room)


async def test_a_failure_on_the_packet_path_stays_in_its_callback(room: LoopbackRoom) -> None:
    """A bug that raises while a datagram is handled (caused here: no packet causes one) loses
    that datagram and is logged once a second, not once a packet: left to the event loop, the
    tracebacks stalled the process until every connection in it failed."""
    peer = server_peer(room, A)
    loop_errors: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    previous_handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: loop_errors.append(context))
    forward, failures = peer.transport._on_rtp, seam._sink_failures.count

    def broken(packet: bytes, arrival: float) -> None:
        raise RuntimeError("a bug on the packet path")

    peer.transport._on_rtp = broken
    try:
        await wait_for(lambda: seam._sink_failures.count >= failures + 100, 10, "failures")
    finally:
        peer.transport._on_rtp = forward
        loop.set_exception_handler(previous_handler)
    assert loop_errors == []
    generation = room.sfu.generation(A)
    await still_flowing(room)
    assert room.sfu.generation(A) == generation  # no peer connection was restarted for it
