"""The decode/re-encode baseline (`forwarding="relay"`), for the benchmark only.

The publisher's receiver decodes as aiortc does by default; aiortc's MediaRelay fans the decoded
frames out and each subscriber's sender encodes them again. It exists so `bench/sfu.py` can
measure what encoded forwarding saves, in the same run.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiortc import MediaStreamTrack
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError
from av.frame import Frame
from av.packet import Packet

from server.ids import ParticipantId

from .stats import Counters, Kind


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

    def request_keyframe(self, *, new_subscriber: bool = False) -> None:
        """Each subscriber's own encoder answers PLI in this mode."""

    async def close(self) -> None:
        for slot in list(self._slots):
            slot.detach()


class RelaySlotTrack(MediaStreamTrack):
    """One subscriber's send slot in relay mode: reads decoded frames from a relay proxy."""

    def __init__(self, kind: Kind) -> None:
        super().__init__()
        self.kind = kind
        self._publication: RelayPublication | None = None
        self._proxy: MediaStreamTrack | None = None
        self._waiter: asyncio.Future[None] | None = None

    @property
    def publication(self) -> RelayPublication | None:
        return self._publication

    def attach(self, publication: RelayPublication) -> None:
        self.detach()
        self._publication = publication
        publication.attach(self)
        self.wake()

    def detach(self) -> None:
        if self._publication is not None:
            self._publication.detach(self)
            self._publication = None
        if self._proxy is not None:
            self._proxy.stop()
            self._proxy = None

    def wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def request_keyframe(self) -> None:
        """Not used: the sender keeps aiortc's own keyframe handling in relay mode."""

    async def recv(self) -> Frame | Packet[Any]:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            publication = self._publication
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
