"""Participants with media over the real Socket.IO server: a `RoomClient` whose offers a
`ClientPeer` (tests/media/peers.py) answers, as a browser does, and the waits the room media
tests share. The fixtures that hold them (`media_people`, `seated_media_people`) are in
tests/rooms/conftest.py."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, cast

from server.api.context import SERVICES
from server.rooms.media import Sfu
from tests.media.peers import AudioMode, ClientPeer, TrackMapEntry
from tests.roomclient import RoomClient
from tests.waiting import wait_for

if TYPE_CHECKING:  # the conftest imports this module for its fixtures
    from tests.rooms.conftest import People


class MediaParticipant:
    """A socket client whose offers a `ClientPeer` answers, as a browser does. `peer_options`
    go to each `ClientPeer` (a smaller or slower video where many peers share the CPU)."""

    def __init__(
        self,
        role: str,
        room: RoomClient,
        participant_id: str,
        audio: AudioMode = "tone",
        **peer_options: Any,
    ) -> None:
        self.role = role
        self.room = room
        self.participant_id = participant_id
        self.audio: AudioMode = audio
        self.peer_options = peer_options
        self.peer = self._new_peer()
        self.pc_generation = 0
        self.failures: list[BaseException] = []
        self._task = asyncio.get_running_loop().create_task(self._answer_offers())

    def _new_peer(self) -> ClientPeer:
        return ClientPeer(self.participant_id, audio=self.audio, **self.peer_options)

    async def _answer_offers(self) -> None:
        seen = 0
        while True:
            offer = await self.room.wait_event("signal", after=seen, within=3600)
            seen = self.room.events.index(("signal", offer)) + 1
            try:
                if offer["pc"] != self.pc_generation:  # the server started a new connection
                    await self.peer.close()
                    self.peer = self._new_peer()
                    self.pc_generation = offer["pc"]
                tracks = [TrackMapEntry(**t) for t in offer["tracks"]]
                answer = await self.peer.handle_offer(offer["sdp"], tracks)
                ack = await self.room.call(
                    "signal", {"type": "answer", "sdp": answer, "pc": offer["pc"]}
                )
                assert ack == {"ok": True}, ack
            except Exception as exc:  # surfaced by the test's teardown
                self.failures.append(exc)

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self.peer.close()
        assert not self.failures, self.failures


async def close_all(joined: dict[str, MediaParticipant]) -> None:
    for participant in joined.values():
        await participant.close()


async def enter(
    people: People,
    joined: dict[str, MediaParticipant],
    role: str,
    audio: AudioMode = "tone",
    **peer_options: Any,
) -> MediaParticipant:
    room = await people.connect(role)
    participant = MediaParticipant(role, room, people.id(role), audio, **peer_options)
    joined[role] = participant
    await room.join()
    return participant


def sees_and_hears(p: MediaParticipant, others: list[MediaParticipant], frames: int) -> bool:
    return all(
        p.peer.decoded(o.participant_id, "video") >= frames
        and p.peer.decoded(o.participant_id, "audio") >= frames
        for o in others
    )


async def both_flowing(a: MediaParticipant, b: MediaParticipant) -> None:
    await wait_for(
        lambda: sees_and_hears(a, [b], 10) and sees_and_hears(b, [a], 10), 45, "first frames"
    )


def room_sfu(client: Any, consult_id: str) -> Sfu:
    room = client.app[SERVICES].rooms.get(consult_id)
    assert room is not None
    return cast(Sfu, room.media)
