"""A participant's media session with real aiortc peers on loopback: each new peer connection
is one generation on, only the current one's answers, candidates and restarts count, a new
connection gets a new one, and a failed one is replaced for a connected participant only."""

from __future__ import annotations

from typing import Any

import pytest
from aiortc import RTCPeerConnection

from server.errors import ErrorCode, TriadError
from server.ids import ParticipantId
from server.rooms.media import Offer
from server.rooms.media.sfu import RECOVERY_GRACE
from tests.media.pair import A, B, still_flowing
from tests.media.peers import LoopbackConnection, LoopbackRoom
from tests.waiting import wait_for

C = ParticipantId("p_c")
# Flow is checked on audio, which the downlink allocation never pauses: what counts here is which
# peer connection carries media, not how much video a loaded machine lets through.
AUDIO = ("audio",)


async def expect(code: ErrorCode, call: Any) -> None:
    with pytest.raises(TriadError) as caught:
        await call
    assert caught.value.code == code


def server_pc(room: LoopbackRoom, pid: ParticipantId) -> RTCPeerConnection:
    pc: RTCPeerConnection = room.sfu._sessions[pid].peer.pc
    return pc


async def fail_server_side(pc: RTCPeerConnection) -> None:
    """What ICE consent expiry does to the server's side (aioice closes its connection, DTLS
    and then aiortc close the rest), without the 30 s of unanswered checks it takes."""
    ice = pc.getTransceivers()[0].receiver.transport.transport
    await ice._connection.close()
    await wait_for(lambda: pc.connectionState == "closed", 15, "the failure")


class Tap:
    """A connection that records the generation of each offer it is sent, then hands it on."""

    def __init__(self, inner: LoopbackConnection) -> None:
        self.inner = inner
        self.generations: list[int] = []

    async def send_offer(self, offer: Offer, *, generation: int) -> None:
        self.generations.append(generation)
        await self.inner.send_offer(offer, generation=generation)

    async def send_media_quality(
        self, publisher: ParticipantId, *, video_paused: bool, screen: bool = False
    ) -> None:
        await self.inner.send_media_quality(publisher, video_paused=video_paused, screen=screen)


async def test_only_the_current_peer_connection_is_answered_and_restarted(
    room: LoopbackRoom,
) -> None:
    sfu = room.sfu
    assert (sfu.generation(A), sfu.generation(B), sfu.generation(C)) == (0, 0, None)
    answer = room.clients[A].pc.localDescription.sdp
    await expect(ErrorCode.NO_PENDING_OFFER, sfu.answer(A, 1, answer))
    await expect(ErrorCode.NO_PENDING_OFFER, sfu.add_candidate(A, 1, None))
    await expect(ErrorCode.NO_PENDING_OFFER, sfu.restart(A, 1))  # not made yet
    await expect(ErrorCode.PARTICIPANT_NOT_FOUND, sfu.restart(C, 0))

    first = server_pc(room, A)
    assert await sfu.restart(A, 0) == 1
    assert first.connectionState == "closed"
    assert room.generation(A) == 1  # offered, answered by a new client peer
    await still_flowing(room, AUDIO)
    offers = len(room.generations[A])

    # Asked again for the replaced one (a retry racing the first): nothing new is made.
    assert await sfu.restart(A, 0) == 1
    assert len(room.generations[A]) == offers
    assert server_pc(room, A).connectionState == "connected"
    # Whatever still names the old peer connection is refused.
    await expect(ErrorCode.NO_PENDING_OFFER, sfu.answer(A, 0, answer))
    await expect(ErrorCode.NO_PENDING_OFFER, sfu.add_candidate(A, 0, None))
    # The other participant kept their peer connection and renegotiated on it.
    assert sfu.generation(B) == 0
    assert set(room.generations[B]) == {0}
    assert len(room.generations[B]) >= 3  # joined; A's old one dropped; A's new one added


async def test_a_new_connection_gets_a_new_peer_connection_and_the_old_one_no_offers(
    room: LoopbackRoom,
) -> None:
    sfu = room.sfu
    first = Tap(room.connection(A))
    await sfu.add(A, first)  # A connected again: a new peer connection for this connection
    assert first.generations == [1]
    await still_flowing(room, AUDIO)

    second = Tap(room.connection(A))
    await sfu.add(A, second)
    assert sfu.generation(A) == 2
    await room.join(C)  # a change everyone renegotiates
    await wait_for(lambda: room.clients[A].decoded(C, "audio") >= 10, 40, "C's audio at A")
    assert first.generations == [1]
    assert set(second.generations) == {2}
    assert len(second.generations) >= 2  # its peer connection's offer, then C's arrival
    await still_flowing(room, AUDIO)


async def test_the_servers_peer_connections_carry_no_bitrate_estimator(
    room: LoopbackRoom,
) -> None:
    """Every receiver of the server's peer connections, receiving or only there beside a
    sending slot, has had aiortc's unused estimator taken away (`seam.add_transceiver`)."""
    await still_flowing(room, AUDIO)
    for pid in (A, B):
        transceivers = server_pc(room, pid).getTransceivers()
        assert {t.direction for t in transceivers} >= {"recvonly", "sendonly"}
        for transceiver in transceivers:
            estimator = vars(transceiver.receiver)["_RTCRtpReceiver__remote_bitrate_estimator"]
            assert estimator is None, (pid, transceiver.kind, transceiver.direction)


async def test_a_failed_peer_connection_is_replaced_while_connected(room: LoopbackRoom) -> None:
    failing = server_pc(room, A)
    await fail_server_side(failing)
    await wait_for(lambda: room.generation(A) == 1, 15, "an offer for a new peer connection")
    assert room.sfu.generation(A) == 1
    assert server_pc(room, A) is not failing
    await still_flowing(room, AUDIO)
    assert room.sfu.generation(B) == 0


async def test_a_participant_not_connected_gets_a_new_peer_connection_when_back(
    room: LoopbackRoom,
) -> None:
    sfu = room.sfu
    sfu.disconnect(A)
    failing = server_pc(room, A)
    await fail_server_side(failing)
    # Nothing to offer to while they are away: the failed one stays theirs until they return.
    assert sfu.generation(A) == 0
    assert server_pc(room, A) is failing
    assert not sfu._tasks
    assert set(room.generations[A]) == {0}

    back = Tap(room.connection(A))
    await sfu.add(A, back)
    assert back.generations == [1]
    assert server_pc(room, A) is not failing
    await still_flowing(room, AUDIO)


async def test_a_page_that_closes_its_peer_connection_then_its_socket_gets_no_replacement(
    room: LoopbackRoom,
) -> None:
    """A reload: the page closes its peer connection (DTLS close_notify reaches the server at
    once) and its socket a moment later. The failure waits out RECOVERY_GRACE, by when the
    participant is gone: nothing is offered on the socket they left, and their next connection
    gets the next peer connection (generation 1, not 2)."""
    failing = server_pc(room, A)
    await room.clients[A].pc.close()
    await wait_for(lambda: failing.connectionState == "closed", 15, "the remote close")
    room.sfu.disconnect(A)  # the socket goes after the peer connection
    await wait_for(lambda: not room.sfu._tasks, RECOVERY_GRACE + 5, "the recovery's check")
    assert room.sfu.generation(A) == 0
    assert set(room.generations[A]) == {0}

    back = Tap(room.connection(A))
    await room.sfu.add(A, back)
    assert back.generations == [1]
    assert server_pc(room, A) is not failing


async def test_media_quality_news_reach_the_participants_connection_only(
    room: LoopbackRoom,
) -> None:
    """What A's downlink allocation decides about a publisher's video goes to A's connection;
    while A is away it is counted but sent nowhere. (News about X, a publisher no real pause
    can name, so the allocation running meanwhile cannot blur what is checked.)"""
    sfu = room.sfu
    x = ParticipantId("p_x")
    report = sfu._sessions[A].peer.downlink._on_quality  # what the allocation calls
    pauses = sfu.stats().video_pauses
    report((x, "video"), True)
    report((x, "screen"), True)  # X's shared screen: news of its own
    report((x, "video"), False)
    assert sfu.stats().video_pauses == pauses + 2  # no await in between: only these
    news = lambda: [q for q in room.quality if q[1] == x]  # noqa: E731
    await wait_for(lambda: len(news()) == 3, 5, "the news at A's connection")
    assert news() == [(A, x, "video", True), (A, x, "screen", True), (A, x, "video", False)]

    sfu.disconnect(A)
    pauses = sfu.stats().video_pauses
    report((x, "video"), True)
    assert sfu.stats().video_pauses == pauses + 1
    assert not sfu._tasks  # nothing on its way to a connection
    assert news() == [(A, x, "video", True), (A, x, "screen", True), (A, x, "video", False)]
