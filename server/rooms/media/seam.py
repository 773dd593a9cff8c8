"""The one place the SFU reaches inside aiortc and aioice.

Checked against aiortc 1.16.0 and aioice 0.13.0; pyproject.toml pins aiortc>=1.16,<1.17 (which
pins aioice 0.13.x). `tests/media/test_seam.py` fails loudly when any name listed in
`RECEIVER_ATTRIBUTES`, `SENDER_ATTRIBUTES` or `ICE_ATTRIBUTES` moves, so an aiortc upgrade is a
deliberate act: bump the pin, run that test, read the diff of the files named below.

What is bent, and why:

* `RTCRtpReceiver` (rtcrtpreceiver.py) assembles encoded frames (JitterFrame) and puts
  `(codec, frame)` on `__decoder_queue` for a decoder thread that `receive()` starts. A diverted
  receiver gets a stand-in that is both that queue and that thread: frames go to the SFU's
  fan-out, no thread starts and no decoder is ever created. Its `__timestamp_mapper` (which
  rebases RTP timestamps to zero) becomes the identity so forwarded frames keep the publisher's
  own RTP timestamps.
* `RTCRtpReceiver.__remote_bitrate_estimator` (REMB toward the publisher) can be switched off.
* `RTCRtpReceiver._handle_rtp_packet` is wrapped for audio to read the RFC 6464 audio level the
  publisher put in each packet, before the jitter buffer drops header extensions.
* `RTCRtpSender._send_keyframe` is what a subscriber's PLI/FIR calls; on a forwarding sender it
  becomes the SFU's rate-limited PLI toward the publisher instead of a flag for an encoder the
  sender never has.
* `RTCRtpReceiver._send_rtcp_pli` sends that PLI.
* `RTCRtpSender._stream_id` (one per PC in aiortc) is set per publisher, so a subscriber sees
  each publisher's audio and video in one MediaStream: the group browsers lip-sync.
* aioice `Connection.get_component_candidates` receives the host addresses aioice found (never
  127.0.0.1); the SFU hands it the configured list instead, and binds within the UDP port range
  when one is set (aioice always binds port 0).
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

from aioice import Candidate, stun
from aioice import ice as aioice_ice
from aioice.candidate import candidate_foundation, candidate_priority
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.rtcrtpparameters import RTCRtpReceiveParameters

AIORTC_CHECKED: Final = ("1.16.",)
AIOICE_CHECKED: Final = ("0.13.",)

_R = "_RTCRtpReceiver__"
# Instance attributes of a fresh RTCRtpReceiver the seam reads or replaces.
RECEIVER_ATTRIBUTES: Final = (
    f"{_R}decoder_queue",
    f"{_R}decoder_thread",
    f"{_R}timestamp_mapper",
    f"{_R}codecs",
    f"{_R}rtx_ssrc",
    f"{_R}transport",
    f"{_R}rtcp_task",
    f"{_R}started",
    f"{_R}remote_bitrate_estimator",
)
# Methods the seam calls or wraps, by class.
RECEIVER_METHODS: Final = ("receive", "_handle_rtp_packet", "_run_rtcp", "_send_rtcp_pli")
SENDER_METHODS: Final = ("_send_keyframe", "_handle_rtcp_packet")
SENDER_ATTRIBUTES: Final = ("_ssrc", "_stream_id")
DTLS_METHODS: Final = ("_register_rtp_receiver",)
ICE_ATTRIBUTES: Final = ("get_component_candidates", "stun_server", "_protocols")
_MARK: Final = "_triad_seam"
RECEIVE_BUFFER_BYTES: Final = 4 * 1024 * 1024

FrameCallback = Callable[[bytes, int], None]
LevelCallback = Callable[[int], None]


class _DecoderStandIn:
    """Sits where aiortc keeps the decoder queue and the decoder thread.

    aiortc calls `put((codec, JitterFrame))` per assembled frame, `put(None)` then `join()` when
    the receiver stops, and only tests the thread for truth.
    """

    def __init__(self, on_frame: FrameCallback, on_stop: Callable[[], None]) -> None:
        self._on_frame = on_frame
        self._on_stop = on_stop

    def put(self, item: tuple[Any, Any] | None) -> None:
        if item is None:
            self._on_stop()
            return
        frame = item[1]
        self._on_frame(frame.data, frame.timestamp)

    def join(self, timeout: float | None = None) -> None:
        """No thread to wait for."""

    def __bool__(self) -> bool:
        return True


class _SameTimestamp:
    """Replaces aiortc's TimestampMapper: keep the publisher's RTP timestamp as it came."""

    def map(self, timestamp: int) -> int:
        return timestamp


def divert_receiver(
    receiver: RTCRtpReceiver,
    on_frame: FrameCallback,
    on_stop: Callable[[], None],
    on_audio_level: LevelCallback | None = None,
    estimate_bandwidth: bool = True,
) -> None:
    """Send the receiver's encoded frames to `on_frame(data, rtp_timestamp)`, never decode.

    Call before the receiver starts (right after `addTransceiver`). Without
    `estimate_bandwidth` the receiver sends no REMB (its estimator costs ~9% of the SFU's CPU
    per packet); publishers then adapt from loss in receiver reports only.
    """
    stand_in = _DecoderStandIn(on_frame, on_stop)
    if not estimate_bandwidth:
        setattr(receiver, f"{_R}remote_bitrate_estimator", None)
    setattr(receiver, f"{_R}decoder_queue", stand_in)
    setattr(receiver, f"{_R}timestamp_mapper", _SameTimestamp())

    async def receive(parameters: RTCRtpReceiveParameters) -> None:
        # RTCRtpReceiver.receive minus the decoder thread (aiortc 1.16 rtcrtpreceiver.py).
        if getattr(receiver, f"{_R}started"):
            return
        codecs = getattr(receiver, f"{_R}codecs")
        for codec in parameters.codecs:
            codecs[codec.payloadType] = codec
        rtx_ssrc = getattr(receiver, f"{_R}rtx_ssrc")
        for encoding in parameters.encodings:
            if encoding.rtx:
                rtx_ssrc[encoding.rtx.ssrc] = encoding.ssrc
        setattr(receiver, f"{_R}decoder_thread", stand_in)
        getattr(receiver, f"{_R}transport")._register_rtp_receiver(receiver, parameters)
        setattr(receiver, f"{_R}rtcp_task", asyncio.ensure_future(receiver._run_rtcp()))
        setattr(receiver, f"{_R}started", True)

    setattr(receiver, "receive", receive)  # noqa: B010 - an instance attribute on purpose
    if on_audio_level is not None:
        handle = receiver._handle_rtp_packet

        async def handle_with_level(packet: Any, arrival_time_ms: int) -> None:
            level = packet.extensions.audio_level
            if level is not None:
                on_audio_level(level[1])
            await handle(packet, arrival_time_ms=arrival_time_ms)

        setattr(receiver, "_handle_rtp_packet", handle_with_level)  # noqa: B010
    setattr(receiver, _MARK, stand_in)


def is_diverted(receiver: RTCRtpReceiver) -> bool:
    """True when the receiver hands encoded frames on and has no decoder thread."""
    stand_in = getattr(receiver, _MARK, None)
    return stand_in is not None and getattr(receiver, f"{_R}decoder_thread") in (stand_in, None)


def intercept_keyframe_requests(sender: RTCRtpSender, on_request: Callable[[], None]) -> None:
    """Turn PLI/FIR received for this sender into `on_request()`."""
    setattr(sender, "_send_keyframe", on_request)  # noqa: B010


def set_stream_id(sender: RTCRtpSender, stream_id: str) -> None:
    """The msid stream id the next offer gives this sender's track (aiortc uses one per PC)."""
    sender._stream_id = stream_id


async def send_pli(receiver: RTCRtpReceiver) -> bool:
    """Ask the publisher behind `receiver` for a keyframe; False when it has sent nothing yet."""
    sources = receiver.getSynchronizationSources()
    if not sources:
        return False
    newest = max(sources, key=lambda source: source.timestamp)
    await receiver._send_rtcp_pli(newest.source)
    return True


def restrict_host_candidates(
    pc: RTCPeerConnection,
    addresses: Sequence[str],
    port_range: tuple[int, int] | None = None,
) -> None:
    """Make the PC's ICE gatherers advertise exactly `addresses` as host candidates.

    Call after the PC has its transports (after `addTransceiver` or `setRemoteDescription`)
    and before `setLocalDescription`, which gathers. Idempotent.
    """
    if not addresses and port_range is None:
        return  # aioice's own choice: every interface but loopback, any port
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
        # No configured addresses (only a port range): the interfaces aioice would pick.
        hosts = list(chosen) or aioice_ice.get_host_addresses(use_ipv4=True, use_ipv6=True)
        if port_range is None:
            found = await original(component=component, addresses=hosts, timeout=timeout)
        else:
            found = await _gather_in_range(
                connection, original, component, hosts, port_range, timeout
            )
        _enlarge_receive_buffers(connection)
        return found

    return get_component_candidates


def _enlarge_receive_buffers(connection: Any) -> None:
    """aioice asks for 256 KiB; a keyframe burst fanned out while the loop is busy overflows
    that and the kernel drops datagrams (measured in bench/sfu.py). The kernel caps the
    request at net.core.rmem_max."""
    for protocol in connection._protocols:
        transport = getattr(protocol, "transport", None)
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)


async def _gather_in_range(
    connection: Any,
    original: Callable[..., Awaitable[list[Candidate]]],
    component: int,
    addresses: list[str],
    port_range: tuple[int, int],
    timeout: int,  # noqa: ASYNC109 - aioice's per-step timeout
) -> list[Candidate]:
    """aioice's host-candidate step with a bounded port, then its STUN/TURN steps."""
    loop = asyncio.get_running_loop()
    candidates: list[Candidate] = []
    low, high = port_range
    for address in addresses:
        ports = list(range(low, high + 1))
        random.shuffle(ports)  # spreads rooms over the range; not a secret
        for port in ports:
            try:
                transport, protocol = await loop.create_datagram_endpoint(
                    lambda: aioice_ice.StunProtocol(connection), local_addr=(address, port)
                )
            except OSError:
                continue
            break
        else:
            raise OSError(f"no free UDP port in {low}-{high} on {address}")
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
