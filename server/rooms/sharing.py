"""Screen share in a room: who shares, who may, and what each change does.

One share at a time. The therapist and the psychiatrist may share; the client once a host allows
it (off until then, and taking it back stops the client's share); the guardian and the
interpreter never (they are there to consent for a minor and to interpret, not to present). A
sharer stops their own share; a host may stop anyone's. A share ends too when the sharer's seat
is freed, or when their page answers the screen's m-line away (its capture ended, or a reload
lost it); a dropped connection keeps it, with the seat, for the page to send again on its new
peer connection.

The media plane publishes the screen as a second video of the sharer (`RoomMedia.share_screen`);
this module holds the room's side: the rules, the `share` event to everyone in the room, and the
audit trail (`share.started`, `share.stopped` with the reason, `share.permission_changed`).
The room calls it under its lock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import StrEnum

from .. import logs
from ..auth.roles import Role, require_host
from ..consults.audit import AuditAction
from ..consults.model import Actor
from ..errors import ErrorCode, TriadError
from ..ids import ConsultId, ParticipantId
from . import events
from .occupant import Occupant
from .ports import ConsultRecords, RoomMedia

log = logs.get(__name__)

SHARING_ROLES = frozenset({Role.THERAPIST, Role.PSYCHIATRIST, Role.CLIENT})

Tell = Callable[[events.ServerEvent], Awaitable[None]]


class ShareEnd(StrEnum):
    """Why a share stopped (the audit detail `reason`)."""

    STOPPED = "stopped"  # by the sharer
    HOST = "host"  # a host stopped someone else's
    PERMISSION = "permission"  # a host took back the client's permission
    LEFT = "left"  # the sharer's seat was freed
    ENDED = "ended"  # the sharer's page stopped sending it


class ScreenShare:
    def __init__(self, consult_id: ConsultId, records: ConsultRecords, tell: Tell) -> None:
        self._consult_id = consult_id
        self._records = records
        self._tell = tell  # to everyone in the room
        self.presenter: ParticipantId | None = None
        self._presenter_role: Role | None = None
        self.client_may_share = False

    def view(self) -> events.ShareView:
        return events.ShareView(
            participant_id=self.presenter, client_may_share=self.client_may_share
        )

    async def start(self, occupant: Occupant, media: RoomMedia | None) -> None:
        """`occupant` (admitted) shares; nothing changes when they already do. Raises
        FORBIDDEN_ROLE, SHARE_NOT_ALLOWED, SHARE_IN_PROGRESS."""
        if occupant.role not in SHARING_ROLES:
            raise TriadError(
                ErrorCode.FORBIDDEN_ROLE, "only the clinicians, and the client, share a screen"
            )
        if occupant.role is Role.CLIENT and not self.client_may_share:
            raise TriadError(
                ErrorCode.SHARE_NOT_ALLOWED, "a host has not allowed you to share your screen"
            )
        if self.presenter == occupant.id:
            return
        if self.presenter is not None:
            raise TriadError(ErrorCode.SHARE_IN_PROGRESS, "someone else is sharing their screen")
        if media is not None:
            await media.share_screen(occupant.id)
        self.presenter, self._presenter_role = occupant.id, occupant.role
        actor = Actor("participant", occupant.id)
        await self._records.record(
            self._consult_id, actor, AuditAction.SHARE_STARTED, {"participant_id": occupant.id}
        )
        log.info("room.share_started", consult_id=self._consult_id, participant_id=occupant.id)
        await self._tell(events.ShareChanged(**self.view().model_dump()))

    async def stop(
        self, occupant: Occupant, target: ParticipantId | None, media: RoomMedia | None
    ) -> bool:
        """`occupant` stops `target`'s share (None: their own); only a host stops another's.
        False when `target` was not sharing (a race with its end: nothing to do). Raises
        FORBIDDEN_ROLE."""
        target = occupant.id if target is None else target
        if target != occupant.id:
            require_host(occupant.role, "stop someone else's screen share")
        if self.presenter != target:
            return False
        reason = ShareEnd.STOPPED if target == occupant.id else ShareEnd.HOST
        await self._end(Actor("participant", occupant.id), reason, media)
        return True

    async def permit(self, occupant: Occupant, allowed: bool, media: RoomMedia | None) -> None:
        """A host lets the client share, or takes it back (which stops the client's share).
        Raises FORBIDDEN_ROLE."""
        require_host(occupant.role, "change who may share a screen")
        if allowed == self.client_may_share:
            return
        self.client_may_share = allowed
        actor = Actor("participant", occupant.id)
        await self._records.record(
            self._consult_id,
            actor,
            AuditAction.SHARE_PERMISSION_CHANGED,
            {"client_may_share": allowed},
        )
        if not allowed and self._presenter_role is Role.CLIENT:
            await self._end(actor, ShareEnd.PERMISSION, media)  # tells everyone
        else:
            await self._tell(events.ShareChanged(**self.view().model_dump()))

    async def left(self, participant_id: ParticipantId, actor: Actor) -> None:
        """The participant's seat was freed (their media with it)."""
        if self.presenter == participant_id:
            await self._end(actor, ShareEnd.LEFT, None)

    async def answered(self, participant_id: ParticipantId, media: RoomMedia | None) -> None:
        """After the participant's answer: their page may have answered their screen away."""
        gone = media is not None and not media.sharing(participant_id)
        if self.presenter == participant_id and gone:
            await self._end(Actor("participant", participant_id), ShareEnd.ENDED, None)

    async def _end(self, actor: Actor, reason: ShareEnd, media: RoomMedia | None) -> None:
        presenter, self.presenter, self._presenter_role = self.presenter, None, None
        if presenter is None:
            return
        if media is not None:
            await media.unshare_screen(presenter)
        await self._records.record(
            self._consult_id,
            actor,
            AuditAction.SHARE_STOPPED,
            {"participant_id": presenter, "reason": reason.value},
        )
        log.info(
            "room.share_stopped",
            consult_id=self._consult_id,
            participant_id=presenter,
            reason=reason.value,
        )
        await self._tell(events.ShareChanged(**self.view().model_dump()))
