"""A light load generator for `bench/sfu.py --light`: participants that cost a fraction of an
aiortc client, so one process can play the clients of many more rooms and the server, not the
load generator, runs out first.

aiortc still does ICE, DTLS and SDP (through the same `SioSignaling` as every bench client).
Once DTLS is up the media goes through the SFU's own `PeerTransport` on the client side too:

* sending: the pre-encoded VP8 loop packetised once per process (a VP8 payload descriptor with
  a 15-bit picture id, at most 1,100 bytes a packet, the marker on a frame's last packet, the
  next frame every 1/30 s, a keyframe on PLI) and the Opus loop every 20 ms with an audio level
  extension, as a browser sends them; NACKed packets are resent from a short history;
* receiving: each remote stream's packets counted as frames by sequence number (a video frame
  counts when every packet up to its marker arrived), read from the SRTP datagram's header,
  which SRTP leaves in the clear: no decryption (nor authentication), no jitter buffer, no
  decoding;
* RTCP as often as aiortc clients send it to the server (about 30 compounds a second per
  room, measured): a sender report for each stream sent and a receiver report with REMB for
  each stream received, each every 0.3-0.9 s.

It does not decode: `bench/sfu.py` without `--light` shows the forwarded frames decode.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCSessionDescription
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
    pack_remb_fci,
)
from sfu_peers import HOST, BenchClient, SentPackets, track_map

from server.rooms.media import rtp, seam
from server.rooms.media.ntp import NTP_EPOCH_OFFSET
from server.rooms.media.transport import PeerTransport

FPS = 30
MAX_PAYLOAD = 1100
HISTORY = 512
HEADER = struct.Struct("!BH4xI")  # from byte 1: marker and payload type, sequence, SSRC
AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
REMB_BPS = 10_000_000  # what a clean loopback link reports: never the bottleneck


def packetise_vp8(frames: list[bytes]) -> list[list[bytes]]:
    """Each frame's VP8 partitions (payloads without descriptor), at most MAX_PAYLOAD each."""
    return [
        [frame[at : at + MAX_PAYLOAD] for at in range(0, len(frame), MAX_PAYLOAD)] or [b""]
        for frame in frames
    ]


@dataclass
class Sending:
    """One stream this participant sends."""

    payload_type: int
    ssrc: int
    level_id: int = 0
    seq: int = field(default_factory=lambda: random.getrandbits(16))
    ts_base: int = field(default_factory=lambda: random.getrandbits(32))
    packets: int = 0
    octets: int = 0
    last_ts: int = 0


@dataclass
class Receiving:
    """One remote stream: frames counted, and what its receiver report needs."""

    who: str
    kind: str
    base: int = -1
    highest: int = -1  # extended
    received: int = 0
    frame_whole: bool = True
    expected_prior: int = 0
    received_prior: int = 0


class LightClient(BenchClient):
    """A `BenchClient` whose media bypasses aiortc's RTP machinery on both sides."""

    def _new_connection(self) -> None:
        super()._new_connection()
        self._transport: PeerTransport | None = None
        self._sending: dict[str, Sending] = {}
        self._receiving: dict[int, Receiving] = {}
        self._history: list[bytes | None] = [None] * HISTORY
        self._video_frames = 0
        self._frame_at = 0
        # Per remote SSRC: the middle 32 bits of its last sender report's NTP time, and when it
        # came (a receiver report's LSR and DLSR: the server's round trip, and its probes'
        # verdicts, are read from them).
        self._last_sr: dict[int, tuple[int, float]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        pc = self.pc

        @pc.on("connectionstatechange")
        def connected() -> None:
            if pc.connectionState == "connected" and self._transport is None:
                self._start()

    @property
    def video_sent(self) -> int:
        return self._sent_before + self._video_frames

    async def renew(self) -> None:
        self._sent_before += self._video_frames
        await self._stop()
        await self.pc.close()
        self._new_connection()

    async def apply_offer(self, sdp: str, tracks: list[Any]) -> str:
        self.tracks = track_map(tracks)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        seam.restrict_host_candidates(self.pc, (HOST,))
        for transceiver in self.pc.getTransceivers():
            who, kind = self.tracks.get(transceiver.mid or "", ("", ""))
            if who == self.pid:
                transceiver.direction = "sendonly"
                sender = transceiver.sender
                if not seam.is_taken(sender):
                    seam.take_sender(sender, lambda p, k=kind, s=sender: self._negotiated(k, s, p))
            else:
                transceiver.direction = "recvonly"
                if not seam.is_taken(transceiver.receiver):
                    seam.take_receiver(transceiver.receiver, lambda _parameters: None)
        for ssrc, mid in announced_ssrcs(sdp):
            if mid in self.tracks and ssrc not in self._receiving:
                self._receiving[ssrc] = Receiving(*self.tracks[mid])
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return str(self.pc.localDescription.sdp)

    def _negotiated(self, kind: str, sender: Any, parameters: Any) -> None:
        level_id = next((e.id for e in parameters.headerExtensions if e.uri == AUDIO_LEVEL_URI), 0)
        if kind not in self._sending:  # every renegotiation reports them again
            self._sending[kind] = Sending(
                parameters.codecs[0].payloadType, sender._ssrc, level_id if kind == "audio" else 0
            )

    def _start(self) -> None:
        dtls = self.pc.getTransceivers()[0].sender.transport
        self._transport = PeerTransport(dtls, self._on_rtp, self._on_rtcp)
        # Media straight from the socket, still encrypted (RTCP goes on to aiortc's DTLS loop,
        # which unprotects it for `_on_rtcp`).
        seam.route_datagrams(dtls.transport._connection, self._from_socket)
        self._tasks = [
            asyncio.ensure_future(self._send_video()),
            asyncio.ensure_future(self._send_audio()),
            asyncio.ensure_future(self._send_reports()),
        ]

    async def _stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._transport is not None:
            self._transport.close()

    async def close(self) -> None:
        await self._stop()
        await super().close()

    # Sending -------------------------------------------------------------------------------

    def _up(self) -> bool:
        transport = self._transport
        return transport is not None and (transport.ready or transport.poll())

    def _send(self, stream: Sending, packet: bytes) -> None:
        assert self._transport is not None
        if self._transport.send_rtp(packet):
            SentPackets.rtp += 1
            stream.packets += 1
            stream.octets += len(packet) - 12

    async def _send_video(self) -> None:
        frames = light_video(self._media["video"])
        started = time.monotonic()
        while True:
            stream = self._sending.get("video")
            if stream is not None and self._up():
                chunks = frames[self._frame_at]
                picture_id = self._video_frames & 0x7FFF
                stream.last_ts = (stream.ts_base + self._video_frames * 3000) & 0xFFFFFFFF
                for n, chunk in enumerate(chunks):
                    last = n == len(chunks) - 1
                    header = struct.pack(
                        "!BBHII",
                        0x80,
                        stream.payload_type | (0x80 if last else 0),
                        stream.seq,
                        stream.last_ts,
                        stream.ssrc,
                    )
                    descriptor = bytes((0x90 if n == 0 else 0x80, 0x80)) + struct.pack(
                        "!H", 0x8000 | picture_id
                    )
                    packet = header + descriptor + chunk
                    self._history[stream.seq % HISTORY] = packet
                    self._send(stream, packet)
                    stream.seq = (stream.seq + 1) & 0xFFFF
                self._video_frames += 1
                self._frame_at = (self._frame_at + 1) % len(frames)
            await asyncio.sleep(
                max(0.0, started + (self._video_frames + 1) / FPS - time.monotonic())
            )

    async def _send_audio(self) -> None:
        frames = self._media["audio"]
        sent = 0
        started = time.monotonic()
        while True:
            stream = self._sending.get("audio")
            if stream is not None and self._up():
                stream.last_ts = (stream.ts_base + sent * 960) & 0xFFFFFFFF
                extension = b""
                first = 0x80
                if stream.level_id:
                    extension = rtp.one_byte_extension_block([(stream.level_id, b"\x9e")])
                    first = 0x90
                header = struct.pack(
                    "!BBHII", first, stream.payload_type, stream.seq, stream.last_ts, stream.ssrc
                )
                self._send(stream, header + extension + frames[sent % len(frames)])
                stream.seq = (stream.seq + 1) & 0xFFFF
            sent += 1
            await asyncio.sleep(max(0.0, started + sent / 50 - time.monotonic()))

    # Receiving -----------------------------------------------------------------------------

    def _from_socket(self, data: bytes) -> bool:
        if 191 < data[1] < 224:
            return False  # RTCP: aiortc's DTLS loop unprotects it
        self._count(data)
        return True

    def _on_rtp(self, packet: bytes, arrival: float) -> None:
        self._count(packet)  # what reaches aiortc's DTLS loop before the socket route is set

    def _count(self, packet: bytes) -> None:
        marker_pt, seq, ssrc = HEADER.unpack_from(packet, 1)
        stream = self._receiving.get(ssrc)
        if stream is None:
            return  # an RTX stream (retransmissions, probe padding)
        if stream.highest < 0:
            stream.base = stream.highest = seq
            # Counted from the next frame on (which of this one's packets came is unknown).
            stream.frame_whole = stream.kind == "audio"
        else:
            delta = (seq - stream.highest) & 0xFFFF
            if delta == 0 or delta >= 0x8000:
                return  # a duplicate or a late one: its frame was counted short already
            if delta > 1:
                stream.frame_whole = False
            stream.highest += delta
        stream.received += 1
        if stream.kind == "audio":
            self.frames[(stream.who, "audio")] += 1
        elif marker_pt & 0x80:
            if stream.frame_whole:
                self.frames[(stream.who, "video")] += 1
            stream.frame_whole = True

    def _on_rtcp(self, packets: Sequence[AnyRtcpPacket], arrival: float) -> None:
        video = self._sending.get("video")
        for packet in packets:
            if isinstance(packet, RtcpSrPacket):
                middle = (packet.sender_info.ntp_timestamp >> 16) & 0xFFFFFFFF
                self._last_sr[packet.ssrc] = (middle, arrival)
            elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_PLI:
                if video is not None and packet.media_ssrc == video.ssrc:
                    self._frame_at = 0  # the loop starts with a keyframe
            elif isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
                if video is None or packet.media_ssrc != video.ssrc:
                    continue
                for seq in packet.lost:
                    original = self._history[seq % HISTORY]
                    if original is not None and struct.unpack_from("!H", original, 2)[0] == seq:
                        self._send(video, original)

    async def _send_reports(self) -> None:
        """As aiortc's senders and receivers each run an RTCP loop: one compound per stream
        (here one pass over all of them at a random 0.3-0.9 s interval, which matches the rate
        the server receives from aiortc clients, their NACKs and PLIs included)."""
        while True:
            await asyncio.sleep(random.uniform(0.3, 0.9))
            if self._transport is None or not self._up():
                continue
            with contextlib.suppress(Exception):
                for packets in self._reports():
                    if self._transport.send_rtcp(packets):
                        SentPackets.rtcp += 1

    def _reports(self) -> list[list[Any]]:
        compounds: list[list[Any]] = []
        ntp = int((time.time() + NTP_EPOCH_OFFSET) * (1 << 32))
        for stream in self._sending.values():
            info = RtcpSenderInfo(
                ntp_timestamp=ntp,
                rtp_timestamp=stream.last_ts,
                packet_count=stream.packets,
                octet_count=stream.octets,
            )
            compounds.append([RtcpSrPacket(ssrc=stream.ssrc, sender_info=info)])
        reporter = next(iter(self._sending.values()), None)
        reporter_ssrc = reporter.ssrc if reporter is not None else 1
        for ssrc, stream in self._receiving.items():
            if stream.highest < 0:
                continue
            block = self._report_block(ssrc, stream, self._last_sr.get(ssrc))
            compound: list[Any] = [RtcpRrPacket(ssrc=reporter_ssrc, reports=[block])]
            if stream.kind == "video":
                remb = pack_remb_fci(REMB_BPS, [ssrc])
                compound.append(
                    RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=reporter_ssrc, media_ssrc=0, fci=remb)
                )
            compounds.append(compound)
        return compounds

    @staticmethod
    def _report_block(
        ssrc: int, stream: Receiving, last_sr: tuple[int, float] | None
    ) -> RtcpReceiverInfo:
        expected = stream.highest - stream.base + 1
        lost = max(0, expected - stream.received)
        interval_expected = expected - stream.expected_prior
        interval_lost = interval_expected - (stream.received - stream.received_prior)
        stream.expected_prior, stream.received_prior = expected, stream.received
        fraction = 0
        if interval_expected > 0 and interval_lost > 0:
            fraction = min(255, (interval_lost << 8) // interval_expected)
        return RtcpReceiverInfo(
            ssrc=ssrc,
            fraction_lost=fraction,
            packets_lost=min(lost, 0x7FFFFF),
            highest_sequence=stream.highest & 0xFFFFFFFF,
            jitter=0,
            lsr=last_sr[0] if last_sr else 0,
            dlsr=int((time.monotonic() - last_sr[1]) * 65536) if last_sr else 0,
        )


_PACKETISED: dict[int, list[list[bytes]]] = {}


def light_video(frames: list[bytes]) -> list[list[bytes]]:
    """The process's VP8 loop, packetised once."""
    key = id(frames)
    if key not in _PACKETISED:
        _PACKETISED[key] = packetise_vp8(frames)
    return _PACKETISED[key]


def announced_ssrcs(sdp: str) -> list[tuple[int, str]]:
    """(SSRC, mid) of every primary stream an offer announces (the first a=ssrc of each media
    section; an RTX SSRC follows it in an ssrc-group)."""
    out: list[tuple[int, str]] = []
    mid = ""
    first: int | None = None
    for line in sdp.splitlines():
        if line.startswith("m="):
            if first is not None:
                out.append((first, mid))
            mid, first = "", None
        elif line.startswith("a=mid:"):
            mid = line[6:].strip()
        elif line.startswith("a=ssrc:") and first is None:
            first = int(line[7:].split()[0])
    if first is not None:
        out.append((first, mid))
    return out
