"""Access events: a revocation is an event the owner of each socket acts on, not a lookup only
the process that served the REST call can see.

A participant's tokens revoked, a participant removed, a platform's API key revoked: the
process that changes the database publishes the change after its commit; every process
serving sockets subscribes and closes the sockets the change concerns. In one process the bus
is a plain in-process fan-out; with `TRIAD_REDIS_URL` it is a Redis pub/sub channel, so a
socket served by another process (or a `triad apikey revoke` run from a shell) hears it too.

Pub/sub delivers at most once: an event lost to a Redis outage is caught at the socket's next
`join` (which re-checks the token against the database) or at its token's expiry."""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from .. import logs
from ..ids import KeyId, ParticipantId
from ..pubsub import ChannelReader

log = logs.get(__name__)

# An event is a few ids and a number; anything longer on the channel is not one of ours.
MAX_EVENT_BYTES = 1024


def channel_for(cluster_name: str) -> str:
    """One deployment's channel: Redis pub/sub ignores database numbers, so deployments (or
    test runs) sharing a Redis server are kept apart by their `TRIAD_CLUSTER_NAME`."""
    return f"triad:cluster:{cluster_name}:access-events"


CHANNEL = channel_for("main")


class AccessChange(StrEnum):
    TOKENS_REVOKED = "tokens_revoked"
    PARTICIPANT_REMOVED = "participant_removed"
    API_KEY_REVOKED = "api_key_revoked"


@dataclass(frozen=True)
class AccessEvent:
    """One change of who may be connected. `at` is the change's instant (Unix seconds): a
    token issued at or before it is refused (the same rule as `tokens_revoked_at`)."""

    change: AccessChange
    at: float
    participant_id: ParticipantId | None = None
    key_id: KeyId | None = None

    def __post_init__(self) -> None:
        AccessChange(self.change)
        if isinstance(self.at, bool) or not isinstance(self.at, int | float):
            raise ValueError("an access event's time is a number")
        if not math.isfinite(self.at):
            raise ValueError("an access event's time is finite")
        if self.change is AccessChange.API_KEY_REVOKED:
            _require_id(self.key_id, "key_id")
        else:
            _require_id(self.participant_id, "participant_id")

    def encode(self) -> bytes:
        body: dict[str, Any] = {"change": str(self.change), "at": self.at}
        if self.participant_id is not None:
            body["participant_id"] = self.participant_id
        if self.key_id is not None:
            body["key_id"] = self.key_id
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> AccessEvent:
        """Raises ValueError for anything that is not an event this module encoded."""
        if len(raw) > MAX_EVENT_BYTES:
            raise ValueError("an access event is at most 1 KiB")
        body = json.loads(raw)
        if not isinstance(body, dict) or not set(body) <= {
            "change",
            "at",
            "participant_id",
            "key_id",
        }:
            raise ValueError("not an access event")
        pid, key = body.get("participant_id"), body.get("key_id")
        return cls(
            change=AccessChange(str(body.get("change"))),
            at=body.get("at"),  # type: ignore[arg-type]  # checked in __post_init__
            participant_id=ParticipantId(pid) if pid is not None else None,
            key_id=KeyId(key) if key is not None else None,
        )


def _require_id(value: object, name: str) -> None:
    if not isinstance(value, str) or not 0 < len(value) <= 128:
        raise ValueError(f"this access event needs a {name}")


Listener = Callable[[AccessEvent], Awaitable[None]]


class AccessEvents(Protocol):
    async def publish(self, event: AccessEvent) -> None:
        """Tell every subscriber of every process (after the change is committed)."""

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` for each event; returns the unsubscribe function."""

    async def close(self) -> None: ...


class _Listeners:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    async def deliver(self, event: AccessEvent) -> None:
        for listener in list(self._listeners):
            try:
                await listener(event)
            except Exception as exc:  # one failing subscriber must not starve the others
                log.error("access_events.listener_failed", **logs.failure(exc))


class LocalAccessEvents(_Listeners):
    """One process: publishing calls the subscribers directly."""

    async def publish(self, event: AccessEvent) -> None:
        await self.deliver(event)

    async def close(self) -> None:
        return None


class RedisAccessEvents(_Listeners):
    """Every process: publishing goes through a Redis channel that each process (this one
    included) reads on its own task."""

    def __init__(self, redis: Redis, channel: str = CHANNEL) -> None:
        super().__init__()
        self._redis = redis
        self._reader = ChannelReader(
            redis, channel, self._received, max_bytes=MAX_EVENT_BYTES, name="access_events"
        )

    @property
    def channel(self) -> str:
        return self._reader.channel

    async def start(self, within: float = 5.0) -> None:
        """Subscribe, and return once the subscription is confirmed (or after `within`
        seconds with Redis unreachable: the reader keeps trying, the server still starts)."""
        await self._reader.start(within)

    async def publish(self, event: AccessEvent) -> None:
        try:
            await self._redis.publish(self.channel, event.encode())
        except RedisError as exc:
            # The change is committed; sockets elsewhere learn it at their next join or expiry.
            log.error("access_events.publish_failed", change=str(event.change), **logs.failure(exc))
            await self.deliver(event)  # at least the sockets of this process

    async def close(self) -> None:
        """Stop reading the channel. Safe to call twice."""
        await self._reader.close()

    async def _received(self, data: bytes) -> None:
        try:
            event = AccessEvent.decode(data)
        except (ValueError, TypeError):
            log.warning("access_events.malformed")
            return
        await self.deliver(event)
