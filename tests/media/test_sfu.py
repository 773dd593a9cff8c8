"""The SFU with real aiortc client peers on loopback: forwarding, renegotiation, keyframes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import uvloop

from server.eventloop import running_loop_name
from server.ids import ParticipantId
from server.rooms.media import MediaConfig, Sfu
from server.rooms.media.seam import is_taken
from tests.media.peers import ClientPeer, LoopbackRoom, counts
from tests.waiting import wait_for

A, B, C = ParticipantId("p_a"), ParticipantId("p_b"), ParticipantId("p_c")
LOOPBACK = MediaConfig(host_addresses=("127.0.0.1",))
Join = Callable[..., Awaitable[ClientPeer]]


@pytest.fixture
async def room() -> AsyncIterator[LoopbackRoom]:
    harness = LoopbackRoom()
    harness.sfu = Sfu(LOOPBACK, harness.active_speaker_changed)
    yield harness
    await harness.sfu.close()
    for client in harness.clients.values():
        await client.close()
    assert not harness.failures


@pytest.fixture
def join(room: LoopbackRoom) -> Join:
    return room.join


def receives(client: ClientPeer, others: list[ParticipantId], frames: int = 10) -> bool:
    return all(
        client.decoded(o, "video") >= frames and client.decoded(o, "audio") >= frames
        for o in others
    )


async def test_three_peers_see_and_hear_each_other_without_server_decoding(
    room: LoopbackRoom, join: Join
) -> None:
    clients = {pid: await join(pid) for pid in (A, B, C)}

    def everyone() -> bool:
        return all(receives(c, [o for o in clients if o != pid], 20) for pid, c in clients.items())

    await wait_for(everyone, 40, "every peer to decode both others")
    for pid, client in clients.items():
        for other in clients:
            if other != pid:
                assert client.sizes[other] == {(640, 480)}, counts(clients)
        assert client.decoded(pid, "video") == 0  # nobody gets their own media back
    stats = room.sfu.stats()
    assert stats.decoded_frames == 0
    for pid in clients:
        assert stats.received_frames[(pid, "video")] > 0
        assert stats.forwarded_frames[(pid, "video")] > 0
        assert stats.forwarded_frames[(pid, "audio")] > 0
    # The forwarding path: every server receiver hands encoded frames on; no decoder thread.
    for session in room.sfu._sessions.values():
        for transceiver in session.peer.pc.getTransceivers():
            if transceiver.direction == "recvonly":
                assert is_taken(transceiver.receiver)
        # What the close log reports: both others' packets out, this one's in, a loopback RTT.
        summary = session.peer.summary()
        assert summary.received_packets > 0
        assert summary.sent_packets > summary.received_packets
        assert summary.refused_packets == 0
        assert 0 < summary.rtt_ms < 1000


@pytest.mark.asyncio(loop_factories=["uvloop"])
async def test_two_peers_exchange_media_on_uvloop(room: LoopbackRoom, join: Join) -> None:
    """`triad serve` runs on uvloop: aioice's datagram transports, DTLS, SRTP and the
    forwarding path must work on it as on asyncio's own loop."""
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
    assert running_loop_name() == "uvloop"
    a, b = await join(A), await join(B)
    await wait_for(lambda: receives(a, [B], 20) and receives(b, [A], 20), 40, "frames both ways")
    assert a.sizes[B] == {(640, 480)}
    assert b.sizes[A] == {(640, 480)}
    stats = room.sfu.stats()
    assert stats.decoded_frames == 0
    assert stats.forwarded_frames[(A, "video")] > 0
    assert stats.forwarded_frames[(B, "audio")] > 0


async def test_leave_and_rejoin_renegotiates_and_frames_resume(
    room: LoopbackRoom, join: Join
) -> None:
    a, b = await join(A), await join(B)
    c = await join(C)
    await wait_for(lambda: receives(a, [B, C]) and receives(b, [A, C]), 40, "first frames")
    offers_before = (a.offers, b.offers)

    await room.sfu.remove(C)
    await c.close()
    assert room.sfu.participants == (A, B)
    assert a.offers > offers_before[0]
    assert b.offers > offers_before[1]
    assert a.remote_mid(C, "video") is None

    seen = (a.decoded(C), b.decoded(C))
    rejoined = await room.join(C)
    await wait_for(
        lambda: a.decoded(C) >= seen[0] + 20 and b.decoded(C) >= seen[1] + 20,
        40,
        "frames from the rejoined peer",
    )
    await wait_for(lambda: receives(rejoined, [A, B]), 40, "the rejoined peer to receive")
    assert a.sizes[C] == {(640, 480)}
    # Slots are reused: the SDP does not grow with churn.
    assert len(a.pc.getTransceivers()) == 6


async def test_subscriber_pli_reaches_publisher_rate_limited(
    room: LoopbackRoom, join: Join
) -> None:
    a, b = await join(A), await join(B)
    await wait_for(lambda: receives(a, [B]) and receives(b, [A]), 40, "first frames")
    asked_before = room.sfu.stats().keyframe_requests_received.get(B, 0)
    sent_before = room.sfu.stats().keyframe_requests_sent.get(B, 0)
    plis_before = b.keyframe_requests

    for _ in range(5):  # a burst: one PLI now, at most one more when the interval ends
        assert await a.request_keyframe(B)
    await wait_for(lambda: b.keyframe_requests > plis_before, 20, "the PLI at the publisher")
    await wait_for(
        lambda: room.sfu.stats().keyframe_requests_received.get(B, 0) >= asked_before + 5,
        20,
        "the server to see five requests",
    )
    stats = room.sfu.stats()
    assert stats.keyframe_requests_sent[B] - sent_before <= 2
    assert b.keyframe_requests - plis_before <= 2


async def test_a_new_subscriber_asks_again_until_a_keyframe_comes(
    room: LoopbackRoom, join: Join
) -> None:
    """The publisher's encoder ignores the first keyframe request (as if the PLI were lost):
    the new subscriber must not stay black until the next natural keyframe (100 s away)."""
    a, b = await join(A), await join(B)
    await wait_for(lambda: receives(a, [B]) and receives(b, [A]), 40, "first frames")
    requests_before = b.keyframe_requests
    b.ignore_keyframe_requests = 1
    c = await join(C)
    await wait_for(lambda: b.keyframe_requests > requests_before + 1, 20, "a second request")
    await wait_for(lambda: c.decoded(B, "video") >= 10, 20, "video from B at the new subscriber")


async def test_active_speaker_follows_sound(room: LoopbackRoom, join: Join) -> None:
    await join(A, audio="silence")
    await join(B, audio="tone")
    await wait_for(lambda: room.sfu.active_speaker == B, 30, "B to be the active speaker")
    assert room.speakers[-1] == B
    assert A not in room.speakers
