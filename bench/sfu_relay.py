"""The decode/re-encode baseline of `bench/sfu.py` (`--modes relay`): the SFU aiortc's examples
suggest, kept here so the bench measures what the server's encoded forwarding saves, in the
same run. Each publisher's receiver decodes as aiortc does by default; aiortc's MediaRelay fans
the decoded frames out and each subscriber's sender encodes them again.

It answers the same calls the bench makes of the server's `Sfu` (`add`, `remove`, `answer`,
`stats`, `close`), offers through the same `MediaSink`, and negotiates the same way (the server
offers, one offer outstanding per peer, a send slot per remote track, reused when its publisher
leaves). Nothing else: no answer checks, no restarts, no recovery. Loopback only, as the bench,
which imports this module once it has put the repository on `sys.path`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError
from av.frame import Frame
from av.packet import Packet

from server.ids import ParticipantId
from server.rooms.media import (
    MediaConfig,
    MediaSink,
    Offer,
    SfuStats,
    TrackInfo,
    seam,
)
from server.rooms.media.codecs import codec_preferences
from server.rooms.media.ice import rtc_ice_servers
from server.rooms.media.offers import KINDS
from server.rooms.media.stats import Counters, Kind


class _CountingTrack(MediaStreamTrack):
    """The publisher's decoded track, counting each frame the server decoded."""

    def __init__(self, source: MediaStreamTrack, counters: Counters) -> None:
        super().__init__()
        self.kind = source.kind
        self._source = source
        self._counters = counters

    async def recv(self) -> Frame | Packet[Any]:
        frame = await self._source.recv()
        self._counters.decoded_frames += 1
        return frame


class RelayPublication:
    """One publisher's decoded track and its MediaRelay; the subscribers' slots wait for it."""

    def __init__(self, publisher: ParticipantId, kind: Kind, counters: Counters) -> None:
        self.publisher = publisher
        self.kind: Kind = kind
        self._counters = counters
        self.relay = MediaRelay()
        self.source: MediaStreamTrack | None = None
        self._slots: set[RelaySlotTrack] = set()

    def set_source(self, track: MediaStreamTrack) -> None:
        if self.source is None:
            self.source = _CountingTrack(track, self._counters)
            for slot in self._slots:
                slot.wake()

    def attach(self, slot: RelaySlotTrack) -> None:
        self._slots.add(slot)

    def detach(self, slot: RelaySlotTrack) -> None:
        self._slots.discard(slot)

    def count_forwarded(self) -> None:
        self._counters.forwarded[(self.publisher, self.kind)] += 1

    def close(self) -> None:
        for slot in list(self._slots):
            slot.detach()


class RelaySlotTrack(MediaStreamTrack):
    """One subscriber's send slot: reads decoded frames from a relay proxy (the sender encodes
    them, and answers PLI with its own encoder)."""

    def __init__(self, kind: Kind) -> None:
        super().__init__()
        self.kind = kind
        self.publication: RelayPublication | None = None
        self._proxy: MediaStreamTrack | None = None
        self._waiter: asyncio.Future[None] | None = None

    def attach(self, publication: RelayPublication) -> None:
        self.detach()
        self.publication = publication
        publication.attach(self)
        self.wake()

    def detach(self) -> None:
        if self.publication is not None:
            self.publication.detach(self)
            self.publication = None
        if self._proxy is not None:
            self._proxy.stop()
            self._proxy = None

    def wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def recv(self) -> Frame | Packet[Any]:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            publication = self.publication
            if self._proxy is None and publication is not None and publication.source:
                self._proxy = publication.relay.subscribe(publication.source, buffered=False)
            if self._proxy is None:
                self._waiter = asyncio.get_running_loop().create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None
                continue
            try:
                frame = await self._proxy.recv()
            except MediaStreamError:
                # The publisher's decoded track ended (it left): idle until re-attached.
                self._proxy = None
                self.detach()
                continue
            if publication is not None:
                publication.count_forwarded()
            return frame

    def stop(self) -> None:
        self.detach()
        super().stop()
        self.wake()


class RelayPeer:
    """One participant's peer connection: their audio and video in on two recvonly lines,
    everybody else's out on sendonly slots."""

    def __init__(self, pid: ParticipantId, config: MediaConfig, counters: Counters) -> None:
        self.pid = pid
        self.pc = RTCPeerConnection(
            RTCConfiguration(
                iceServers=rtc_ice_servers(config.ice_servers),
                bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
            )
        )
        self._receivers: dict[Kind, RTCRtpTransceiver] = {}
        self.publications: dict[Kind, RelayPublication] = {}
        for kind in KINDS:
            transceiver = self.pc.addTransceiver(kind, direction="recvonly")
            transceiver.setCodecPreferences(codec_preferences(kind))
            self._receivers[kind] = transceiver
            self.publications[kind] = RelayPublication(pid, kind, counters)
        seam.restrict_host_candidates(self.pc, config.host_addresses, config.port_range)
        self._slots: list[tuple[RTCRtpTransceiver, RelaySlotTrack]] = []
        self._pending = False
        self._offer_again = False

    def subscribe(self, publication: RelayPublication) -> None:
        kind = publication.kind
        free = [s for s in self._slots if s[1].kind == kind and s[1].publication is None]
        if free:
            transceiver, track = free[0]
        else:
            transceiver = self.pc.addTransceiver(kind, direction="sendonly")
            transceiver.setCodecPreferences(codec_preferences(kind))
            track = RelaySlotTrack(kind)
            self._slots.append((transceiver, track))
        transceiver.direction = "sendonly"
        track.attach(publication)
        seam.set_stream_id(transceiver.sender, publication.publisher)
        transceiver.sender.replaceTrack(track)

    def unsubscribe(self, publisher: ParticipantId) -> None:
        for transceiver, track in self._slots:
            if track.publication is not None and track.publication.publisher == publisher:
                track.detach()
                transceiver.direction = "inactive"

    def track_map(self) -> tuple[TrackInfo, ...]:
        tracks = [TrackInfo(t.mid, self.pid, kind) for kind, t in self._receivers.items() if t.mid]
        for transceiver, track in self._slots:
            publication = track.publication
            if publication is not None and transceiver.mid is not None:
                tracks.append(TrackInfo(transceiver.mid, publication.publisher, publication.kind))
        return tuple(tracks)

    async def make_offer(self) -> Offer | None:
        if self._pending:
            self._offer_again = True
            return None
        await self.pc.setLocalDescription(await self.pc.createOffer())
        self._pending = True
        return Offer(self.pc.localDescription.sdp, self.track_map())

    async def accept_answer(self, sdp: str) -> bool:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        self._pending = False
        for kind, transceiver in self._receivers.items():
            if transceiver.receiver.track is not None:
                self.publications[kind].set_source(transceiver.receiver.track)
        again, self._offer_again = self._offer_again, False
        return again

    async def close(self) -> None:
        for _, track in self._slots:
            track.stop()
        for publication in self.publications.values():
            publication.close()
        await self.pc.close()


class RelaySfu:
    """One bench room in relay mode."""

    def __init__(self, config: MediaConfig) -> None:
        self._config = config
        self._counters = Counters()
        self._peers: dict[ParticipantId, RelayPeer] = {}
        self._sinks: dict[ParticipantId, MediaSink] = {}
        self._lock = asyncio.Lock()

    async def add(self, pid: ParticipantId, connection: MediaSink) -> None:
        async with self._lock:
            peer = RelayPeer(pid, self._config, self._counters)
            for other in self._peers.values():
                for publication in other.publications.values():
                    peer.subscribe(publication)
                for publication in peer.publications.values():
                    other.subscribe(publication)
            self._peers[pid] = peer
            self._sinks[pid] = connection
            offers = [(p.pid, await p.make_offer()) for p in self._peers.values()]
        await self._deliver(offers)

    async def remove(self, pid: ParticipantId) -> None:
        async with self._lock:
            peer = self._peers.pop(pid, None)
            self._sinks.pop(pid, None)
            if peer is None:
                return
            for other in self._peers.values():
                other.unsubscribe(pid)
            await peer.close()
            offers = [(p.pid, await p.make_offer()) for p in self._peers.values()]
        await self._deliver(offers)

    async def answer(self, pid: ParticipantId, generation: int, sdp: str) -> None:
        async with self._lock:
            peer = self._peers[pid]
            offers = [(pid, await peer.make_offer())] if await peer.accept_answer(sdp) else []
        await self._deliver(offers)

    def stats(self) -> SfuStats:
        return self._counters.snapshot(peers=len(self._peers))

    async def close(self) -> None:
        async with self._lock:
            peers, self._peers = list(self._peers.values()), {}
            for peer in peers:
                await peer.close()

    async def _deliver(self, offers: list[tuple[ParticipantId, Offer | None]]) -> None:
        for pid, offer in offers:
            sink = self._sinks.get(pid)
            if offer is not None and sink is not None:
                await sink.send_offer(offer, generation=0)
