"""Two participants, A and B, on a loopback SFU (the `room` fixture in conftest.py), and the
check that media still flows between them after whatever a test did to the room."""

from __future__ import annotations

from collections.abc import Sequence

from server.ids import ParticipantId
from tests.media.peers import LoopbackRoom
from tests.waiting import wait_for

A, B = ParticipantId("p_a"), ParticipantId("p_b")
BOTH_KINDS = ("video", "audio")


async def still_flowing(room: LoopbackRoom, kinds: Sequence[str] = BOTH_KINDS) -> None:
    """A decodes more than ten of B's frames of each kind than when asked, and B of A's;
    counted from zero for a client peer that replaced the one asked about (a new peer
    connection). Ask for audio alone where video may fairly be paused: the downlink
    allocation never pauses audio."""
    asked = {A: room.clients[A], B: room.clients[B]}
    ways = [(me, other, kind) for me, other in ((A, B), (B, A)) for kind in kinds]
    before = {way: asked[way[0]].decoded(way[1], way[2]) for way in ways}

    def gained(me: ParticipantId, other: ParticipantId, kind: str) -> int:
        client = room.clients[me]
        start = before[me, other, kind] if client is asked[me] else 0
        return client.decoded(other, kind) - start

    await wait_for(
        lambda: all(gained(*way) > 10 for way in ways),
        40,
        f"{' and '.join(kinds)} to keep flowing both ways",
    )
