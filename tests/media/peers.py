"""Synthetic aiortc client peers for media tests (also used by the Socket.IO end-to-end test).

A `ClientPeer` answers server offers given as SDP plus a track map, sends a moving 640x480 video
track and a tone/noise/silent audio track on the mids the map assigns to it (and, once it
`share_screen`s, a second moving video on its screen mid), and counts the frames it decodes per
remote participant and track (`audio`, `video`, `screen`), with their dimensions. Loopback only:
it passes an empty ICE server list and advertises 127.0.0.1 through the same seam the server
uses.

aiortc's VP8 encoder never goes below 250 kbit/s whatever the receiver estimates; a browser
goes down to ~30 kbit/s. `min_video_bitrate` gives a peer a browser's floor (weak-link tests).
"""

from __future__ import annotations

import asyncio
import fractions
import math
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCDtlsTransport,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.codecs import vpx
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, VideoFrame

from server.ids import ParticipantId
from server.rooms.media import seam

AudioMode = Literal["tone", "noise", "silence"]
VIDEO_CLOCK = 90_000
AUDIO_RATE = 48_000
AUDIO_SAMPLES = 960  # 20 ms
# Where aiortc's RTCRtpSender keeps its encoder (created on the first frame when None).
_SENDER_ENCODER = "_RTCRtpSender__encoder"
# A decoded frame: (remote participant, kind, when on the peer's clock).
FrameListener = Callable[[str, str, float], None]


@dataclass(frozen=True)
class TrackMapEntry:
    """The part of a server `TrackInfo` a client needs (duck-typed: any object with these)."""

    mid: str
    participant_id: str
    kind: str
    source: str = ""  # the wire's "microphone", "camera" or "screen"

    @property
    def name(self) -> str:
        """What frames are counted under: "audio", "video", or "screen" for a shared screen."""
        return "screen" if self.source == "screen" else self.kind

    @classmethod
    def of(cls, track: Any) -> TrackMapEntry:
        """From the wire's track (a `source`) or the SFU's own `TrackInfo` (a `screen` flag)."""
        screen = getattr(track, "source", "") == "screen" or getattr(track, "screen", False)
        source = "screen" if screen else "microphone" if track.kind == "audio" else "camera"
        return cls(str(track.mid), str(track.participant_id), str(track.kind), source)


class MovingVideoTrack(MediaStreamTrack):
    """640x480 yuv420p frames whose content moves every frame (so the encoder sends real
    deltas), paced in real time."""

    kind = "video"

    def __init__(self, width: int = 640, height: int = 480, fps: int = 30) -> None:
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        x = np.arange(width, dtype=np.uint16)
        y = np.arange(height, dtype=np.uint16)[:, None]
        self._luma = ((x + y * 2) % 256).astype(np.uint8)
        self._chroma = np.full((height // 4, width), 128, dtype=np.uint8)
        self._index = 0
        self._start: float | None = None
        self.sent = 0

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            await asyncio.sleep(max(0.0, self._start + self._index / self.fps - time.monotonic()))
        luma = np.roll(self._luma, self._index * 8, axis=1)
        plane = np.concatenate([luma, self._chroma, self._chroma])
        frame = VideoFrame.from_ndarray(plane, format="yuv420p")
        frame.pts = self._index * VIDEO_CLOCK // self.fps
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self._index += 1
        self.sent += 1
        return frame


class SyntheticAudioTrack(MediaStreamTrack):
    """48 kHz mono 20 ms frames: a 440 Hz tone, white noise, or silence."""

    kind = "audio"

    def __init__(self, mode: AudioMode = "tone") -> None:
        super().__init__()
        self.mode: AudioMode = mode
        self._index = 0
        self._start: float | None = None
        self._rng = np.random.default_rng(7)
        self.sent = 0

    def _samples(self) -> np.ndarray[Any, np.dtype[np.int16]]:
        if self.mode == "silence":
            return np.zeros(AUDIO_SAMPLES, dtype=np.int16)
        if self.mode == "noise":
            return (self._rng.standard_normal(AUDIO_SAMPLES) * 3000).astype(np.int16)
        t = (np.arange(AUDIO_SAMPLES) + self._index * AUDIO_SAMPLES) / AUDIO_RATE
        return (np.sin(2 * math.pi * 440 * t) * 8000).astype(np.int16)

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            due = self._start + self._index * AUDIO_SAMPLES / AUDIO_RATE
            await asyncio.sleep(max(0.0, due - time.monotonic()))
        frame = AudioFrame.from_ndarray(self._samples().reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = self._index * AUDIO_SAMPLES
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        self._index += 1
        self.sent += 1
        return frame


class BrowserFloorVp8Encoder(vpx.Vp8Encoder):
    """aiortc's VP8 encoder, but following a receiver's estimate (REMB) down to `min_bitrate`
    as a browser does, instead of stopping at aiortc's 250 kbit/s."""

    def __init__(self, min_bitrate: int) -> None:
        super().__init__()
        if not 10_000 <= min_bitrate <= vpx.MIN_BITRATE:
            raise ValueError(f"min_bitrate {min_bitrate} is outside 10 kbit/s .. aiortc's floor")
        self.min_bitrate = min_bitrate

    @property
    def target_bitrate(self) -> int:
        return int(self._Vp8Encoder__target_bitrate)

    @target_bitrate.setter
    def target_bitrate(self, bitrate: int) -> None:
        self._Vp8Encoder__target_bitrate = max(self.min_bitrate, min(bitrate, vpx.MAX_BITRATE))


def route_rtx_by_ssrc() -> None:
    """Make aiortc's receivers take their RTX stream by its SSRC, as browsers do (the offer's
    ssrc-group FID names it). aiortc 1.16 registers only a receiver's media SSRC and routes an
    unknown SSRC by payload type, which two video receivers share: with two remote videos it
    drops every retransmission and every probe's padding. Test clients only; the server takes
    no aiortc receive path. Idempotent."""
    original = RTCDtlsTransport._register_rtp_receiver
    if getattr(original, "_routes_rtx", False):
        return

    def register(self: RTCDtlsTransport, receiver: Any, parameters: Any) -> None:
        original(self, receiver, parameters)
        for encoding in parameters.encodings:
            if encoding.rtx is not None:
                self._rtp_router.ssrc_table[encoding.rtx.ssrc] = receiver

    register._routes_rtx = True  # type: ignore[attr-defined]
    RTCDtlsTransport._register_rtp_receiver = register  # type: ignore[method-assign]


class ClientPeer:
    """One participant's browser, played by aiortc (its RTX routed by SSRC as a browser's is:
    `route_rtx_by_ssrc`)."""

    def __init__(
        self,
        participant_id: str,
        *,
        audio: AudioMode = "tone",
        fps: int = 30,
        size: tuple[int, int] = (640, 480),
        host_addresses: Iterable[str] = ("127.0.0.1",),
        clock: Callable[[], float] = time.monotonic,
        min_video_bitrate: int | None = None,
        on_decoded: FrameListener | None = None,
        ice_servers: Iterable[RTCIceServer] = (),
    ) -> None:
        route_rtx_by_ssrc()
        self.participant_id = participant_id
        self.host_addresses = tuple(host_addresses)
        self.pc = RTCPeerConnection(
            RTCConfiguration(iceServers=list(ice_servers), bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        self.audio = SyntheticAudioTrack(audio)
        self.video = MovingVideoTrack(*size, fps=fps)
        self.screen: MovingVideoTrack | None = None  # what it shares, once it shares
        self.clock = clock
        # None: aiortc's own encoder (floor 250 kbit/s); else a browser's floor, in bit/s.
        self.min_video_bitrate = min_video_bitrate
        self.on_decoded = on_decoded
        self.created_at = clock()
        # participant -> kind -> decoded frames; participant -> video sizes seen
        self.frames: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.sizes: defaultdict[str, set[tuple[int, int]]] = defaultdict(set)  # cameras'
        self.screen_sizes: defaultdict[str, set[tuple[int, int]]] = defaultdict(set)
        self.first_frame_at: dict[tuple[str, str], float] = {}
        self.keyframe_requests = 0  # PLI/FIR the server sent for our video
        # How many of the next keyframe requests the encoder ignores (a PLI lost on the way, or
        # an encoder that declines one): a fault a loopback test cannot cause for real.
        self.ignore_keyframe_requests = 0
        self.offers = 0
        self._tracks: dict[str, TrackMapEntry] = {}
        self._readers: dict[str, asyncio.Task[None]] = {}
        self._sender_hooked = False

    # Signaling -------------------------------------------------------------------------------

    async def handle_offer(self, sdp: str, tracks: Iterable[Any]) -> str:
        """Apply a server offer and its track map; return the answer SDP."""
        self.offers += 1
        self._tracks = {t.mid: TrackMapEntry.of(t) for t in tracks}
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        seam.restrict_host_candidates(self.pc, self.host_addresses)
        for transceiver in self.pc.getTransceivers():
            entry = self._tracks.get(transceiver.mid or "")
            if entry is not None and entry.participant_id == self.participant_id:
                sending = {"audio": self.audio, "video": self.video, "screen": self.screen}
                track = sending[entry.name]
                if track is None:  # asked for a screen it does not share: answered away
                    transceiver.direction = "inactive"
                    continue
                if transceiver.sender.track is not track:
                    transceiver.sender.replaceTrack(track)
                transceiver.direction = "sendonly"
                if entry.kind == "video" and not self._sender_hooked:
                    self._hook_keyframe_requests(transceiver.sender)
            else:
                transceiver.direction = "recvonly"
                self._read(transceiver)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        if self.min_video_bitrate is not None:
            for transceiver in self.pc.getTransceivers():
                if transceiver.sender.track is self.video:
                    self._lower_encoder_floor(transceiver, self.min_video_bitrate)
        return str(self.pc.localDescription.sdp)

    @staticmethod
    def _lower_encoder_floor(transceiver: Any, min_bitrate: int) -> None:
        """Give the sender its encoder before its first frame (aiortc creates one only when it
        has none). Fails loudly if aiortc moved the attribute or VP8 was not negotiated."""
        sender = transceiver.sender
        if not hasattr(sender, _SENDER_ENCODER):
            raise RuntimeError(f"aiortc's RTCRtpSender has no {_SENDER_ENCODER} any more")
        codecs = [c.mimeType.lower() for c in transceiver._codecs]
        if codecs[:1] != ["video/vp8"]:
            raise RuntimeError(f"a VP8 floor needs VP8 negotiated first, not {codecs}")
        if getattr(sender, _SENDER_ENCODER) is None:
            setattr(sender, _SENDER_ENCODER, BrowserFloorVp8Encoder(min_bitrate))

    def _hook_keyframe_requests(self, sender: Any) -> None:
        keyframe = sender._send_keyframe

        def counted() -> None:
            self.keyframe_requests += 1
            if self.ignore_keyframe_requests > 0:
                self.ignore_keyframe_requests -= 1
                return
            keyframe()

        seam.intercept_keyframe_requests(sender, counted)
        self._sender_hooked = True

    def _read(self, transceiver: Any) -> None:
        mid = transceiver.mid
        track = transceiver.receiver.track
        if mid is None or track is None or mid in self._readers:
            return
        self._readers[mid] = asyncio.ensure_future(self._count(mid, track))

    async def _count(self, mid: str, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                entry = self._tracks.get(mid)
                if entry is None:
                    continue
                who = entry.participant_id
                self.frames[who][entry.name] += 1
                now = self.clock()
                self.first_frame_at.setdefault((who, entry.name), now)
                if self.on_decoded is not None:
                    self.on_decoded(who, entry.name, now)
                if isinstance(frame, VideoFrame):
                    sizes = self.screen_sizes if entry.name == "screen" else self.sizes
                    sizes[who].add((frame.width, frame.height))
        except MediaStreamError:
            pass

    # Observations ----------------------------------------------------------------------------

    def decoded(self, participant_id: str, kind: str = "video") -> int:
        return self.frames[participant_id][kind]

    def remote_mid(self, participant_id: str, kind: str) -> str | None:
        """The mid `participant_id`'s `kind` ("audio", "video" or "screen") arrives on."""
        for entry in self._tracks.values():
            if entry.participant_id == participant_id and entry.name == kind:
                return entry.mid
        return None

    def share_screen(self, size: tuple[int, int] = (1280, 720), fps: int = 10) -> None:
        """Have a screen to share: sent on the mid the next offer maps to its own screen."""
        if self.screen is None:
            self.screen = MovingVideoTrack(*size, fps=fps)

    def stop_screen(self) -> None:
        """The capture ends (a stopped track sends nothing); the next offer's screen line is
        answered inactive if the server still asks for it."""
        if self.screen is not None:
            self.screen.stop()
            self.screen = None

    async def request_keyframe(self, publisher_id: str) -> bool:
        """Send a PLI for `publisher_id`'s video, as a browser does after packet loss."""
        mid = self.remote_mid(publisher_id, "video")
        for transceiver in self.pc.getTransceivers():
            if transceiver.mid == mid:
                return await _send_pli(transceiver.receiver)
        return False

    async def close(self) -> None:
        for task in self._readers.values():
            task.cancel()
        await asyncio.gather(*self._readers.values(), return_exceptions=True)
        self._readers.clear()
        self.audio.stop()
        self.video.stop()
        self.stop_screen()
        await self.pc.close()


class LoopbackRoom:
    """A test room around an `Sfu`: each participant's connection (`connection(pid)`, an
    `MediaSink`) hands offers straight to their client peer and the answer straight back; an
    offer for a new peer connection number gets a new client peer, as a browser does."""

    def __init__(self) -> None:
        self.sfu: Any = None
        self.clients: dict[str, ClientPeer] = {}
        self.options: dict[str, dict[str, Any]] = {}
        # participant -> the peer connection number of each offer they were sent, in order
        self.generations: defaultdict[str, list[int]] = defaultdict(list)
        self.speakers: list[str | None] = []
        # (participant, publisher, "video" or "screen", paused) as their media-quality news came
        self.quality: list[tuple[str, str, str, bool]] = []
        self.failures: list[BaseException] = []
        # Participants whose offers are kept in `held` instead of being answered.
        self.hold: set[str] = set()
        self.held: dict[str, Any] = {}

    async def join(self, participant_id: ParticipantId, **options: Any) -> ClientPeer:
        """A client peer for the participant, and their media added to the SFU."""
        self.options[participant_id] = options
        self.generations.pop(participant_id, None)
        client = self.clients[participant_id] = ClientPeer(participant_id, **options)
        await self.sfu.add(participant_id, self.connection(participant_id))
        return client

    def connection(self, participant_id: ParticipantId) -> LoopbackConnection:
        return LoopbackConnection(self, participant_id)

    def generation(self, participant_id: str) -> int | None:
        seen = self.generations[participant_id]
        return seen[-1] if seen else None

    async def deliver(self, participant_id: ParticipantId, offer: Any, generation: int) -> None:
        previous = self.generation(participant_id)
        self.generations[participant_id].append(generation)
        if participant_id in self.hold:
            self.held[participant_id] = offer
            return
        client = self.clients.get(participant_id)
        if client is None:
            return
        try:
            if previous is not None and generation != previous:
                screen = client.screen  # a page keeps its capture across peer connections
                size = None if screen is None else (screen.width, screen.height)
                await client.close()
                options = self.options.get(participant_id, {})
                client = self.clients[participant_id] = ClientPeer(participant_id, **options)
                if size is not None:
                    client.share_screen(size)
            answer = await client.handle_offer(offer.sdp, offer.tracks)
            await self.sfu.answer(participant_id, generation, answer)
        except BaseException as exc:
            self.failures.append(exc)
            raise

    def active_speaker_changed(self, participant_id: ParticipantId | None) -> None:
        self.speakers.append(participant_id)


@dataclass(frozen=True)
class LoopbackConnection:
    """One participant's connection in a `LoopbackRoom` (a `MediaSink`)."""

    room: LoopbackRoom
    participant_id: ParticipantId

    async def send_offer(self, offer: Any, *, generation: int) -> None:
        await self.room.deliver(self.participant_id, offer, generation)

    async def send_media_quality(
        self, publisher: ParticipantId, *, video_paused: bool, screen: bool = False
    ) -> None:
        track = "screen" if screen else "video"
        self.room.quality.append((self.participant_id, publisher, track, video_paused))


def counts(clients: Mapping[str, ClientPeer]) -> dict[str, dict[str, dict[str, int]]]:
    """Decoded frame counts, for assertion messages."""
    return {
        pid: {who: dict(c) for who, c in client.frames.items()} for pid, client in clients.items()
    }


async def _send_pli(receiver: Any) -> bool:
    """A PLI from this (aiortc-run) receiver for the newest source it heard; False before any."""
    sources = receiver.getSynchronizationSources()
    if not sources:
        return False
    newest = max(sources, key=lambda source: source.timestamp)
    await receiver._send_rtcp_pli(newest.source)
    return True
