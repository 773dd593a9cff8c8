"""One peer connection's SRTP path, under aiortc: datagrams in, datagrams out, no RTP objects.

aiortc keeps ICE, DTLS and the SRTP keys. Once DTLS is up, every SRTP datagram that reaches one
of the connection's host sockets is unprotected here in the socket's own callback (no queue
hop, no `RtpPacket`) and handed to `on_rtp` as plaintext bytes; SRTCP, unprotected there too,
goes to `on_rtcp` as aiortc's parsed RTCP packets (tens a second, so the object model is
fine). Sending protects with the connection's outbound SRTP session and writes straight to the
nominated ICE pair's socket.

`seam.MediaProtocol` is the socket side; `seam.take_over_rtp` the DTLS side (datagrams that
arrive some other way, e.g. through a TURN relay, still reach `on_rtp` through aiortc's own
DTLS loop).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, SupportsBytes

import pylibsrtp
from aiortc.rtp import AnyRtcpPacket, RtcpPacket

from server import logs

from . import seam

log = logs.get(__name__)

# A browser's RTP and RTCP datagrams fit one MTU; anything bigger is refused before a parser.
MAX_DATAGRAM: Final = 1500
RtpHandler = Callable[[bytes, float], None]
RtcpHandler = Callable[[Sequence[AnyRtcpPacket], float], None]


class PeerTransport:
    """The media path of one RTCPeerConnection (bundled: one DTLS transport)."""

    def __init__(self, dtls: Any, on_rtp: RtpHandler, on_rtcp: RtcpHandler) -> None:
        self._dtls = dtls
        self._connection = dtls.transport._connection  # the aioice Connection
        self._on_rtp = on_rtp
        self._on_rtcp = on_rtcp
        self._rx: pylibsrtp.Session | None = None
        self._tx: pylibsrtp.Session | None = None
        self.bytes_sent = 0
        self.bytes_received = 0
        self.refused = 0  # failed SRTP authentication, oversized or malformed datagrams
        self.unprotectable = 0  # outbound packets the SRTP session refused to protect
        self.closed = False
        # SRTP keys and a nominated pair: packets can be sent. A flag, not a property: the
        # packet path reads it for every packet it forwards.
        self.ready = False
        # The nominated pair's route (`_route`).
        self._route_pair: Any = None
        self._route_protocol: Any = None
        self._route_transport: Any = None
        self._route_address: tuple[str, int] = ("", 0)
        # The candidate types of the last nominated pair (ours, theirs): "relay" on their side
        # means the participant reaches us through a TURN server. Kept after close for the log.
        self.route: tuple[str, str] = ("none", "none")
        seam.take_over_rtp(dtls, self._from_dtls_rtp, self._from_dtls_rtcp)
        seam.route_datagrams(self._connection, self._from_socket)

    def poll(self) -> bool:
        """Take the SRTP keys if DTLS has them by now; `ready`, refreshed. Polled once per RTCP
        round (media that arrives only through aiortc's DTLS loop, a relayed pair, never
        reaches `_from_socket`, which takes the keys otherwise) and by the egress for each
        packet while not ready (two attribute lookups), so a joiner's first keyframe is not
        dropped waiting for the round."""
        self.ready = self._keys() and self._pair() is not None
        return self.ready

    def _keys(self) -> bool:
        if self._tx is None:
            rx, tx = self._dtls._rx_srtp, self._dtls._tx_srtp
            if rx is None or tx is None or self.closed:
                return False
            self._rx, self._tx = rx, tx
            self.ready = self._pair() is not None
        return True

    def _pair(self) -> Any:
        return self._connection._nominated.get(1)

    # Inbound -----------------------------------------------------------------------------

    def _from_socket(self, data: bytes) -> bool:
        """An SRTP datagram from the socket callback; False hands it back to aioice."""
        rx = self._rx
        if rx is None:
            if self.closed or not self._keys():
                return False  # DTLS not done: aiortc drops it as it always did
            rx = self._rx
            assert rx is not None
        if len(data) > MAX_DATAGRAM:
            self.refused += 1
            return True
        if 191 < data[1] < 224:  # RTCP packet types 192-223 (RFC 5761 4)
            # Here too, not through aiortc's DTLS loop: that is a queue and a task switch for
            # each of the tens of compounds a second every peer sends.
            try:
                plain = rx.unprotect_rtcp(data)
            except pylibsrtp.Error:
                self.refused += 1
                return True
            self.bytes_received += len(data)
            self._rtcp(plain)
            return True
        try:
            plain = rx.unprotect(data)
        except pylibsrtp.Error:
            self.refused += 1
            return True
        self.bytes_received += len(data)
        self._on_rtp(plain, time.monotonic())
        return True

    async def _from_dtls_rtp(self, data: bytes, arrival_time_ms: int) -> None:
        if len(data) > MAX_DATAGRAM:
            self.refused += 1
            return
        self._on_rtp(data, time.monotonic())

    async def _from_dtls_rtcp(self, data: bytes) -> None:
        if len(data) > MAX_DATAGRAM:
            self.refused += 1
            return
        self._rtcp(data)

    def _rtcp(self, plain: bytes) -> None:
        try:
            packets = RtcpPacket.parse(plain)
        except (ValueError, IndexError, KeyError):
            self.refused += 1
            return
        self._on_rtcp(packets, time.monotonic())

    # Outbound ----------------------------------------------------------------------------

    def send_rtp(self, plain: bytes) -> bool:
        """Protect and send one RTP packet now; False when the transport is not up."""
        tx = self._tx
        if tx is None:
            if not self._keys():
                return False
            tx = self._tx
            assert tx is not None
        try:
            data = tx.protect(plain)
        except pylibsrtp.Error:
            # The session refused it (an index its replay window has passed): this one packet
            # is lost, never the socket callback that is forwarding it.
            self.unprotectable += 1
            return False
        return self._send(data)

    def send_rtcp(self, packets: Sequence[SupportsBytes]) -> bool:
        """Protect and send one compound RTCP packet."""
        if self.closed or not self._keys() or not packets:
            return False
        assert self._tx is not None
        payload = b"".join(bytes(packet) for packet in packets)
        try:
            data = self._tx.protect_rtcp(payload)
        except pylibsrtp.Error:
            self.unprotectable += 1
            return False
        return self._send(data)

    def _send(self, data: bytes) -> bool:
        pair = self._connection._nominated.get(1)
        if pair is None:
            self.ready = False
            return False
        self.ready = True
        if pair is not self._route_pair:
            self._route(pair)
        transport = self._route_transport
        if transport is not None and self._route_protocol.transport is transport:
            transport.sendto(data, self._route_address)
        else:  # a relayed (TURN) pair: aioice's own, asynchronous, send
            task = asyncio.ensure_future(pair.protocol.send_data(data, pair.remote_addr))
            task.add_done_callback(_ignore_result)
        self.bytes_sent += len(data)
        return True

    def _route(self, pair: Any) -> None:
        """Where packets go on a newly nominated pair, looked up once per pair rather than per
        packet: the host socket's transport (None: a relayed pair) and the remote address."""
        protocol = pair.protocol
        transport = getattr(protocol, "transport", None)
        self._route_pair = pair
        self._route_protocol = protocol
        self._route_transport = transport if isinstance(protocol, seam.MediaProtocol) else None
        self._route_address = pair.remote_addr
        self.route = (str(pair.local_candidate.type), str(pair.remote_candidate.type))

    def close(self) -> None:
        self.closed = True
        self.ready = False
        self._rx = self._tx = None
        self._route_pair = self._route_protocol = self._route_transport = None
        seam.route_datagrams(self._connection, None)


def _ignore_result(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("media.relayed_send_failed", error=type(task.exception()).__name__)
