"""The client side of `bench/sfu.py`: cheap synthetic publishers and subscribers (pre-encoded
VP8 and Opus replayed through aiortc's `pack()` path), the room-filling client process, and the
join-time clients (over the bench's HTTP stand-in or the real server's Socket.IO). Run through
`bench/sfu.py`, which starts these roles as processes of their own (and puts the repository on
`sys.path` before it imports this module); loopback only."""

from __future__ import annotations

import argparse
import asyncio
import base64
import fractions
import json
import math
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
import psutil
from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from bench.framecount import count_frames
from server.rooms.media import (
    seam,
)

FPS = 30
HOST = "127.0.0.1"
BENCH = Path(__file__).resolve().parent  # notes.py and notes_socketio.py, for the Socket.IO joins


# --- synthetic media -------------------------------------------------------------------------


def encode_video(width: int, height: int, seconds: float = 2.0) -> list[bytes]:
    """A loop of VP8 frames of moving content; the first is a keyframe."""
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.time_base = fractions.Fraction(1, FPS)
    codec.framerate = fractions.Fraction(FPS, 1)
    codec.bit_rate = int(1_200_000 * (width * height) / (640 * 480))
    codec.gop_size = int(FPS * seconds)
    codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    x = np.arange(width, dtype=np.uint16)
    y = np.arange(height, dtype=np.uint16)[:, None]
    luma = ((x + y * 2) % 256).astype(np.uint8)
    rng = np.random.default_rng(1)
    chroma = np.full((height // 4, width), 128, dtype=np.uint8)
    out: list[bytes] = []
    for i in range(int(FPS * seconds)):
        moving = np.roll(luma, i * 8, axis=1)
        noise = rng.integers(0, 6, size=moving.shape, dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(
            np.concatenate([moving + noise, chroma, chroma]), format="yuv420p"
        )
        frame.pts = i
        out += [bytes(p) for p in codec.encode(frame)]
    out += [bytes(p) for p in codec.encode(None)]
    return out[: int(FPS * seconds)]


def encode_audio(seconds: float = 1.0) -> list[bytes]:
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate, codec.layout, codec.format = 48000, "mono", "s16"
    codec.bit_rate = 32000
    out: list[bytes] = []
    for i in range(int(50 * seconds)):
        t = (np.arange(960) + i * 960) / 48000
        samples = (np.sin(2 * math.pi * 440 * t) * 8000).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate, frame.pts = 48000, i * 960
        out += [bytes(p) for p in codec.encode(frame)]
    return out


class ReplayTrack(MediaStreamTrack):
    """Pre-encoded frames in real time as av.Packets (the sender packs them, no encoder)."""

    def __init__(self, kind: str, frames: list[bytes], rate: int, step: int) -> None:
        super().__init__()
        self.kind = kind
        self._frames, self._rate, self._step = frames, rate, step
        self._n = 0
        self._pos = 0
        self._start: float | None = None

    def restart_at_keyframe(self) -> None:
        self._pos = 0  # the loop starts with a keyframe

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            await asyncio.sleep(
                max(0.0, self._start + self._n * self._step / self._rate - time.monotonic())
            )
        packet = av.Packet(self._frames[self._pos])
        packet.pts = self._n * self._step
        packet.time_base = fractions.Fraction(1, self._rate)
        self._n += 1
        self._pos = (self._pos + 1) % len(self._frames)
        return packet


# --- client process --------------------------------------------------------------------------


def track_map(tracks: list[Any]) -> dict[str, tuple[str, str]]:
    """mid -> (participant, kind), from `[mid, who, kind]` (bench HTTP) or Socket.IO dicts."""
    out: dict[str, tuple[str, str]] = {}
    for t in tracks:
        if isinstance(t, dict):
            out[t["mid"]] = (t["participant_id"], t["kind"])
        else:
            out[t[0]] = (t[1], t[2])
    return out


class BenchClient:
    def __init__(
        self, url: str, room: str, pid: str, media: dict[str, list[bytes]], decode: bool
    ) -> None:
        self.url, self.room, self.pid = url, room, pid
        self.pc = RTCPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        self.video = ReplayTrack("video", media["video"], 90000, 3000)
        self.audio = ReplayTrack("audio", media["audio"], 48000, 960)
        self.tracks: dict[str, tuple[str, str]] = {}
        self.frames: Counter[tuple[str, str]] = Counter()
        self.decoded = 0
        self.decode_errors = 0
        self._decode = decode
        self._decoder: Any = None
        self._decode_mid: str | None = None
        self._diverted: set[str] = set()
        self._poll: asyncio.Task[None] | None = None

    async def join(self, http: aiohttp.ClientSession) -> None:
        async with http.post(f"{self.url}/join", json={"room": self.room, "pid": self.pid}) as r:
            offer = await r.json()
        await self._answer(http, offer)
        self._poll = asyncio.ensure_future(self._renegotiate(http))

    async def _renegotiate(self, http: aiohttp.ClientSession) -> None:
        while True:
            async with http.get(f"{self.url}/offer", params={"pid": self.pid}) as r:
                if r.status == 200:
                    await self._answer(http, await r.json())

    async def _answer(self, http: aiohttp.ClientSession, offer: dict[str, Any]) -> None:
        sdp = await self.apply_offer(offer)
        body = {"room": self.room, "pid": self.pid, "sdp": sdp, "pc": offer["pc"]}
        async with http.post(f"{self.url}/answer", json=body) as r:
            await r.read()

    async def apply_offer(self, offer: dict[str, Any]) -> str:
        """Set a server offer (bench HTTP or Socket.IO track-map form); return the answer."""
        self.tracks = track_map(offer["tracks"])
        await self.pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        seam.restrict_host_candidates(self.pc, (HOST,))
        for t in self.pc.getTransceivers():
            who, kind = self.tracks.get(t.mid or "", ("", ""))
            if who == self.pid:
                if t.sender.track is None:
                    t.sender.replaceTrack(self.video if kind == "video" else self.audio)
                    if kind == "video":
                        self._sending_video(t.sender)
                t.direction = "sendonly"
            else:
                t.direction = "recvonly"
                if t.mid not in self._diverted:
                    self._receiving(t, who, kind)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return str(self.pc.localDescription.sdp)

    def _sending_video(self, sender: Any) -> None:
        seam.intercept_keyframe_requests(sender, self.video.restart_at_keyframe)

    def _receiving(self, transceiver: Any, who: str, kind: str) -> None:
        """A new remote line: count its encoded frames without decoding them."""
        mid = transceiver.mid
        self._diverted.add(mid)
        count_frames(transceiver.receiver, lambda data, mid=mid: self._frame(mid, data))

    def _frame(self, mid: str, data: bytes) -> None:
        who, kind = self.tracks.get(mid, ("", ""))
        self.frames[(who, kind)] += 1
        if self._decode and kind == "video" and self._decode_mid in (None, mid):
            self._decode_mid = mid
            if self._decoder is None:
                self._decoder = av.CodecContext.create("vp8", "r")
            try:
                self.decoded += len(self._decoder.decode(av.Packet(data)))
            except av.FFmpegError:
                self.decode_errors += 1

    async def close(self) -> None:
        if self._poll:
            self._poll.cancel()
        await self.pc.close()


async def run_clients(args: argparse.Namespace) -> None:
    width, height = args.size
    media = {"video": encode_video(width, height), "audio": encode_audio()}
    proc = psutil.Process()
    async with aiohttp.ClientSession() as http:
        clients = []
        for r in range(args.rooms):
            for i in range(3):
                room = args.room_offset + r
                client = BenchClient(
                    args.url, f"room{room}", f"p{room}_{i}", media, decode=(i == 0)
                )
                await client.join(http)
                clients.append(client)
        await asyncio.sleep(args.warm)

        def snap() -> tuple[float, Counter[tuple[str, str, str]], int]:
            total: Counter[tuple[str, str, str]] = Counter()
            for c in clients:
                for (who, kind), n in c.frames.items():
                    total[(c.pid, who, kind)] += n
            cpu = proc.cpu_times()
            return cpu.user + cpu.system, total, sum(c.decoded for c in clients)

        cpu0, frames0, dec0 = snap()
        print("WARM", flush=True)
        t0 = time.monotonic()
        await asyncio.sleep(args.measure)
        cpu1, frames1, dec1 = snap()
        elapsed = time.monotonic() - t0
        video = [frames1[k] - frames0[k] for k in frames1 if k[2] == "video"]
        audio = [frames1[k] - frames0[k] for k in frames1 if k[2] == "audio"]
        expected_tracks = args.rooms * 3 * 2
        video += [0] * (expected_tracks - len(video))
        result = {
            "video_fps": statistics.mean(video) / elapsed,
            "video_fps_min": min(video) / elapsed,
            "audio_fps": statistics.mean(audio) / elapsed if audio else 0.0,
            "decoded_fps": (dec1 - dec0) / elapsed / args.rooms,
            "decode_errors": sum(c.decode_errors for c in clients),
            "client_cpu": (cpu1 - cpu0) / elapsed,
        }
        print("RESULT " + json.dumps(result), flush=True)
        for c in clients:
            await c.close()


async def run_joins(args: argparse.Namespace) -> None:
    """Two publishers in a room; a decoding client joins and leaves `args.joins` times."""
    width, height = args.size
    media = {"video": encode_video(width, height), "audio": encode_audio()}
    async with aiohttp.ClientSession() as http:
        hosts = [BenchClient(args.url, "joins", f"host{i}", media, decode=False) for i in range(2)]
        for host in hosts:
            await host.join(http)
        await asyncio.sleep(2)
        first, both = [], []
        for n in range(args.joins):
            joiner = JoinClient(args.url, "joins", f"joiner{n}", media)
            start = time.monotonic()
            await joiner.join(http)
            await asyncio.wait_for(joiner.all_seen.wait(), 20)
            first.append(joiner.first_at - start)
            both.append(joiner.all_at - start)
            async with http.post(
                f"{args.url}/leave", json={"room": "joins", "pid": joiner.pid}
            ) as r:
                await r.read()
            await joiner.close()
        print("RESULT " + json.dumps({"first": first, "both": both}), flush=True)
        for host in hosts:
            await host.close()


class JoinClient(BenchClient):
    """Decodes remote video with aiortc's own receivers and notes when frames first appear."""

    def __init__(self, url: str, room: str, pid: str, media: dict[str, list[bytes]]) -> None:
        super().__init__(url, room, pid, media, decode=False)
        self.first_at = 0.0
        self.all_at = 0.0
        self.all_seen = asyncio.Event()
        self._seen: set[str] = set()
        self._readers: list[asyncio.Task[None]] = []

    def _sending_video(self, sender: Any) -> None:
        pass  # joins are short: the publisher's first keyframe is all they need

    def _receiving(self, transceiver: Any, who: str, kind: str) -> None:
        """A new remote line: decode its video with aiortc's receiver, as a browser would."""
        if kind == "video":
            self._diverted.add(transceiver.mid)
            self._readers.append(asyncio.ensure_future(self._read(who, transceiver.receiver.track)))

    async def _read(self, who: str, track: MediaStreamTrack) -> None:
        try:
            await track.recv()
        except MediaStreamError:
            return
        now = time.monotonic()
        if not self._seen:
            self.first_at = now
        self._seen.add(who)
        if len(self._seen) == 2:
            self.all_at = now
            self.all_seen.set()
        while True:  # keep draining so the decoder queue does not grow
            try:
                await track.recv()
            except MediaStreamError:
                return

    async def close(self) -> None:
        for task in self._readers:
            task.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
        await super().close()


# --- through the real server over Socket.IO -------------------------------------------------


NAMESPACE = "/consult"


def token_subject(token: str) -> str:
    """The participant id in a join token (read, not verified: the server verifies it)."""
    payload = token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"])


class SioSignaling:
    """Drives a BenchClient/JoinClient through `triad serve` as docs/protocol.md describes."""

    def __init__(self, client: BenchClient, base: str, token: str) -> None:
        import socketio

        self.client = client
        self.base, self.token = base, token
        self.sio = socketio.AsyncClient(reconnection=False)
        self._lock = asyncio.Lock()
        self.sio.on("signal", self._on_signal, namespace=NAMESPACE)

    async def start(self) -> None:
        # Handlers first: the first offer may come before the join acknowledgement.
        await self.sio.connect(
            self.base,
            namespaces=[NAMESPACE],
            transports=["websocket"],
            auth={"token": self.token},
        )
        ack = await self.sio.call("join", {}, namespace=NAMESPACE, timeout=30)
        if not ack["ok"]:
            raise SystemExit(f"join refused: {ack['error']['code']}")

    async def _on_signal(self, data: dict[str, Any]) -> None:
        if data.get("type") != "offer":
            return
        async with self._lock:
            sdp = await self.client.apply_offer(data)
            ack = await self.sio.call(
                "signal",
                {"type": "answer", "sdp": sdp, "pc": data.get("pc")},
                namespace=NAMESPACE,
                timeout=30,
            )
            if not ack["ok"]:
                print(f"answer refused: {ack['error']['code']}", file=sys.stderr)

    async def stop(self) -> None:
        try:
            await self.sio.call("leave", {}, namespace=NAMESPACE, timeout=30)
        finally:
            await self.sio.disconnect()
            await self.client.close()


async def run_sio_joins(args: argparse.Namespace) -> None:
    """Join time through the real server: socket connect -> first decoded remote frame."""
    import tempfile

    sys.path.insert(0, str(BENCH))
    import notes as notes_bench  # its database helpers
    import notes_socketio  # its consult/token minting and server start

    from server.auth.roles import Role

    width, height = args.size
    media = {"video": encode_video(width, height), "audio": encode_audio()}
    with tempfile.TemporaryDirectory() as tmp:
        url = await notes_bench.sqlite_database(Path(tmp))
        (people,) = await notes_socketio.make_consults(url, 1)
        process, base = await notes_socketio.start_server(url, tmp)
        try:
            hosts = []
            for role in (Role.THERAPIST, Role.PSYCHIATRIST):
                token = people[role].token
                client = BenchClient(base, "", token_subject(token), media, decode=False)
                hosts.append(SioSignaling(client, base, token))
                await hosts[-1].start()
            await asyncio.sleep(2)
            token = people[Role.CLIENT].token
            first, both = [], []
            for _ in range(args.joins):
                joiner = JoinClient(base, "", token_subject(token), media)
                signaling = SioSignaling(joiner, base, token)
                start = time.monotonic()
                await signaling.start()
                await asyncio.wait_for(joiner.all_seen.wait(), 20)
                first.append(joiner.first_at - start)
                both.append(joiner.all_at - start)
                await signaling.stop()
            print("RESULT " + json.dumps({"first": first, "both": both}), flush=True)
            for host in hosts:
                await host.stop()
        finally:
            process.terminate()
            await process.wait()
