"""One authenticated socket: which participant of which consult it speaks for, its budgets,
its deadlines, and whether an access event takes its access away."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from ..consults.access_events import AccessChange, AccessEvent
from ..consults.model import ConsultView, JoinIdentity
from ..errors import ErrorCode
from .channel import SocketChannel
from .ratelimit import TokenBucket

# What a socket is told when it is closed because its access ended.
CLOSE_MESSAGES = {
    ErrorCode.TOKEN_REVOKED: "your link was revoked",
    ErrorCode.REMOVED: "a host removed you",
    ErrorCode.TOKEN_INVALID: "the key that signed your link was revoked",
    ErrorCode.TOKEN_EXPIRED: "your link has expired",
    ErrorCode.JOIN_TIMEOUT: "the socket did not join in time",
}


@dataclass
class Connection:
    identity: JoinIdentity
    consult: ConsultView
    channel: SocketChannel
    # The join token, kept to re-check at every `join`; never logged.
    token: str = field(repr=False)
    bucket: TokenBucket = field(repr=False)
    # `join` and `media-restart`: the costly events' own budget.
    costly: TokenBucket = field(repr=False)
    joined: bool = False
    limited: bool = field(default=False, repr=False)
    # Set once the server closes the socket: every later event is refused with it.
    closed_with: ErrorCode | None = None
    timers: list[asyncio.TimerHandle] = field(default_factory=list, repr=False)

    def revoked_by(self, event: AccessEvent) -> ErrorCode | None:
        """The code to close this socket with when `event` takes its access away."""
        identity = self.identity
        if event.change is AccessChange.API_KEY_REVOKED:
            return ErrorCode.TOKEN_INVALID if event.key_id == identity.key_id else None
        if event.participant_id != identity.participant_id or identity.issued_at > event.at:
            return None  # another participant, or a token minted after the revocation
        if event.change is AccessChange.PARTICIPANT_REMOVED:
            return ErrorCode.REMOVED
        return ErrorCode.TOKEN_REVOKED

    def cancel_timers(self) -> None:
        for timer in self.timers:
            timer.cancel()
        self.timers.clear()
