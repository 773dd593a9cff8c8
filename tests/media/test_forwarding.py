"""The forwarding track's bounded queue and the active-speaker policy, without a network."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError

from server.ids import ParticipantId
from server.rooms.media.forwarding import ForwardTrack, Publication
from server.rooms.media.speaker import SpeakerDetector
from server.rooms.media.stats import Counters

P = ParticipantId("p_pub")
KEY = b"\x00" + bytes(20)  # VP8 frame tag bit 0 clear: keyframe
DELTA = b"\x01" + bytes(20)


@pytest.fixture
async def publication() -> AsyncIterator[Publication]:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
    receiver = pc.addTransceiver("video", direction="recvonly").receiver
    pub = Publication(P, "video", receiver, Counters(), keyframe_interval=1.0)
    yield pub
    await pub.close()
    await pc.close()


async def test_a_slow_subscriber_is_resynced_at_a_keyframe_not_buffered(
    publication: Publication,
) -> None:
    track = ForwardTrack("video", max_queue=5)
    track.attach(publication)
    publication.on_frame(KEY, 0)  # nobody pulls yet: dropped, not queued
    assert len(track._queue) == 0

    first = asyncio.ensure_future(track.recv())  # the sender starts pulling
    await asyncio.sleep(0)
    publication.on_frame(DELTA, 3000)  # no keyframe yet: useless to the decoder
    publication.on_frame(KEY, 6000)
    assert (await first).pts == 6000

    for n in range(40):  # the sender stalls while 40 deltas arrive
        publication.on_frame(DELTA, 9000 + n * 3000)
        assert len(track._queue) <= 5
    assert track._awaiting_keyframe
    publication.on_frame(DELTA, 999_000)
    assert len(track._queue) == 0
    publication.on_frame(KEY, 1_002_000)
    assert (await track.recv()).pts == 1_002_000
    counters = publication._counters
    assert counters.dropped[(P, "video")] >= 40
    assert counters.keyframe_requests_received[P] >= 2  # on start, and on the resync
    track.stop()


async def test_a_stopped_track_ends_the_sender_loop(publication: Publication) -> None:
    track = ForwardTrack("video", max_queue=5)
    track.attach(publication)
    waiting = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0)
    track.stop()
    with pytest.raises(MediaStreamError):
        await waiting
    assert publication._subscribers == set()


def test_active_speaker_needs_sound_and_a_clear_margin_to_switch() -> None:
    a, b = ParticipantId("p_a"), ParticipantId("p_b")
    detector = SpeakerDetector()
    changes = []
    t = 0.0
    for _ in range(100):  # a speaks at -20 dBov, b is silent
        t += 0.02
        if detector.observe(a, 20, t):
            changes.append(detector.active)
        if detector.observe(b, 127, t):
            changes.append(detector.active)
    assert changes == [a]
    for _ in range(100):  # b at -18 dBov: louder, but within the margin
        t += 0.02
        detector.observe(a, 20, t)
        detector.observe(b, 18, t)
    assert detector.active == a
    for _ in range(200):  # a stops; b keeps talking
        t += 0.02
        detector.observe(a, 127, t)
        detector.observe(b, 18, t)
    assert detector.active == b
    for _ in range(200):  # everyone quiet past the hold time
        t += 0.02
        detector.observe(a, 127, t)
        detector.observe(b, 127, t)
    assert detector.active is None
    assert detector.forget(b, t) is False
