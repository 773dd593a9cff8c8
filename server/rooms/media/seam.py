"""The one place the SFU reaches inside aiortc and aioice.

Checked against aiortc 1.16.0 and aioice 0.13.0; pyproject.toml pins aiortc>=1.16,<1.17 (which
pins aioice 0.13.x). `tests/media/test_seam.py` fails loudly when any name listed in
`RECEIVER_ATTRIBUTES`, `SENDER_ATTRIBUTES`, `DTLS_ATTRIBUTES` or `ICE_ATTRIBUTES` moves, so an
aiortc upgrade is a deliberate act: bump the pin, run that test, read the diff of the files
named below.

aiortc keeps what it does well (ICE, DTLS, SDP); the SFU takes the RTP path from it:

* `RTCDtlsTransport._handle_rtp_data` / `_handle_rtcp_data` (rtcdtlstransport.py) are where
  aiortc's DTLS loop hands unprotected RTP and RTCP to its router: `take_over_rtp` sends them
  to the SFU's `PeerTransport` instead, and `_rx_srtp` / `_tx_srtp` are the SRTP sessions it
  protects and unprotects with.
* aioice's `StunProtocol.datagram_received` parses every datagram as STUN and queues the rest
  for the DTLS loop (a task hop per packet). The SFU binds its host sockets itself (aioice
  always binds port 0, and never 127.0.0.1) with `MediaProtocol`, which hands SRTP datagrams
  straight to the `PeerTransport` from the socket callback once DTLS is up.
* `RTCRtpReceiver.receive` and `RTCRtpSender.send` are what the peer connection calls with the
  negotiated parameters (payload types, header extension ids, SSRCs) once DTLS is connected:
  `take_receiver` / `take_sender` hand those to the SFU and start none of aiortc's per-packet
  machinery (jitter buffer, decoder thread, encoder loop, RTCP loops).
* `RTCRtpSender._ssrc`, `_rtx_ssrc`, `_stream_id`, `_track_id` are what the offer announces for
  a send slot (msid and a=ssrc lines); `set_stream_id` / `new_track_id` set them.
* `RTCRtpSender._send_keyframe` is what a PLI/FIR calls on aiortc's own senders (the test
  clients use `intercept_keyframe_requests` to count them).
* aioice `Connection.get_component_candidates` receives the host addresses aioice found (never
  127.0.0.1); the SFU hands it the configured list instead, and binds within the UDP port range
  when one is set. `Connection._nominated` holds the pair media is sent on.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

from aioice import Candidate, stun
from aioice import ice as aioice_ice
from aioice.candidate import candidate_foundation, candidate_priority
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver

from server import logs

log = logs.get(__name__)

AIORTC_CHECKED: Final = ("1.16.",)
AIOICE_CHECKED: Final = ("0.13.",)

# Instance attributes of fresh aiortc objects the seam reads or replaces.
RECEIVER_ATTRIBUTES: Final = (
    "_RTCRtpReceiver__started",
    "_RTCRtpReceiver__remote_bitrate_estimator",
)
RECEIVER_METHODS: Final = ("receive", "stop")
SENDER_METHODS: Final = ("send", "stop", "_send_keyframe", "_handle_rtcp_packet", "replaceTrack")
SENDER_ATTRIBUTES: Final = ("_ssrc", "_rtx_ssrc", "_stream_id", "_track_id")
DTLS_METHODS: Final = ("_handle_rtp_data", "_handle_rtcp_data", "_recv_next")
DTLS_ATTRIBUTES: Final = ("_rx_srtp", "_tx_srtp")
PC_ATTRIBUTES: Final = ("_RTCPeerConnection__cname",)
ICE_ATTRIBUTES: Final = ("get_component_candidates", "stun_server", "_protocols", "_nominated")
_MARK: Final = "_triad_seam"
_SINK: Final = "_triad_rtp_sink"
RECEIVE_BUFFER_BYTES: Final = 4 * 1024 * 1024

ParametersCallback = Callable[[Any], None]
DatagramSink = Callable[[bytes], bool]


class _SinkFailures:
    """Failures of the packet path in socket callbacks: counted, logged at most once a second."""

    def __init__(self) -> None:
        self.count = 0
        self._logged_at = float("-inf")
        self._unlogged = 0

    def note(self, exc: Exception) -> None:
        self.count += 1
        self._unlogged += 1
        now = time.monotonic()
        if now - self._logged_at >= 1.0:
            log.error("media.packet_path_failed", failures=self._unlogged, **logs.failure(exc))
            self._logged_at = now
            self._unlogged = 0


_sink_failures = _SinkFailures()


class MediaProtocol(aioice_ice.StunProtocol):
    """aioice's socket protocol, with SRTP datagrams short-cut to the SFU once DTLS is up."""

    rtp_sink: DatagramSink | None = None

    def datagram_received(self, data: bytes | str, addr: tuple[Any, ...]) -> None:
        sink = self.rtp_sink
        # RFC 7983 demultiplexing: 128-191 is RTP/RTCP; STUN (0-3) and DTLS (20-63) go on.
        if sink is not None and isinstance(data, bytes) and len(data) >= 12 and 127 < data[0] < 192:
            try:
                if sink(data):
                    return
            except Exception as exc:  # a bug on the packet path, contained
                # Left to the event loop, each failing packet would log a traceback: hundreds
                # a second stall the loop until ICE consent and Socket.IO pings time out and
                # every connection in the process fails with the one that broke.
                _sink_failures.note(exc)
                return
        super().datagram_received(data, addr)


def route_datagrams(connection: Any, sink: DatagramSink | None) -> None:
    """Hand the SRTP datagrams of `connection`'s host sockets to `sink` (None: stop)."""
    setattr(connection, _SINK, sink)
    for protocol in connection._protocols:
        if isinstance(protocol, MediaProtocol):
            protocol.rtp_sink = sink


def take_over_rtp(
    dtls: Any,
    on_rtp: Callable[[bytes, int], Awaitable[None]],
    on_rtcp: Callable[[bytes], Awaitable[None]],
) -> None:
    """Unprotected RTP and RTCP from aiortc's DTLS loop go to the SFU, not aiortc's router."""
    setattr(dtls, "_handle_rtp_data", on_rtp)  # noqa: B010 - an instance attribute on purpose
    setattr(dtls, "_handle_rtcp_data", on_rtcp)  # noqa: B010


def take_receiver(receiver: RTCRtpReceiver, on_parameters: ParametersCallback) -> None:
    """The receiver reports its negotiated parameters and runs nothing of its own (no jitter
    buffer, no decoder thread, no RTCP loop: the SFU's PeerTransport does RTCP). Its `stop()`
    is then a no-op, as for a receiver that never started."""

    async def receive(parameters: Any) -> None:
        on_parameters(parameters)

    setattr(receiver, "receive", receive)  # noqa: B010 - an instance attribute on purpose
    setattr(receiver, _MARK, True)


def add_transceiver(pc: RTCPeerConnection, kind: str, direction: str) -> RTCRtpTransceiver:
    """`pc.addTransceiver` without the receive-side bandwidth estimator aiortc gives every
    video receiver (sending ones too): the SFU never feeds it (it takes the RTP path), and its
    window is 1,000 bucket objects. That was about 3,000 tracked objects a participant, which
    the garbage collector walks on every full collection: at 100 consults they were most of a
    1.3 M-object heap, and each full collection stopped the process for 100-500 ms (the notes
    channel's tail latency)."""
    transceiver = pc.addTransceiver(kind, direction=direction)
    setattr(transceiver.receiver, "_RTCRtpReceiver__remote_bitrate_estimator", None)  # noqa: B010
    return transceiver


def take_sender(sender: RTCRtpSender, on_parameters: ParametersCallback) -> None:
    """The sender reports its negotiated parameters and sends nothing itself (no encoder loop,
    no RTCP loop): the SFU writes its packets and sender reports."""

    async def send(parameters: Any) -> None:
        on_parameters(parameters)

    setattr(sender, "send", send)  # noqa: B010 - an instance attribute on purpose
    setattr(sender, _MARK, True)


def is_taken(obj: RTCRtpReceiver | RTCRtpSender) -> bool:
    """True when the receiver or sender hands its RTP path to the SFU."""
    return bool(getattr(obj, _MARK, False))


def intercept_keyframe_requests(sender: RTCRtpSender, on_request: Callable[[], None]) -> None:
    """Turn PLI/FIR received for this (aiortc-run) sender into `on_request()`."""
    setattr(sender, "_send_keyframe", on_request)  # noqa: B010


def set_stream_id(sender: RTCRtpSender, stream_id: str) -> None:
    """The msid stream id the next offer gives this sender's track (aiortc uses one per PC)."""
    sender._stream_id = stream_id


def cname(pc: RTCPeerConnection) -> str:
    """The CNAME aiortc announces for every SSRC of this peer connection (a=ssrc lines); the
    SFU's sender reports name the same."""
    return str(getattr(pc, "_RTCPeerConnection__cname"))  # noqa: B009


def new_track_id(sender: RTCRtpSender) -> None:
    """A new msid track id for the next offer: the slot carries a different track now."""
    sender._track_id = str(uuid.uuid4())


def restrict_host_candidates(
    pc: RTCPeerConnection,
    addresses: Sequence[str],
    port_range: tuple[int, int] | None = None,
) -> None:
    """Make the PC's ICE gatherers advertise exactly `addresses` as host candidates (empty:
    every interface aioice would pick), bound within `port_range` when given, on sockets whose
    protocol is `MediaProtocol`.

    Call after the PC has its transports (after `addTransceiver` or `setRemoteDescription`)
    and before `setLocalDescription`, which gathers. Idempotent.
    """
    chosen = tuple(addresses)
    for transceiver in pc.getTransceivers():
        connection = transceiver.receiver.transport.transport.iceGatherer._connection
        if getattr(connection, _MARK, False):
            continue
        setattr(  # noqa: B010 - an instance attribute on purpose
            connection,
            "get_component_candidates",
            _host_candidates(connection, connection.get_component_candidates, chosen, port_range),
        )
        setattr(connection, _MARK, True)


def _host_candidates(
    connection: Any,
    original: Callable[..., Awaitable[list[Candidate]]],
    chosen: tuple[str, ...],
    port_range: tuple[int, int] | None,
) -> Callable[..., Awaitable[list[Candidate]]]:
    async def get_component_candidates(
        component: int,
        addresses: list[str],
        timeout: int = 5,  # noqa: ASYNC109 - aioice's signature
    ) -> list[Candidate]:
        # No configured addresses: the interfaces aioice would pick.
        hosts = list(chosen) or aioice_ice.get_host_addresses(use_ipv4=True, use_ipv6=True)
        return await _gather(connection, original, component, hosts, port_range, timeout)

    return get_component_candidates


async def _gather(
    connection: Any,
    original: Callable[..., Awaitable[list[Candidate]]],
    component: int,
    addresses: list[str],
    port_range: tuple[int, int] | None,
    timeout: int,  # noqa: ASYNC109 - aioice's per-step timeout
) -> list[Candidate]:
    """aioice's host-candidate step on `MediaProtocol` sockets (within the port range when one
    is set), then its STUN/TURN steps.

    Receive buffers: aioice asks for 256 KiB; a keyframe burst fanned out while the loop is
    busy overflows that and the kernel drops datagrams (measured in bench/sfu.py). The kernel
    caps the 4 MiB asked for here at net.core.rmem_max."""
    loop = asyncio.get_running_loop()
    candidates: list[Candidate] = []

    def protocol_factory() -> MediaProtocol:
        protocol = MediaProtocol(connection)
        protocol.rtp_sink = getattr(connection, _SINK, None)
        return protocol

    for address in addresses:
        if port_range is None:
            ports = [0]
        else:
            ports = list(range(port_range[0], port_range[1] + 1))
            random.shuffle(ports)  # spreads rooms over the range; not a secret
        for port in ports:
            try:
                transport, protocol = await loop.create_datagram_endpoint(
                    protocol_factory, local_addr=(address, port)
                )
            except OSError:
                continue
            break
        else:
            if port_range is None:
                continue  # an address that cannot be bound (aioice skips those too)
            raise OSError(f"no free UDP port in {port_range[0]}-{port_range[1]} on {address}")
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
        host, bound_port = transport.get_extra_info("sockname")[:2]
        protocol.local_candidate = Candidate(
            foundation=candidate_foundation("host", "udp", host),
            component=component,
            transport="udp",
            priority=candidate_priority(component, "host"),
            host=host,
            port=bound_port,
            type="host",
        )
        connection._protocols.append(protocol)
        candidates.append(protocol.local_candidate)
        if connection.stun_server and ":" not in host:
            try:
                reflexive, _ = await asyncio.wait_for(
                    aioice_ice.server_reflexive_candidate(protocol, connection.stun_server),
                    timeout,
                )
                candidates.append(reflexive)
            except (OSError, TimeoutError, stun.TransactionError):
                pass
    # Relayed candidates: aioice's own step, with no host addresses to bind.
    candidates += await original(component=component, addresses=[], timeout=timeout)
    return candidates
