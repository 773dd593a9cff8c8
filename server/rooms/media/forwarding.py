"""Encoded-frame forwarding: one Publication per published track, one ForwardTrack per slot.

A publisher's receiver (diverted by `seam.divert_receiver`) hands each assembled encoded frame
to its Publication, which wraps it once in an `av.Packet` and pushes it to every subscribed
ForwardTrack. A subscriber's RTCRtpSender pulls packets from its ForwardTrack with `recv()` and
packetises them with the codec's `pack()`: no decoder, no encoder.

Timing: the packet's `pts` is the publisher's own RTP timestamp (the seam keeps it un-rebased)
in the codec clock (`time_base` 1/90000 for VP8, 1/48000 for Opus), so the subscriber sees the
publisher's frame spacing exactly, shifted by the sender's random origin. The sender's RTCP
sender reports map those timestamps to wall clock at forwarding time, and audio and video of one
publisher cross the SFU with the same (small) delay, so their relative timing survives; both
senders carry the publisher's id as their stream id so browsers treat them as one sync group.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from fractions import Fraction
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCRtpReceiver
from aiortc.mediastreams import MediaStreamError
from av.packet import Packet

from server.ids import ParticipantId

from . import seam
from .stats import Counters, Kind

# Minimum spacing of keyframe requests made for subscribers that just started.
_NEW_SUBSCRIBER_PLI_FLOOR = 0.1
_TIME_BASE = {"audio": Fraction(1, 48000), "video": Fraction(1, 90000)}


class Publication:
    """One publisher's audio or video track: the fan-out point."""

    def __init__(
        self,
        publisher: ParticipantId,
        kind: Kind,
        receiver: RTCRtpReceiver,
        counters: Counters,
        keyframe_interval: float,
    ) -> None:
        self.publisher = publisher
        self.kind: Kind = kind
        self._key = (publisher, kind)
        self._receiver = receiver
        self._counters = counters
        self._time_base = _TIME_BASE[kind]
        self._subscribers: set[ForwardTrack] = set()
        self._keyframe_interval = keyframe_interval
        self._last_pli = float("-inf")
        self._pli_timer: asyncio.TimerHandle | None = None
        self._pli_tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def on_frame(self, data: bytes, timestamp: int) -> None:
        """One encoded frame from the publisher (called by the diverted receiver)."""
        self._counters.received[self._key] += 1
        if not self._subscribers:
            return
        packet = av.Packet(data)
        packet.pts = timestamp
        packet.time_base = self._time_base
        # VP8 frame tag (RFC 6386 9.1): bit 0 of the first byte is 0 on a key frame.
        keyframe = self.kind == "video" and bool(data) and not data[0] & 0x01
        for track in self._subscribers:
            track.push(packet, keyframe)

    def attach(self, track: ForwardTrack) -> None:
        self._subscribers.add(track)

    def detach(self, track: ForwardTrack) -> None:
        self._subscribers.discard(track)

    def count_forwarded(self) -> None:
        self._counters.forwarded[self._key] += 1

    def count_dropped(self, frames: int = 1) -> None:
        self._counters.dropped[self._key] += frames

    def request_keyframe(self, *, new_subscriber: bool = False) -> None:
        """Ask the publisher for a keyframe, at most once per `keyframe_interval`.

        A request inside the interval is not lost: one PLI goes out when the interval ends.
        A subscriber that just started has nothing to show until a keyframe comes, so its
        request only waits out a short floor (coalescing the subscribers of one join); the
        subscriber-driven PLI/FIR are the ones that need the full limit.
        """
        if self.kind != "video" or self._closed:
            return
        self._counters.keyframe_requests_received[self.publisher] += 1
        loop = asyncio.get_running_loop()
        interval = _NEW_SUBSCRIBER_PLI_FLOOR if new_subscriber else self._keyframe_interval
        due = max(loop.time(), self._last_pli + interval)
        if due <= loop.time():
            self._send_pli()
        elif self._pli_timer is None or due < self._pli_timer.when():
            if self._pli_timer is not None:
                self._pli_timer.cancel()
            self._pli_timer = loop.call_at(due, self._send_pli)

    def remind(self) -> None:
        """A subscriber still waits for a keyframe: ask again once the interval has passed. A
        lost PLI or keyframe, or a request the encoder declined, must not leave a tile black
        until the publisher's next natural keyframe (libvpx's is minutes away)."""
        if self.kind != "video" or self._closed or self._pli_timer is not None:
            return
        if asyncio.get_running_loop().time() >= self._last_pli + self._keyframe_interval:
            self._send_pli()

    def _send_pli(self) -> None:
        self._pli_timer = None
        if self._closed:
            return
        self._last_pli = asyncio.get_running_loop().time()
        task = asyncio.ensure_future(self._pli())
        self._pli_tasks.add(task)
        task.add_done_callback(self._pli_tasks.discard)

    async def _pli(self) -> None:
        try:
            if await seam.send_pli(self._receiver):
                self._counters.keyframe_requests_sent[self.publisher] += 1
            else:
                # Nothing received yet, so nothing was sent: its first frame is a keyframe
                # anyway, and the next request should not wait out an interval.
                self._last_pli = float("-inf")
        except ConnectionError:
            pass  # transport not up yet or gone: the publisher's first frame is a keyframe

    async def close(self) -> None:
        self._closed = True
        if self._pli_timer is not None:
            self._pli_timer.cancel()
            self._pli_timer = None
        for task in list(self._pli_tasks):
            task.cancel()
        await asyncio.gather(*self._pli_tasks, return_exceptions=True)
        for track in list(self._subscribers):
            track.detach()


class ForwardTrack(MediaStreamTrack):
    """What one subscriber's sender reads for one send slot (mid).

    The track lives as long as the slot: when its publisher leaves it is detached and idles,
    and a later publisher can be attached. (aiortc's sender ends its send loop for good when a
    track raises MediaStreamError, so the track must outlive publishers for a slot to be reused.)
    """

    def __init__(self, kind: Kind, max_queue: int) -> None:
        super().__init__()
        self.kind = kind
        self._max_queue = max_queue
        self._queue: deque[Packet[Any]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._publication: Publication | None = None
        self._pulling = False  # the sender has started (transport connected)
        self._awaiting_keyframe = kind == "video"

    @property
    def publication(self) -> Publication | None:
        return self._publication

    def attach(self, publication: Publication) -> None:
        self.detach()
        # A new id, so the next offer's msid names a new track for this slot.
        self._id = str(uuid.uuid4())
        self._publication = publication
        self._awaiting_keyframe = self.kind == "video"
        publication.attach(self)
        if self._pulling:
            publication.request_keyframe(new_subscriber=True)

    def detach(self) -> None:
        if self._publication is not None:
            self._publication.detach(self)
            self._publication = None
        self._queue.clear()

    def push(self, packet: Packet[Any], keyframe: bool) -> None:
        publication = self._publication
        if publication is None:
            return
        if not self._pulling:
            # Nobody reads yet (ICE/DTLS still connecting): anything queued now would be stale.
            publication.count_dropped()
            return
        queue = self._queue
        if self._awaiting_keyframe:
            if not keyframe:
                publication.count_dropped()
                publication.remind()
                return
            self._awaiting_keyframe = False
        elif len(queue) >= self._max_queue:
            if self.kind == "video":
                # Too far behind: drop the backlog and resume at a keyframe, never buffer on.
                publication.count_dropped(len(queue))
                queue.clear()
                if not keyframe:
                    self._awaiting_keyframe = True
                    publication.count_dropped()
                    publication.request_keyframe()
                    return
            else:
                queue.popleft()
                publication.count_dropped()
        queue.append(packet)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def recv(self) -> Packet[Any]:
        if not self._pulling:
            self._pulling = True
            # The sender starts once the subscriber's transport is connected: the moment a
            # keyframe is useful (asking earlier is what delays first video, livekit#747).
            if self._publication is not None:
                self._publication.request_keyframe(new_subscriber=True)
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self.readyState != "live":
            raise MediaStreamError
        packet = self._queue.popleft()
        if self._publication is not None:
            self._publication.count_forwarded()
        return packet

    def request_keyframe(self) -> None:
        """The subscriber sent PLI/FIR for this slot."""
        if self._publication is not None:
            self._publication.request_keyframe()

    def stop(self) -> None:
        self.detach()
        super().stop()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
