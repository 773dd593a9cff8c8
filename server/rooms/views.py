"""What participants are sent: the room's state on joining, the lobby, offers; and sending an
event to a set of them. Every payload is a model of `events.py`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..auth.roles import Role, is_host
from ..consults.care import CareState
from ..consults.presence import Person
from ..ids import ConsultId, ParticipantId
from . import events
from .media import Offer
from .media.ice import as_json
from .occupant import Occupant, Place
from .ports import Channel, Fanout


def room_state(
    consult_id: ConsultId,
    *,
    live: bool,
    you: Occupant,
    occupants: Iterable[Occupant],
    active_speaker: ParticipantId | None,
    pc: int,
    ice_servers: list[dict[str, Any]],
    care: CareState,
    share: events.ShareView,
) -> events.RoomState:
    host = is_host(you.role)
    everyone = list(occupants)
    return events.RoomState(
        consult=events.ConsultSummary(id=consult_id, status="live" if live else "scheduled"),
        you=you.view(),
        participants=[o.view() for o in everyone],
        lobby=[o.id for o in everyone if o.place is Place.LOBBY] if host else [],
        active_speaker=active_speaker,
        ice_servers=[events.IceServer.model_validate(server) for server in ice_servers],
        pc=pc,
        consent=events.ConsentView(**care.consent_public()),
        # Clinicians only: the client never sees their own flag raised to others.
        safety_flags=[events.SafetyFlag.model_validate(f) for f in care.safety_flags]
        if host
        else [],
        presence_pending=list(pending_presence(care, you)),
        share=share,
    )


def pending_presence(care: CareState, occupant: Occupant) -> tuple[events.PendingPresence, ...]:
    """The same-room declarations `occupant` may confirm or attest (`presence.Pending`)."""
    return tuple(
        events.PendingPresence(declarer_id=p.declarer.id, participant_id=p.declared.id)
        for p in care.pending_for(Person(occupant.id, occupant.role))
    )


def lobby(occupants: Iterable[Occupant], may_enter: Callable[[Role], bool]) -> events.Lobby:
    """The hosts' view of the lobby: who waits, and whether consent lets them in yet."""
    return events.Lobby(
        waiting=[
            events.WaitingParticipant(**o.view().model_dump(), consent=may_enter(o.role))
            for o in occupants
            if o.place is Place.LOBBY
        ]
    )


def offer_message(offer: Offer, pc: int) -> events.SignalOffer:
    tracks = [
        events.TrackInfo(
            mid=t.mid,
            participant_id=t.participant_id,
            kind=t.kind,
            source="screen" if t.screen else "microphone" if t.kind == "audio" else "camera",
        )
        for t in offer.tracks
    ]
    ice = [events.IceServer.model_validate(s) for s in as_json(offer.ice_servers)]
    return events.SignalOffer(sdp=offer.sdp, tracks=tracks, pc=pc, ice_servers=ice or None)


@dataclass(frozen=True)
class ChannelMedia:
    """A participant's connection as their media session sees it (a `MediaSink`): each offer
    goes out as a `signal` numbered with its peer connection; a pause of another's video for
    them, or its end, as `media-quality` (their page shows it on that tile)."""

    channel: Channel

    async def send_offer(self, offer: Offer, *, generation: int) -> None:
        await self.channel.send(offer_message(offer, generation))

    async def send_media_quality(
        self, publisher: ParticipantId, *, video_paused: bool, screen: bool = False
    ) -> None:
        await self.channel.send(
            events.MediaQuality(
                participant_id=publisher,
                video="paused" if video_paused else "playing",
                reason="weak-connection" if video_paused else None,
                source="screen" if screen else "camera",
            )
        )


async def send_each(
    occupants: Iterable[Occupant],
    message: events.ServerEvent,
    *,
    skip: ParticipantId | None = None,
) -> None:
    """`message` to each connected one of `occupants` but `skip`: once per `Fanout` their
    connections go through (one, in a running server)."""
    by_fanout: dict[Fanout, list[Channel]] = {}
    for occupant in occupants:
        if occupant.id != skip and occupant.channel is not None:
            channel = occupant.channel
            by_fanout.setdefault(channel.fanout, []).append(channel)
    for fanout, channels in by_fanout.items():
        await fanout.send(channels, message)
