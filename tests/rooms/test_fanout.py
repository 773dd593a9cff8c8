"""An event for several participants goes out once per fanout (one `emit` to their sids in a
running server, so python-socketio encodes it once), to exactly the connected ones asked for."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from server.auth.roles import Role
from server.errors import ErrorCode
from server.ids import ParticipantId
from server.rooms.events import BriefUpdated, ServerEvent
from server.rooms.occupant import Occupant, Place
from server.rooms.ports import Channel
from server.rooms.views import send_each


@dataclass(eq=False)
class RecordingFanout:
    sent: list[tuple[list[str], str]] = field(default_factory=list)

    async def send(self, channels: Sequence[Channel], message: ServerEvent) -> None:
        self.sent.append(([c.name for c in channels], message.event))  # type: ignore[attr-defined]


@dataclass(eq=False)
class NamedChannel:
    name: str
    fanout: RecordingFanout

    async def send(self, message: ServerEvent) -> None:
        await self.fanout.send([self], message)

    async def close(self, code: ErrorCode | None = None, message: str = "") -> None:
        pass


def seat(name: str, channel: Channel | None) -> Occupant:
    return Occupant(ParticipantId(f"p_{name}"), Role.THERAPIST, name, Place.ROOM, channel)


async def test_one_send_per_fanout_to_the_connected_ones_but_the_skipped() -> None:
    server, other = RecordingFanout(), RecordingFanout()
    occupants = [
        seat("a", NamedChannel("a", server)),
        seat("b", NamedChannel("b", server)),
        seat("gone", None),  # within its seat grace: no connection
        seat("sender", NamedChannel("sender", server)),
        seat("c", NamedChannel("c", other)),
    ]
    await send_each(occupants, BriefUpdated(), skip=ParticipantId("p_sender"))
    assert server.sent == [(["a", "b"], BriefUpdated().event)]
    assert other.sent == [(["c"], BriefUpdated().event)]


async def test_nobody_to_send_to_sends_nothing() -> None:
    server = RecordingFanout()
    await send_each(
        [seat("sender", NamedChannel("sender", server))],
        BriefUpdated(),
        skip=ParticipantId("p_sender"),
    )
    assert server.sent == []
