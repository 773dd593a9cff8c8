"""Bad offers/answers/candidates get coded errors; the peer and the room carry on."""

from __future__ import annotations

import pytest

from server.errors import ErrorCode, TriadError
from server.ids import ParticipantId
from tests.media.pair import A, B, still_flowing
from tests.media.peers import LoopbackRoom
from tests.waiting import wait_for

C = ParticipantId("p_c")


async def expect(code: ErrorCode, call: object) -> None:
    with pytest.raises(TriadError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.code == code


async def test_answers_without_a_pending_offer_or_participant(room: LoopbackRoom) -> None:
    sfu = room.sfu
    answer = room.clients[A].pc.localDescription.sdp
    await expect(ErrorCode.NO_PENDING_OFFER, sfu.answer(A, 0, answer))
    await expect(ErrorCode.PARTICIPANT_NOT_FOUND, sfu.answer(ParticipantId("p_x"), 0, answer))
    await expect(ErrorCode.PARTICIPANT_NOT_FOUND, sfu.add_candidate(ParticipantId("p_x"), 0, None))
    await expect(ErrorCode.SDP_INVALID, sfu.answer(A, 0, "v=0\r\n" + "a=x\r\n" * 20_000))
    await still_flowing(room)


async def test_bad_answers_keep_the_offer_pending_and_a_good_one_still_works(
    room: LoopbackRoom,
) -> None:
    sfu, a = room.sfu, room.clients[A]
    room.hold.add(A)
    await room.join(C)
    offer = room.held.pop(A)

    await expect(ErrorCode.SDP_INVALID, sfu.answer(A, 0, "this is not SDP"))
    await expect(ErrorCode.SDP_INVALID, sfu.answer(A, 0, ""))
    await expect(ErrorCode.SDP_INVALID, sfu.answer(A, 0, 42))  # type: ignore[arg-type]
    await expect(ErrorCode.SDP_INVALID, sfu.answer(A, 0, "v=0\r\n" + "x" * 70_000))
    # A well-formed answer to another offer (the previous one): media sections do not match.
    await expect(ErrorCode.SDP_INVALID, sfu.answer(A, 0, a.pc.localDescription.sdp))
    # An answer with its fingerprint cut out.
    good = await a.handle_offer(offer.sdp, offer.tracks)
    stripped = "\r\n".join(x for x in good.split("\r\n") if not x.startswith("a=fingerprint"))
    await expect(ErrorCode.SDP_INVALID, sfu.answer(A, 0, stripped))

    # A change while the offer is pending is queued: C leaves before A answers.
    room.hold.discard(A)
    await sfu.remove(C)
    await room.clients.pop(C).close()
    offers = a.offers
    await sfu.answer(A, 0, good)
    await wait_for(lambda: a.offers > offers, 20, "the queued offer after the answer")
    assert a.remote_mid(C, "video") is None
    await still_flowing(room)


@pytest.mark.parametrize(
    "candidate",
    [
        {"candidate": "candidate:garbage", "sdpMid": "0"},
        {"candidate": 5, "sdpMid": "0"},
        {"candidate": "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host", "sdpMid": "99"},
        {"candidate": "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host", "sdpMid": 0},
        {"candidate": "candidate:1 1 udp 2130706431 evil.example 9 typ host", "sdpMid": "0"},
        {"candidate": "candidate:1 1 tcp 2130706431 127.0.0.1 9 typ host", "sdpMid": "0"},
        {"candidate": "candidate:" + "1" * 2000, "sdpMid": "0"},
        {"sdpMid": "0"},
        "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host",
    ],
)
async def test_bad_candidates(room: LoopbackRoom, candidate: object) -> None:
    await expect(ErrorCode.CANDIDATE_INVALID, room.sfu.add_candidate(A, 0, candidate))
    await still_flowing(room)


async def test_good_candidates_are_taken(room: LoopbackRoom) -> None:
    good = {"candidate": "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host", "sdpMid": "0"}
    await room.sfu.add_candidate(A, 0, good)
    await room.sfu.add_candidate(A, 0, {"candidate": "", "sdpMid": "0"})
    await room.sfu.add_candidate(B, 0, None)
    await still_flowing(room)
