"""A participant's seat in a live room: where they are, their connection, their switches.

Their media session (the peer connection, its `pc` number) is the media plane's."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from enum import StrEnum

from ..auth.roles import Role
from ..consults.audit import AuditAction
from ..errors import ErrorCode
from ..ids import ParticipantId
from .events import LeaveReason, ParticipantView, PendingPresence
from .ports import Channel


class Place(StrEnum):
    LOBBY = "lobby"
    ROOM = "room"


# How a freed seat is recorded in the audit trail (the reason goes in the details).
LEFT_AUDIT_ACTION: dict[LeaveReason, AuditAction] = {
    LeaveReason.DENIED: AuditAction.PARTICIPANT_DENIED,
    LeaveReason.REMOVED: AuditAction.PARTICIPANT_REMOVED,
}


# The seat freed when a connection's token stops holding, by the code it is closed with.
LEFT_BECAUSE = {
    ErrorCode.TOKEN_REVOKED: LeaveReason.REVOKED,
    ErrorCode.TOKEN_INVALID: LeaveReason.REVOKED,
    ErrorCode.REMOVED: LeaveReason.REMOVED,
    ErrorCode.TOKEN_EXPIRED: LeaveReason.EXPIRED,
}


@dataclass(eq=False)
class Occupant:
    id: ParticipantId
    role: Role
    name: str
    place: Place
    channel: Channel | None = None
    audio: bool = True
    video: bool = True
    # Same-room mode: the other participants sitting at this one's device.
    present_with: tuple[ParticipantId, ...] = ()
    # The pending same-room declarations this one was last told it may confirm or attest.
    presence_pending: tuple[PendingPresence, ...] = ()
    seat_expiry: asyncio.Task[None] | None = field(default=None, repr=False)

    def cancel_seat_expiry(self) -> None:
        task, self.seat_expiry = self.seat_expiry, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    @property
    def connected(self) -> bool:
        return self.channel is not None

    def audited(self, **more: str | bool) -> dict[str, str | bool]:
        """The details of an audit event about this seat: who, as what role (a code), and
        `more`."""
        return {"participant_id": self.id, "role": self.role.value, **more}

    def view(self) -> ParticipantView:
        """What every participant may see of this one."""
        return ParticipantView(
            participant_id=self.id,
            role=self.role.value,
            name=self.name,
            place=self.place.value,
            connected=self.connected,
            audio=self.audio,
            video=self.video,
            present_with=list(self.present_with),
        )
