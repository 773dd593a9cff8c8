"""A participant as a browser would be one: the real python-socketio client for signaling and
an aiortc `ClientPeer` for media, optionally behind an emulated network `Link`.

Each server offer is answered as the room's web page does; a new peer-connection generation
(`pc`) gets a new peer and, when linked, a new `Link` (the old one's counts are kept). Renewed
offers of the same generation keep both. The weak-link harness runs one of these per process
(`tests/media/participantworker.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Any

from aiortc import RTCIceServer

from tests.media.linkemu import Link, LinkProfile, LinkStats
from tests.media.linksdp import route_answer, route_offer
from tests.media.mediafigures import FrameRecorder
from tests.media.peers import AudioMode, ClientPeer, TrackMapEntry
from tests.media.triadserver import Seat
from tests.roomclient import RoomClient


@dataclass(frozen=True)
class PeerOptions:
    """How each participant's aiortc peer sends."""

    width: int = 640
    height: int = 480
    fps: int = 30
    audio: AudioMode = "tone"
    # A browser's VP8 floor (None: aiortc's own, 250 kbit/s); see `ClientPeer`.
    min_video_bitrate: int | None = 30_000
    # The host candidate's address (a network namespace's own, for a client inside one).
    host_address: str = "127.0.0.1"
    # Relay through the TURN URL of the join state's ice_servers with this transport ("udp",
    # "tcp" or "tls"), with the credential the server minted; None: no ICE servers at all.
    # (aiortc uses one TURN URL, the first it is given: a browser would try them all.)
    turn: str | None = None

    def __post_init__(self) -> None:
        if self.turn not in (None, "udp", "tcp", "tls"):
            raise ValueError(f"turn {self.turn!r} is not udp, tcp or tls")
        if not (16 <= self.width <= 1920 and 16 <= self.height <= 1080):
            raise ValueError(f"video size {self.width}x{self.height} is outside 16x16..1920x1080")
        if self.width % 2 or self.height % 4:
            raise ValueError("width must be even and height a multiple of 4 (yuv420p planes)")
        if not 1 <= self.fps <= 60:
            raise ValueError(f"fps {self.fps} is outside 1..60")


def transport_of(url: str) -> str | None:
    """ "udp", "tcp" or "tls" for a TURN URL (RFC 7065: UDP when none is named); None for STUN."""
    if url.startswith("turns:"):
        return "tls"
    if not url.startswith("turn:"):
        return None
    return "tcp" if "transport=tcp" in url else "udp"


@dataclass(frozen=True)
class LinkProfiles:
    """The two directions of a participant's emulated link."""

    uplink: LinkProfile
    downlink: LinkProfile
    seed: int = 0


class LinkedParticipant:
    def __init__(
        self,
        seat: Seat,
        base_url: str,
        options: PeerOptions,
        link: LinkProfiles | None = None,
    ) -> None:
        self.seat = seat
        self.role = seat.role
        self.participant_id = seat.participant_id
        self.room = RoomClient(base_url, seat.token, seat.role)
        self.options = options
        self.link_profiles = link
        self.recorder = FrameRecorder()
        self.peer: ClientPeer | None = None
        self.link: Link | None = None
        self.generation: int | None = None
        self.generations = 0  # peer connections this participant has had
        self.failures: list[BaseException] = []
        self._closed_links = LinkStats()
        self._closed_sent = (0, 0)  # frames the closed peers' tracks produced
        self._task: asyncio.Task[None] | None = None
        self._room_closed = False
        # The join state's ice_servers; offers wait for it, as the web page's do.
        self._ice_servers: list[dict[str, Any]] | None = None
        self._joined = asyncio.Event()

    async def join(self) -> None:
        await self.room.connect()
        # Answering starts before `join`: the first offer may come before its acknowledgement.
        self._task = asyncio.get_running_loop().create_task(self._answer_offers())
        state = await self.room.join()
        self._ice_servers = list(state.get("ice_servers") or [])
        self._joined.set()

    def rtc_ice_servers(self) -> list[RTCIceServer]:
        """The one TURN URL of `options.turn`'s transport from the join state, if asked for."""
        if self.options.turn is None:
            return []
        for server in self._ice_servers or []:
            for url in server["urls"]:
                if transport_of(url) == self.options.turn:
                    return [RTCIceServer([url], server["username"], server["credential"])]
        raise RuntimeError(f"{self.role}: the join state has no {self.options.turn} TURN URL")

    @property
    def connected(self) -> bool:
        return self.peer is not None and self.peer.pc.connectionState == "connected"

    def link_stats(self) -> LinkStats:
        """Everything this participant's links carried, over every generation."""
        current = self.link.stats() if self.link is not None else LinkStats()
        return self._closed_links + current

    def sent(self) -> tuple[int, int]:
        """Audio and video frames this participant's tracks produced, over every generation
        (fewer than real time allows means this process could not keep up)."""
        audio, video = self._closed_sent
        if self.peer is not None:
            audio, video = audio + self.peer.audio.sent, video + self.peer.video.sent
        return audio, video

    def reshape(self, profiles: LinkProfiles) -> None:
        """The link changes from now on, for this peer connection and any later one."""
        if self.link_profiles is None:
            raise RuntimeError(f"{self.role} is not behind a link")
        self.link_profiles = dataclasses.replace(profiles, seed=self.link_profiles.seed)
        if self.link is not None:
            self.link.reshape(profiles.uplink, profiles.downlink)

    async def restart_media(self) -> dict[str, Any]:
        """`media-restart` for the current peer connection, as the web page asks for one after
        a network change; the server answers with a new one's offer (same seat)."""
        ack: dict[str, Any] = await self.room.call("media-restart", {"pc": self.generation})
        return ack

    def media_quality_events(self) -> int:
        return len(self.room.received("media-quality"))

    def paused_publishers(self) -> list[str]:
        """The participants whose video this one was told is paused for it, at any time."""
        events = self.room.received("media-quality")
        return sorted({e["participant_id"] for e in events if e.get("video") == "paused"})

    async def _answer_offers(self) -> None:
        seen = 0
        while True:
            await self.room.wait_event("signal", after=seen, within=3600)
            while seen < len(self.room.events):
                name, data = self.room.events[seen]
                seen += 1
                if name == "signal" and isinstance(data, dict) and data.get("type") == "offer":
                    try:
                        await self._answer(data)
                    except Exception as exc:  # surfaced by close()
                        self.failures.append(exc)

    async def _answer(self, offer: dict[str, Any]) -> None:
        await self._joined.wait()
        if offer["pc"] != self.generation or self.peer is None:
            await self._drop_connection()
            self.peer = ClientPeer(
                self.participant_id,
                host_addresses=(self.options.host_address,),
                ice_servers=self.rtc_ice_servers(),
                audio=self.options.audio,
                fps=self.options.fps,
                size=(self.options.width, self.options.height),
                min_video_bitrate=self.options.min_video_bitrate,
                on_decoded=self.recorder,
            )
            if self.link_profiles is not None:
                self.link = Link(
                    self.link_profiles.uplink,
                    self.link_profiles.downlink,
                    seed=self.link_profiles.seed + self.generations,
                )
                await self.link.start()
            self.generation = offer["pc"]
            self.generations += 1
        sdp = offer["sdp"] if self.link is None else route_offer(self.link, offer["sdp"])
        tracks = [TrackMapEntry(**t) for t in offer["tracks"]]
        answer = await self.peer.handle_offer(sdp, tracks)
        if self.link is not None:
            answer = route_answer(self.link, answer)
        ack = await self.room.call("signal", {"type": "answer", "sdp": answer, "pc": offer["pc"]})
        if ack != {"ok": True}:
            raise RuntimeError(f"{self.role}: answer refused: {ack}")

    async def _drop_connection(self) -> None:
        peer, self.peer = self.peer, None
        link, self.link = self.link, None
        if peer is not None:
            self._closed_sent = (
                self._closed_sent[0] + peer.audio.sent,
                self._closed_sent[1] + peer.video.sent,
            )
            await peer.close()
        if link is not None:
            self._closed_links = self._closed_links + link.stats()
            await link.close()

    def take_violations(self) -> list[tuple[str, str]]:
        """Payloads off the protocol's contract so far (taken, so `close` does not raise)."""
        violations = list(self.room.violations)
        self.room.violations.clear()
        return violations

    async def close(self) -> None:
        """Stop answering, close the peer, the link and the socket. Safe twice."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._drop_connection()
        if not self._room_closed:
            self._room_closed = True
            await self.room.close()
