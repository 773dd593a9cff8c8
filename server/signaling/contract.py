"""The consult namespace's contract: every event a client may send, with its payload model,
the acknowledgement it gets on success and the error codes it may answer.

One table drives the namespace's handlers (a test checks they match) and the AsyncAPI document
(`asyncapi.py`), as `server/api/routes.py` drives REST and OpenAPI."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..errors import ErrorCode
from ..rooms.events import RoomState
from . import payloads

# -- acknowledgements -----------------------------------------------------------------------------


class Ack(BaseModel):
    """A successful acknowledgement: `{ok: true, ...}`."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    ok: Literal[True] = True


class JoinAck(Ack):
    state: RoomState


class MediaRestartAck(Ack):
    pc: int = Field(ge=0, description="the participant's current peer connection")


class ShareStopAck(Ack):
    stopped: bool = Field(description="false: that participant was not sharing (nothing changed)")


class EndAck(Ack):
    plan_id: str


class NotesSyncAck(Ack):
    doc: Literal["plan", "client", "clinicians"]
    update: bytes = Field(description="exactly what the caller's state vector misses")
    state_vector: bytes = Field(description="the server's, to send what the server misses")


class NotesUpdateAck(Ack):
    doc: Literal["plan", "client", "clinicians"]
    seq: int = Field(ge=1, description="the update's place in the document's durable log")


class FieldProblem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    location: str
    message: str


class WorkerOut(BaseModel):
    """A worker of the deployment: its id and where browsers reach its signaling."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str
    url: str = Field(description="the worker's public URL; Socket.IO is at its /socket.io")


class ErrorBody(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    code: ErrorCode
    message: str
    errors: list[FieldProblem] | None = Field(
        default=None, description="with validation_failed: the fields at fault"
    )
    worker: WorkerOut | None = Field(
        default=None, description="with wrong_worker: the worker that serves the consult"
    )


class Refusal(BaseModel):
    """A refused event: `{ok: false, error: {code, message}}`; nothing was changed."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    ok: Literal[False] = False
    error: ErrorBody


# -- the client events ----------------------------------------------------------------------------

# Every event may also answer these (docs/protocol.md).
COMMON_ERRORS: tuple[ErrorCode, ...] = (
    ErrorCode.NOT_JOINED,
    ErrorCode.VALIDATION_FAILED,
    ErrorCode.RATE_LIMITED,
    ErrorCode.UNKNOWN_EVENT,
    ErrorCode.INTERNAL,
)


@dataclass(frozen=True)
class ClientEvent:
    name: str
    summary: str
    payload: type[BaseModel]
    ack: type[Ack]
    errors: tuple[ErrorCode, ...] = ()

    def __post_init__(self) -> None:
        if not self.name or not self.summary:
            raise ValueError("an event needs a name and a summary")
        if len(set(self.errors)) != len(self.errors):
            raise ValueError(f"{self.name}: an error code is listed twice")

    def all_errors(self) -> tuple[ErrorCode, ...]:
        return tuple(dict.fromkeys((*self.errors, *COMMON_ERRORS)))


_NOTES_ERRORS = (ErrorCode.NOT_ADMITTED, ErrorCode.NOTES_DOCUMENT_UNKNOWN, ErrorCode.FORBIDDEN_ROLE)

CLIENT_EVENTS: tuple[ClientEvent, ...] = (
    ClientEvent(
        "join",
        "Take the participant's seat (the lobby or the room); returns the room's state",
        payloads.Join,
        JoinAck,
        # Every join re-checks the token against the database; with several workers, only the
        # consult's own worker seats anyone.
        (
            ErrorCode.CONSULT_ENDED,
            ErrorCode.PARTICIPANT_NOT_FOUND,
            ErrorCode.TOKEN_INVALID,
            ErrorCode.TOKEN_EXPIRED,
            ErrorCode.TOKEN_REVOKED,
            ErrorCode.WRONG_WORKER,
            ErrorCode.PLACEMENT_UNAVAILABLE,
        ),
    ),
    ClientEvent("leave", "Leave the consult; the seat is freed at once", payloads.Empty, Ack),
    ClientEvent(
        "signal",
        "Answer the server's offer for peer connection `pc`",
        payloads.Signal,
        Ack,
        (ErrorCode.SDP_INVALID, ErrorCode.NO_PENDING_OFFER, ErrorCode.NOT_ADMITTED),
    ),
    ClientEvent(
        "candidate",
        "Trickle one of the browser's ICE candidates (null: no more)",
        payloads.Candidate,
        Ack,
        (
            ErrorCode.CANDIDATE_INVALID,
            ErrorCode.CANDIDATE_ADDRESS_REFUSED,
            ErrorCode.CANDIDATES_EXHAUSTED,
            ErrorCode.NO_PENDING_OFFER,
            ErrorCode.NOT_ADMITTED,
        ),
    ),
    ClientEvent(
        "admit",
        "A host admits a participant waiting in the lobby",
        payloads.Target,
        Ack,
        (
            ErrorCode.FORBIDDEN_ROLE,
            ErrorCode.PARTICIPANT_NOT_FOUND,
            ErrorCode.CONSENT_REQUIRED,
            ErrorCode.NOT_ADMITTED,
        ),
    ),
    ClientEvent(
        "deny",
        "A host turns away a participant waiting in the lobby",
        payloads.Target,
        Ack,
        (ErrorCode.FORBIDDEN_ROLE, ErrorCode.PARTICIPANT_NOT_FOUND, ErrorCode.NOT_ADMITTED),
    ),
    ClientEvent(
        "remove",
        "A host removes a participant from the consult",
        payloads.Target,
        Ack,
        (ErrorCode.FORBIDDEN_ROLE, ErrorCode.PARTICIPANT_NOT_FOUND, ErrorCode.NOT_ADMITTED),
    ),
    ClientEvent(
        "media-state",
        "Whether the participant is sending audio and video",
        payloads.MediaState,
        Ack,
    ),
    ClientEvent(
        "media-restart",
        "The browser's peer connection `pc` failed: ask for a new one",
        payloads.MediaRestart,
        MediaRestartAck,
        (ErrorCode.NO_PENDING_OFFER, ErrorCode.NOT_ADMITTED),
    ),
    ClientEvent(
        "share-start",
        "Share a screen: the offer that follows asks for it on an m-line of its own",
        payloads.Empty,
        Ack,
        (
            ErrorCode.NOT_ADMITTED,
            ErrorCode.FORBIDDEN_ROLE,
            ErrorCode.SHARE_NOT_ALLOWED,
            ErrorCode.SHARE_IN_PROGRESS,
        ),
    ),
    ClientEvent(
        "share-stop",
        "Stop your screen share, or (a host) someone else's",
        payloads.ShareStop,
        ShareStopAck,
        (ErrorCode.NOT_ADMITTED, ErrorCode.FORBIDDEN_ROLE),
    ),
    ClientEvent(
        "share-permission",
        "A host lets the client share a screen, or takes it back (stopping the client's share)",
        payloads.SharePermission,
        Ack,
        (ErrorCode.NOT_ADMITTED, ErrorCode.FORBIDDEN_ROLE),
    ),
    ClientEvent(
        "end",
        "A host ends the consult for everyone; the plan is saved",
        payloads.Empty,
        EndAck,
        (ErrorCode.FORBIDDEN_ROLE, ErrorCode.NOT_ADMITTED, ErrorCode.CONSULT_ENDED),
    ),
    ClientEvent(
        "notes-sync",
        "Exchange state vectors for one notes document",
        payloads.NotesSync,
        NotesSyncAck,
        (*_NOTES_ERRORS, ErrorCode.NOTES_UPDATE_INVALID),
    ),
    ClientEvent(
        "notes-update",
        "Write a Yjs update to one notes document; acknowledged once durable",
        payloads.NotesUpdate,
        NotesUpdateAck,
        (
            *_NOTES_ERRORS,
            ErrorCode.NOTES_UPDATE_INVALID,
            ErrorCode.NOTES_UPDATE_TOO_LARGE,
            ErrorCode.NOTES_DOCUMENT_TOO_LARGE,
            ErrorCode.CONSULT_ENDED,
            ErrorCode.CONSENT_WITHDRAWN,
        ),
    ),
    ClientEvent(
        "notes-awareness",
        "Relay presence and carets in one notes document (never stored)",
        payloads.NotesAwareness,
        Ack,
        (*_NOTES_ERRORS, ErrorCode.NOTES_UPDATE_INVALID, ErrorCode.NOTES_CLIENT_ID_TAKEN),
    ),
)


def client_event(name: str) -> ClientEvent:
    for event in CLIENT_EVENTS:
        if event.name == name:
            return event
    raise KeyError(name)
