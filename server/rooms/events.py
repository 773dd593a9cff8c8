"""Every event the server sends a participant's socket, as a typed model.

The room (and the notes fan-out it carries) builds these; the signaling layer sends them, and
`server/signaling/asyncapi.py` documents them. An event's wire name is its model's `event`.
Payloads are what the browser reads, so field names and shapes are part of the public contract
(docs/protocol.md): add fields, never rename one."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..auth.roles import Role
from ..errors import ErrorCode


class ServerEvent(BaseModel):
    """One server-to-client event; `event` is its Socket.IO event name."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    event: ClassVar[str]

    def wire(self) -> dict[str, Any]:
        """The payload as Socket.IO sends it (bytes stay bytes: binary attachments)."""
        return self.model_dump(mode="python", by_alias=True)


class Part(BaseModel):
    """A value inside an event."""

    model_config = ConfigDict(frozen=True, extra="forbid")


# -- values ---------------------------------------------------------------------------------------


class ParticipantView(Part):
    """What every participant may see of another."""

    participant_id: str
    role: Role
    name: str
    place: Literal["lobby", "room"]
    connected: bool
    audio: bool = Field(description="true while the participant sends audio")
    video: bool = Field(description="true while the participant sends video")
    present_with: list[str] = Field(
        description="who else sits at this participant's device (same-room mode)"
    )


class WaitingParticipant(ParticipantView):
    consent: bool = Field(description="whether the participant may be admitted")


class ConsultSummary(Part):
    id: str
    status: Literal["scheduled", "live", "ended"]


class ConsentScopes(Part):
    """Each scope as `given`, `withdrawn`, or null (never given)."""

    session: Literal["given", "withdrawn"] | None
    information_sharing: Literal["given", "withdrawn"] | None


class ConsentView(Part):
    complete: bool = Field(
        description="the client may be admitted: every scope consented (by the client, or a "
        "minor's guardian) and no scope's assent withdrawn"
    )
    sharing_withdrawn: bool = Field(
        description="sharing between the clinicians was withdrawn (by whoever consented, or by "
        "the minor's assent)"
    )
    consenting_role: Literal["client", "guardian"] = Field(
        description="whose consent admits the client: the guardian when the consult seats one"
    )
    consent: ConsentScopes = Field(description="that consent, scope by scope")
    assent: ConsentScopes | None = Field(
        description="a minor's own assent beside the guardian's consent, scope by scope; null "
        "when the client consents themself"
    )


class IceServer(Part):
    """An `RTCIceServer` for the browser's RTCPeerConnection."""

    urls: list[str]
    username: str | None = None
    credential: str | None = None


class SafetyFlag(Part):
    measure_id: str
    instrument: Literal["phq9"]
    item: int
    answer: int = Field(ge=0, le=3)
    recorded_at: str = Field(description="ISO 8601 time of the check-in")


class PendingPresence(Part):
    """A same-room declaration not in effect yet, which the recipient may make count."""

    declarer_id: str = Field(description="who declared someone at their device")
    participant_id: str = Field(description="who they say sits with them")


class ShareView(Part):
    """Who shares their screen in the room, and whether a host lets the client share."""

    participant_id: str | None = Field(description="the participant sharing (null: nobody)")
    client_may_share: bool = Field(description="a host allowed the client to share")


class RoomState(Part):
    consult: ConsultSummary
    you: ParticipantView
    participants: list[ParticipantView]
    lobby: list[str] = Field(description="ids waiting in the lobby (hosts only; else empty)")
    active_speaker: str | None
    ice_servers: list[IceServer]
    pc: int = Field(ge=0, description="the number of the participant's current peer connection")
    consent: ConsentView
    safety_flags: list[SafetyFlag] = Field(description="clinicians only; always empty otherwise")
    presence_pending: list[PendingPresence] = Field(
        default=[],
        description="same-room declarations this participant may confirm (about them) or "
        "attest (the client, declared by the other clinician); empty for everyone else",
    )
    share: ShareView = Field(
        default=ShareView(participant_id=None, client_may_share=False),
        description="the screen share (as the `share` event)",
    )


class TrackInfo(Part):
    mid: str
    participant_id: str
    kind: Literal["audio", "video"]
    source: Literal["microphone", "camera", "screen"] = Field(
        description="what the track carries: `screen` is the participant's shared screen, a "
        "second video beside their camera"
    )


class LeaveReason(StrEnum):
    """Why a seat was freed."""

    LEFT = "left"
    TIMEOUT = "timeout"
    DENIED = "denied"
    REMOVED = "removed"
    REVOKED = "revoked"  # the participant's tokens or the platform's key were revoked
    EXPIRED = "expired"  # the join token's `exp` passed


# -- events ---------------------------------------------------------------------------------------


class Admitted(ServerEvent):
    """To the participant just admitted (hosts and auto-admitted clients included)."""

    event: ClassVar[str] = "admitted"
    state: RoomState


class Lobby(ServerEvent):
    """To the hosts, whenever the lobby changes."""

    event: ClassVar[str] = "lobby"
    waiting: list[WaitingParticipant]


class PeerJoined(ServerEvent):
    """To everyone else, on a participant's first join."""

    event: ClassVar[str] = "peer-joined"
    participant: ParticipantView


class PeerUpdated(ServerEvent):
    """On admission, media state, connection lost or back, same-room presence."""

    event: ClassVar[str] = "peer-updated"
    participant: ParticipantView


class PeerLeft(ServerEvent):
    """To everyone else when a participant's seat is freed, saying why."""

    event: ClassVar[str] = "peer-left"
    participant_id: str
    reason: LeaveReason


class SignalOffer(ServerEvent):
    """The server's SDP offer for the participant's peer connection number `pc`."""

    event: ClassVar[str] = "signal"
    type: Literal["offer"] = "offer"
    sdp: str
    tracks: list[TrackInfo]
    pc: int = Field(ge=0)
    ice_servers: list[IceServer] | None = Field(
        default=None,
        description="The participant's ICE servers with TURN credentials minted with this offer "
        "(as `state.ice_servers`): a new `pc` is made with these",
    )


class ActiveSpeaker(ServerEvent):
    """To everyone in the room when the loudest speaker changes (null: nobody speaks)."""

    event: ClassVar[str] = "active-speaker"
    participant_id: str | None


class MediaQuality(ServerEvent):
    """To one participant when the video of another is paused for them because their own link
    cannot take it (audio continues), and again when it resumes."""

    event: ClassVar[str] = "media-quality"
    participant_id: str = Field(description="whose video this is about")
    video: Literal["paused", "playing"]
    reason: Literal["weak-connection"] | None = None
    source: Literal["camera", "screen"] = Field(
        default="camera", description="which of their videos: the camera or the shared screen"
    )


class DocumentRelay(ServerEvent):
    """What a participant sent about one notes document, relayed to its other readers; `from`
    is set by the server, never taken from the sender."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
    doc: Literal["plan", "client", "clinicians"]
    update: bytes
    sender: str = Field(alias="from", description="the participant it came from")


class NotesRelay(DocumentRelay):
    """A durable notes update (Yjs v1, binary), to the other admitted readers of `doc`."""

    event: ClassVar[str] = "notes-update"


class AwarenessRelay(DocumentRelay):
    """A Yjs awareness update (presence, carets; binary), to the other admitted readers of
    `doc`."""

    event: ClassVar[str] = "notes-awareness"


class ConsentChanged(ConsentView, ServerEvent):
    """To everyone connected, when the client's consent changes."""

    event: ClassVar[str] = "consent-changed"


class SafetyFlagRaised(SafetyFlag, ServerEvent):
    """To the therapist and psychiatrist only, the moment PHQ-9 item 9 is above 0."""

    event: ClassVar[str] = "safety-flag"


class BriefUpdated(ServerEvent):
    """To the clinicians who may read the hand-off brief, when it is saved (REST): the page reads
    it again (`GET .../session/brief`); the event carries none of it."""

    event: ClassVar[str] = "brief-updated"


class PresencePendingChanged(ServerEvent):
    """To a participant whenever the same-room declarations they may confirm or attest change
    (the whole list: an empty one withdraws every prompt)."""

    event: ClassVar[str] = "presence-pending"
    pending: list[PendingPresence]


class ShareChanged(ShareView, ServerEvent):
    """To everyone in the room when a screen share starts or stops, or a host changes whether
    the client may share."""

    event: ClassVar[str] = "share"


class Ended(ServerEvent):
    """To everyone connected when the consult ends; then the server disconnects them."""

    event: ClassVar[str] = "ended"
    plan_id: str
    ended_by: str


class Closing(ServerEvent):
    """Sent just before the server disconnects a socket, saying why."""

    event: ClassVar[str] = "error"
    code: ErrorCode
    message: str


SERVER_EVENTS: tuple[type[ServerEvent], ...] = (
    Admitted,
    Lobby,
    PeerJoined,
    PeerUpdated,
    PeerLeft,
    SignalOffer,
    ActiveSpeaker,
    MediaQuality,
    NotesRelay,
    AwarenessRelay,
    ConsentChanged,
    SafetyFlagRaised,
    BriefUpdated,
    PresencePendingChanged,
    ShareChanged,
    Ended,
    Closing,
)
