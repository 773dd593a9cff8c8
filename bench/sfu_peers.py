"""The client side of `bench/sfu.py`: cheap synthetic publishers and subscribers (pre-encoded
VP8 and Opus replayed through aiortc's `pack()` path), the room-filling client process, and the
join-time clients; each joins `triad serve` over Socket.IO as the room page does
(`SioSignaling`), or the relay baseline's in-bench HTTP endpoint (`HttpSignaling`). Run through
`bench/sfu.py`, which starts these roles as processes of their own; loopback only."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import json
import math
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
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
    RTCDtlsTransport,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import is_rtcp

from bench.framecount import count_frames
from bench.tcpdelay import DelayedTcpRelay
from server.rooms.media import seam
from tests.media.linkemu import Link, LinkProfile
from tests.media.linksdp import route_answer, route_offer
from tests.roomclient import RoomClient

FPS = 30
HOST = "127.0.0.1"


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

    @property
    def sent(self) -> int:
        """Frames handed to the sender so far."""
        return self._n

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


# --- what the clients send the server --------------------------------------------------------


class SentPackets:
    """The SRTP and SRTCP datagrams this process's peer connections sent. Bench clients talk
    only to the server, so on loopback this is what the server received, less the kernel's
    receive-buffer drops (`bench/sfu.py` reports those)."""

    rtp = 0  # media and retransmissions
    rtcp = 0


def count_sent_packets() -> None:
    """Count every datagram at `RTCDtlsTransport._send_rtp` (aiortc 1.16: RTP, RTX, RTCP)."""
    original = RTCDtlsTransport._send_rtp

    async def counted(self: RTCDtlsTransport, data: bytes) -> None:
        await original(self, data)
        if is_rtcp(data):
            SentPackets.rtcp += 1
        else:
            SentPackets.rtp += 1

    RTCDtlsTransport._send_rtp = counted  # type: ignore[method-assign]


# --- one participant's media -----------------------------------------------------------------


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
    """One participant's media: a peer connection publishing the replayed tracks and counting
    the encoded frames of each remote track. A signaling class drives it (`SioSignaling`
    through `triad serve`, `HttpSignaling` for the relay baseline)."""

    def __init__(self, pid: str, media: dict[str, list[bytes]], decode: bool) -> None:
        self.pid = pid
        self._media = media
        self.frames: Counter[tuple[str, str]] = Counter()
        self.decoded = 0
        self.decode_errors = 0
        self.generations = 0  # peer connections so far (more than one: the server restarted it)
        self._decode = decode
        self._sent_before = 0
        self._new_connection()

    def _new_connection(self) -> None:
        self.pc = RTCPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        self.video = ReplayTrack("video", self._media["video"], 90000, 3000)
        self.audio = ReplayTrack("audio", self._media["audio"], 48000, 960)
        self.tracks: dict[str, tuple[str, str]] = {}
        self._decoder: Any = None
        self._decode_mid: str | None = None
        self._diverted: set[str] = set()
        self.generations += 1

    async def renew(self) -> None:
        """The server offers a new peer connection (`pc`): drop the old one, start afresh."""
        self._sent_before += self.video.sent
        await self.pc.close()
        self._new_connection()

    @property
    def video_sent(self) -> int:
        """Video frames this participant's tracks produced, over every peer connection."""
        return self._sent_before + self.video.sent

    def sees(self) -> set[str]:
        """The remote participants whose video has arrived."""
        return {who for (who, kind), n in self.frames.items() if kind == "video" and n}

    async def apply_offer(self, sdp: str, tracks: list[Any]) -> str:
        """Set a server offer; return the answer."""
        self.tracks = track_map(tracks)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
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
        await self.pc.close()


class JoinClient(BenchClient):
    """Decodes remote video with aiortc's own receivers and notes when frames first appear."""

    def __init__(self, pid: str, media: dict[str, list[bytes]]) -> None:
        self.first_at = 0.0
        self.all_at = 0.0
        self.all_seen = asyncio.Event()
        # When the first peer connection's ICE, then DTLS (its `connectionState`), connected.
        self.ice_at = 0.0
        self.dtls_at = 0.0
        self._seen: set[str] = set()
        self._readers: list[asyncio.Task[None]] = []
        super().__init__(pid, media, decode=False)

    def _new_connection(self) -> None:
        super()._new_connection()
        pc = self.pc

        @pc.on("iceconnectionstatechange")
        def ice() -> None:
            if pc.iceConnectionState == "completed" and not self.ice_at:
                self.ice_at = time.monotonic()

        @pc.on("connectionstatechange")
        def dtls() -> None:
            if pc.connectionState == "connected" and not self.dtls_at:
                self.dtls_at = time.monotonic()

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


# --- signaling: the relay baseline's HTTP endpoint ------------------------------------------


class HttpSignaling:
    """Drives a BenchClient through the relay server's in-bench HTTP offer/answer endpoint."""

    def __init__(
        self, client: BenchClient, url: str, room: str, http: aiohttp.ClientSession
    ) -> None:
        self.client, self.url, self.room, self.http = client, url, room, http
        self._poll: asyncio.Task[None] | None = None

    async def start(self) -> None:
        body = {"room": self.room, "pid": self.client.pid}
        async with self.http.post(f"{self.url}/join", json=body) as r:
            offer = await r.json()
        await self._answer(offer)
        self._poll = asyncio.ensure_future(self._renegotiate())

    async def _renegotiate(self) -> None:
        while True:
            async with self.http.get(f"{self.url}/offer", params={"pid": self.client.pid}) as r:
                if r.status == 200:
                    await self._answer(await r.json())

    async def _answer(self, offer: dict[str, Any]) -> None:
        sdp = await self.client.apply_offer(offer["sdp"], offer["tracks"])
        body = {"room": self.room, "pid": self.client.pid, "sdp": sdp, "pc": offer["pc"]}
        async with self.http.post(f"{self.url}/answer", json=body) as r:
            await r.read()

    async def stop(self) -> None:
        if self._poll:
            self._poll.cancel()
        await self.client.close()


# --- signaling: `triad serve` over Socket.IO --------------------------------------------------


class OfferingRoomClient(RoomClient):
    """tests/roomclient.py's client that also queues each `signal` it receives, so the
    answering loop can be told to stop with a `None` in the queue: cancelling it alone is not
    enough, as a cancellation that lands while an acknowledged call completes is lost
    (`asyncio.wait_for` on CPython 3.11) and the loop would wait for the next offer forever."""

    def __init__(self, base_url: str, token: str, label: str = "") -> None:
        super().__init__(base_url, token, label)
        self.signals: asyncio.Queue[Any] = asyncio.Queue()

    async def _record(self, event: str, data: Any = None) -> None:
        await super()._record(event, data)
        if event == "signal":
            self.signals.put_nowait(data)


class SioSignaling:
    """Drives a BenchClient through `triad serve` as the room page does (web/src/room.js and
    peer.js; docs/protocol.md, "The order of a join"): connect with the join token, handlers
    in place, `join`; each `signal` offer is answered once the join's acknowledgement is in
    (it brings the ICE servers), with `signal {type: "answer", sdp, pc}`; an offer with a new
    `pc` is a new peer connection. aiortc puts its candidates in the answer, so nothing
    trickles. The socket is tests/roomclient.py's: the real python-socketio client, checking
    every event and acknowledgement against the protocol's models.

    With `rtt_ms`, each peer connection's media goes through its own `Link` (40 ms each way
    for 80 ms); the signaling's share of the round trip is the caller's (a `base_url` that
    goes through `bench/tcpdelay.py`)."""

    def __init__(
        self, client: BenchClient, base_url: str, token: str, *, rtt_ms: float = 0.0
    ) -> None:
        self.client = client
        self.room = OfferingRoomClient(base_url, token, client.pid)
        self.rtt_ms = rtt_ms
        self.generation: int | None = None
        self.failures: list[str] = []
        self.violations: list[tuple[str, str]] = []
        self.connect_at = 0.0
        self.join_at = 0.0
        self.offer_at = 0.0  # the first offer received
        self.answer_at = 0.0  # ... answered (the answer sent)
        self._link: Link | None = None
        self._joined = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> dict[str, Any]:
        """Connect and join; returns the join's state."""
        self.connect_at = time.monotonic()
        await self.room.connect()
        # Handlers first: the first offer may come before the join's acknowledgement.
        self._task = asyncio.ensure_future(self._answer_offers())
        self.join_at = time.monotonic()
        ack = await self.room.call("join")
        if not ack.get("ok"):
            raise RuntimeError(f"join refused: {ack['error']['code']}")
        self._joined.set()
        state: dict[str, Any] = ack["state"]
        return state

    async def _answer_offers(self) -> None:
        while True:
            data = await self.room.signals.get()
            if data is None:  # stop()
                return
            await self._joined.wait()
            if isinstance(data, dict) and data.get("type") == "offer":
                try:
                    await self._answer(data)
                except Exception as exc:  # counted and reported; the bench carries on
                    self.failures.append(repr(exc))

    async def _answer(self, offer: dict[str, Any]) -> None:
        self.offer_at = self.offer_at or time.monotonic()
        if offer["pc"] != self.generation:
            if self.generation is not None:
                await self.client.renew()
            if self._link is not None:
                await self._link.close()
                self._link = None
            if self.rtt_ms:
                one_way = LinkProfile(delay_ms=self.rtt_ms / 2)
                self._link = await Link(one_way, one_way).start()
            self.generation = offer["pc"]
        sdp = offer["sdp"] if self._link is None else route_offer(self._link, offer["sdp"])
        answer = await self.client.apply_offer(sdp, offer["tracks"])
        if self._link is not None:
            answer = route_answer(self._link, answer)
        self.answer_at = self.answer_at or time.monotonic()
        ack = await self.room.call("signal", {"type": "answer", "sdp": answer, "pc": offer["pc"]})
        if not ack.get("ok"):
            raise RuntimeError(f"answer refused: {ack['error']['code']}")

    async def call(self, event: str, payload: Any = None) -> Any:
        return await self.room.call(event, payload)

    async def stop(self, *, leave: bool = True) -> None:
        """`leave` (unless the room has ended), close the socket, the peer and the link."""
        task, self._task = self._task, None
        if task is not None:
            self.room.signals.put_nowait(None)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if leave and not self.room.disconnected:
            with contextlib.suppress(Exception):
                await self.room.call("leave")
        # Taken before `close`, which would raise on them: the bench reports them instead.
        self.violations, self.room.violations = list(self.room.violations), []
        await self.room.close()
        await self.client.close()
        if self._link is not None:
            await self._link.close()


def read_plan(path: str) -> dict[str, Any]:
    """The rooms `bench/sfu.py` created through the REST API: the server's base URL and, per
    room, its consult id and seats (`role`, `participant_id`, `token`)."""
    plan: dict[str, Any] = json.loads(Path(path).read_text())
    return plan


async def wait_for(condition: Callable[[], bool], within: float) -> bool:
    """Poll `condition` until it holds or `within` seconds pass; whether it held."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


# --- the room-filling client process ---------------------------------------------------------


async def run_clients(args: argparse.Namespace) -> None:
    """Join this process's share of the rooms, warm up, print WARM, wait for GO on stdin,
    count over `args.measure` seconds, print RESULT."""
    count_sent_packets()
    width, height = args.size
    media = {"video": encode_video(width, height), "audio": encode_audio()}
    proc = psutil.Process()
    clients: list[BenchClient] = []
    signalings: list[SioSignaling | HttpSignaling] = []
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(aiohttp.ClientSession())
        if args.plan:
            plan = read_plan(args.plan)
            # Imported here: lightpeer builds on this module.
            from lightpeer import LightClient

            kind = LightClient if args.light else BenchClient
            for room in plan["rooms"][args.room_offset : args.room_offset + args.rooms]:
                for i, seat in enumerate(room["seats"]):
                    client = kind(seat["participant_id"], media, decode=(i == 0))
                    signaling: SioSignaling | HttpSignaling = SioSignaling(
                        client, plan["base_url"], seat["token"]
                    )
                    await signaling.start()
                    clients.append(client)
                    signalings.append(signaling)
        else:
            for r in range(args.rooms):
                room_no = args.room_offset + r
                for i in range(3):
                    client = BenchClient(f"p{room_no}_{i}", media, decode=(i == 0))
                    signaling = HttpSignaling(client, args.url, f"room{room_no}", http)
                    await signaling.start()
                    clients.append(client)
                    signalings.append(signaling)
        # Everyone's video from both others, then the warm-up.
        await wait_for(lambda: all(len(c.sees()) >= 2 for c in clients), 60)
        not_ready = sum(len(c.sees()) < 2 for c in clients)
        await asyncio.sleep(args.warm)

        def snap() -> tuple[float, Counter[tuple[str, str, str]], int, int, int, int]:
            total: Counter[tuple[str, str, str]] = Counter()
            for c in clients:
                for (who, kind), n in c.frames.items():
                    total[(c.pid, who, kind)] += n
            cpu = proc.cpu_times()
            return (
                cpu.user + cpu.system,
                total,
                sum(c.decoded for c in clients),
                sum(c.video_sent for c in clients),
                SentPackets.rtp,
                SentPackets.rtcp,
            )

        print("WARM", flush=True)
        # The orchestrator starts every client process's window at once.
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        cpu0, frames0, dec0, sent0, rtp0, rtcp0 = snap()
        sent_each0 = {c.pid: c.video_sent for c in clients}
        t0 = time.monotonic()
        await asyncio.sleep(args.measure)
        cpu1, frames1, dec1, sent1, rtp1, rtcp1 = snap()
        elapsed = time.monotonic() - t0
        video = [frames1[k] - frames0[k] for k in frames1 if k[2] == "video"]
        audio = [frames1[k] - frames0[k] for k in frames1 if k[2] == "audio"]
        video += [0] * (len(clients) * 2 - len(video))  # two remote video tracks each
        sent_each = [c.video_sent - sent_each0[c.pid] for c in clients]
        sio = [s for s in signalings if isinstance(s, SioSignaling)]
        result = {
            "video_fps": statistics.mean(video) / elapsed,
            "video_fps_min": min(video) / elapsed,
            "audio_fps": statistics.mean(audio) / elapsed if audio else 0.0,
            "video_received": sum(video),
            "video_sent": sent1 - sent0,
            "sent_fps": statistics.mean(sent_each) / elapsed,
            "sent_fps_min": min(sent_each) / elapsed,
            "decoded_fps": (dec1 - dec0) / elapsed / args.rooms,
            "decode_errors": sum(c.decode_errors for c in clients),
            "client_cpu": (cpu1 - cpu0) / elapsed,
            "rtp_rate": (rtp1 - rtp0) / elapsed,
            "rtcp_rate": (rtcp1 - rtcp0) / elapsed,
            "not_ready": not_ready,
            "restarts": sum(c.generations - 1 for c in clients),
            "failures": [f for s in sio for f in s.failures][:5],
            "media_quality": sum(len(s.room.received("media-quality")) for s in sio),
        }
        violations = [f"{e}: {why}" for s in sio for e, why in s.room.violations]
        result["violations"] = violations[:5]
        print("RESULT " + json.dumps(result), flush=True)
        # Outside the window: leave, close the sockets and the peer connections.
        for s in signalings:
            try:
                await asyncio.wait_for(s.stop(), 30)
            except TimeoutError:
                print(f"{s.client.pid}: closing took over 30 s", file=sys.stderr)


# --- join time through `triad serve` ---------------------------------------------------------


def seat_of(room: dict[str, Any], role: str) -> dict[str, Any]:
    seat: dict[str, Any] = next(s for s in room["seats"] if s["role"] == role)
    return seat


async def run_joins(args: argparse.Namespace) -> None:
    """The therapist and the psychiatrist publish; the client joins and leaves `args.joins`
    times per round trip in `args.rtt_ms`, behind a link with that round trip (media through a
    `Link`, the socket through a delayed TCP relay), from a socket connect to its first decoded
    remote frame."""
    width, height = args.size
    media = {"video": encode_video(width, height), "audio": encode_audio()}
    plan = read_plan(args.plan)
    room = plan["rooms"][0]
    hosts = []
    for role in ("therapist", "psychiatrist"):
        seat = seat_of(room, role)
        host = SioSignaling(
            BenchClient(seat["participant_id"], media, decode=False),
            plan["base_url"],
            seat["token"],
        )
        await host.start()
        hosts.append(host)
    await wait_for(lambda: all(len(h.client.sees()) >= 1 for h in hosts), 30)
    seat = seat_of(room, "client")
    port = int(plan["base_url"].rsplit(":", 1)[1])
    results: dict[str, Any] = {}
    for rtt in args.rtt_ms:
        relay = DelayedTcpRelay(port, rtt / 2000) if rtt else None
        base = await relay.start() if relay is not None else plan["base_url"]
        rows: dict[str, list[float]] = {
            "connect": [],
            "join": [],
            "both": [],
            "offer": [],
            "answer": [],
            "ice": [],
            "dtls": [],
        }
        failures: list[str] = []
        for _ in range(args.joins):
            joiner = JoinClient(seat["participant_id"], media)
            signaling = SioSignaling(joiner, base, seat["token"], rtt_ms=rtt)
            try:
                await signaling.start()
                await asyncio.wait_for(joiner.all_seen.wait(), 30)
                rows["connect"].append(joiner.first_at - signaling.connect_at)
                rows["join"].append(joiner.first_at - signaling.join_at)
                rows["both"].append(joiner.all_at - signaling.join_at)
                rows["offer"].append(signaling.offer_at - signaling.join_at)
                rows["answer"].append(signaling.answer_at - signaling.join_at)
                rows["ice"].append(joiner.ice_at - signaling.join_at)
                rows["dtls"].append(joiner.dtls_at - signaling.join_at)
            except (TimeoutError, RuntimeError) as exc:
                failures.append(repr(exc))
            await signaling.stop()
            failures += signaling.failures
        if relay is not None:
            await relay.close()
        results[str(rtt)] = {**rows, "failures": failures[:5], "failed": len(failures)}
    print("RESULT " + json.dumps(results), flush=True)
    for host in hosts:
        await host.stop()
