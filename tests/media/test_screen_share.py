"""A shared screen through the SFU with real aiortc peers: a second video of its publisher, on
an m-line of its own, decoded by every other peer and never by the server; it goes when it is
unshared, when the sharer's page answers it away, and with the sharer; a new peer connection of
the sharer keeps it, and a joiner gets it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from server.errors import ErrorCode, TriadError
from server.ids import ParticipantId
from server.rooms.media import MediaConfig, Sfu, TrackInfo
from tests.media.peers import ClientPeer, LoopbackRoom, counts
from tests.waiting import wait_for

A, B, C = ParticipantId("p_a"), ParticipantId("p_b"), ParticipantId("p_c")
# Three encoders, a screen beside them and six decoders share this process with the server.
PICTURE = {"size": (320, 240), "fps": 15}
SCREEN = (640, 360)


@pytest.fixture
async def room() -> AsyncIterator[LoopbackRoom]:
    harness = LoopbackRoom()
    harness.sfu = Sfu(MediaConfig(host_addresses=("127.0.0.1",)), harness.active_speaker_changed)
    yield harness
    await harness.sfu.close()
    for client in harness.clients.values():
        await client.close()
    assert not harness.failures


def last_offer_tracks(room: LoopbackRoom, pid: ParticipantId) -> set[tuple[str, str, str]]:
    """(participant, kind, source) of every line of the last offer `pid`'s peer answered."""
    client = room.clients[pid]
    return {(e.participant_id, e.kind, e.source) for e in client._tracks.values()}


def sees_screen(client: ClientPeer, publisher: ParticipantId, frames: int) -> bool:
    return client.decoded(publisher, "screen") >= frames


async def test_a_shared_screen_reaches_every_other_peer_and_goes_when_unshared(
    room: LoopbackRoom,
) -> None:
    clients = {pid: await room.join(pid, **PICTURE) for pid in (A, B, C)}
    sfu = room.sfu
    clients[A].share_screen(SCREEN)
    await sfu.share_screen(A)
    await sfu.share_screen(A)  # again: nothing changes
    assert sfu.sharing(A)
    assert not sfu.sharing(B)

    await wait_for(
        lambda: all(sees_screen(clients[p], A, 20) for p in (B, C)),
        60,
        f"B and C to decode A's screen {counts(clients)}",
    )
    for pid in (B, C):
        client = clients[pid]
        assert client.screen_sizes[A] == {SCREEN}  # the screen, not the camera, on that tile
        assert client.sizes[A] == {PICTURE["size"]}
        assert (A, "video", "screen") in last_offer_tracks(room, pid)
        assert (A, "video", "camera") in last_offer_tracks(room, pid)
    # A is asked for it on a line of its own, and never gets its own screen back.
    assert (A, "video", "screen") in last_offer_tracks(room, A)
    assert clients[A].decoded(A, "screen") == 0
    stats = sfu.stats()
    assert stats.decoded_frames == 0
    assert stats.received_frames[(A, "screen")] > 0
    assert stats.forwarded_frames[(A, "screen")] > 0
    # Its camera goes on beside it.
    cameras = {pid: clients[pid].decoded(A, "video") for pid in (B, C)}
    await wait_for(
        lambda: all(clients[p].decoded(A, "video") > cameras[p] + 10 for p in (B, C)),
        30,
        "A's camera beside its screen",
    )

    await sfu.unshare_screen(A)
    await sfu.unshare_screen(A)  # again: nothing changes
    assert not sfu.sharing(A)
    for pid in (A, B, C):
        await wait_for(
            lambda pid=pid: all(
                source != "screen" for _, _, source in last_offer_tracks(room, pid)
            ),
            20,
            f"{pid}'s offer without the screen",
        )
    # Nothing of it is forwarded any more; the cameras still are.
    forwarded = sfu.stats().forwarded_frames[(A, "screen")]
    cameras = {pid: clients[pid].decoded(A, "video") for pid in (B, C)}
    await wait_for(
        lambda: all(clients[p].decoded(A, "video") > cameras[p] + 20 for p in (B, C)),
        30,
        "A's camera after the share",
    )
    assert sfu.stats().forwarded_frames[(A, "screen")] == forwarded
    # The lines are kept for the next share: the SDP does not grow with each one.
    lines = len(clients[B].pc.getTransceivers())
    clients[A].stop_screen()
    clients[C].share_screen(SCREEN)
    await sfu.share_screen(C)
    await wait_for(lambda: sees_screen(clients[B], C, 10), 60, "B to decode C's screen")
    await sfu.unshare_screen(C)
    assert len(clients[B].pc.getTransceivers()) == lines


async def test_a_joiner_gets_the_screen_and_it_goes_with_its_sharer(room: LoopbackRoom) -> None:
    a, _ = await room.join(A, **PICTURE), await room.join(B, **PICTURE)
    a.share_screen(SCREEN)
    await room.sfu.share_screen(A)
    c = await room.join(C, **PICTURE)
    await wait_for(lambda: sees_screen(c, A, 20), 60, "the joiner to decode A's screen")
    assert (A, "video", "screen") in last_offer_tracks(room, C)

    await room.sfu.remove(A)
    await a.close()
    assert not room.sfu.sharing(A)
    for pid in (B, C):
        assert all(who != A for who, _, _ in last_offer_tracks(room, pid))
    seen = c.decoded(B, "video")
    await wait_for(lambda: c.decoded(B, "video") > seen + 10, 30, "the others' media after it")


async def test_the_screen_survives_a_new_peer_connection_and_goes_when_answered_away(
    room: LoopbackRoom,
) -> None:
    a, b = await room.join(A, **PICTURE), await room.join(B, **PICTURE)
    a.share_screen(SCREEN)
    await room.sfu.share_screen(A)
    await wait_for(lambda: sees_screen(b, A, 10), 60, "B to decode A's screen")

    # A's peer connection is replaced (a restart): the page keeps its capture and sends it on
    # the new one (LoopbackRoom hands the new client peer the screen, as a page keeps its track).
    assert await room.sfu.restart(A, 0) == 1
    assert room.sfu.sharing(A)
    seen = b.decoded(A, "screen")
    await wait_for(lambda: sees_screen(b, A, seen + 10), 60, "A's screen from its new connection")
    assert room.clients[A] is not a

    # The page's capture ends (the tab it showed closed); at the next offer it answers the
    # screen's line inactive, and the screen is no longer published.
    room.clients[A].stop_screen()
    await room.join(C, **PICTURE)  # any renegotiation
    await wait_for(lambda: not room.sfu.sharing(A), 20, "the screen answered away")
    for pid in (A, B, C):
        await wait_for(
            lambda pid=pid: all(s != "screen" for _, _, s in last_offer_tracks(room, pid)),
            20,
            f"{pid}'s offer without the screen",
        )


async def test_only_a_participant_with_media_shares_and_only_a_video_is_a_screen() -> None:
    sfu = Sfu(MediaConfig(host_addresses=("127.0.0.1",)))
    try:
        with pytest.raises(TriadError) as refused:
            await sfu.share_screen(A)
        assert refused.value.code is ErrorCode.PARTICIPANT_NOT_FOUND
        await sfu.unshare_screen(A)  # nothing to stop: a no-op
        assert not sfu.sharing(A)
    finally:
        await sfu.close()
    with pytest.raises(ValueError, match="a shared screen is a video"):
        TrackInfo("0", A, "audio", screen=True)
