"""The payload of each client event, validated strictly: a wrong type is refused with
`validation_failed` naming the field, never coerced."""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ErrorCode, FieldError, TriadError

# Ids are short opaque strings; anything longer is not one of ours.
_ID = Field(min_length=1, max_length=64)
# SDP size is checked against the setting by the media layer; this bound only stops a string
# the size of the whole message from being copied around first.
_SDP = Field(min_length=1, max_length=1024 * 1024)


class Payload(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Empty(Payload):
    pass


class Join(Payload):
    pass


class Signal(Payload):
    type: Literal["answer", "offer"]
    sdp: str = _SDP
    pc: int = Field(ge=0)


class CandidateInit(Payload):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    candidate: str = Field(max_length=2048)
    sdpMid: str | None = Field(default=None, max_length=64)
    sdpMLineIndex: int | None = Field(default=None, ge=0, le=255)


class Candidate(Payload):
    candidate: CandidateInit | None
    pc: int = Field(ge=0)


class Target(Payload):
    participant_id: str = _ID


class MediaRestart(Payload):
    pc: int = Field(ge=0)


class ShareStop(Payload):
    participant_id: str | None = Field(
        default=None, min_length=1, max_length=64, description="whose share (default: yours)"
    )


class SharePermission(Payload):
    client_may_share: bool


class MediaState(Payload):
    audio: bool
    video: bool


class NotesSync(Payload):
    doc: str = Field(max_length=32)
    state_vector: bytes


class NotesUpdate(Payload):
    doc: str = Field(max_length=32)
    update: bytes


class NotesAwareness(Payload):
    doc: str = Field(max_length=32)
    update: bytes = Field(max_length=16 * 1024)


M = TypeVar("M", bound="Payload")


def parse(model: type[M], args: tuple[Any, ...]) -> M:
    """The event's single argument as `model`; no argument means an empty payload."""
    if len(args) > 1:
        raise TriadError(ErrorCode.VALIDATION_FAILED, "an event takes one payload object")
    raw = args[0] if args else {}
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise TriadError(
            ErrorCode.VALIDATION_FAILED,
            "the payload must be an object",
            [FieldError("", "expected an object")],
        )
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise TriadError(
            ErrorCode.VALIDATION_FAILED,
            "the payload is not valid",
            [
                FieldError("/" + "/".join(str(p) for p in err["loc"]), err["msg"])
                for err in exc.errors(include_input=False)
            ],
        ) from None
