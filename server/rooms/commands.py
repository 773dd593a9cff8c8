"""What a REST call tells a live room, wherever the room lives.

A REST call can land on any worker; the consult's room lives on one (its placement). Once the
change is committed, the REST worker sends a `RoomCommand` (a kind and a consult id, never
clinical text: the owning room re-reads what it needs from the database) to the worker that
holds the consult, over that worker's own Redis channel (`cluster/commands.py`). In one
process, or when this worker holds the consult, it is a plain call into the `RoomRegistry`.

Pub/sub is at-most-once. A lost command is caught: consent and presence at the next join,
admission or care change (each re-reads the care state); a safety flag in the join state of
whoever joins next, and with the next flag; the end by the owner's sweep
(`RoomRegistry.sweep_ended`), which closes rooms whose consult row was ended elsewhere. A lost
`brief_updated` is not caught: the page reads the brief when it asks."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from redis.asyncio import Redis
from redis.exceptions import RedisError

from .. import logs
from ..cluster.commands import MAX_MESSAGE_BYTES, WorkerMailbox
from ..consults.model import Actor
from ..ids import ConsultId, WorkerId

if TYPE_CHECKING:
    from ..cluster.node import Membership
    from .registry import RoomRegistry

log = logs.get(__name__)

# Consult ids are ours (`c_...`): letters, digits, `_` and `-`, never long.
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_FIELDS = frozenset({"kind", "consult_id"})


class MalformedCommand(ValueError):
    """Bytes on the channel that are not a command this module encoded."""


class RoomCommandKind(StrEnum):
    CARE_CHANGED = "care_changed"  # consent or same-room presence: re-read the care state
    SAFETY_FLAG = "safety_flag"  # a check-in raised one: re-read, tell the clinicians
    BRIEF_UPDATED = "brief_updated"  # tell the clinicians who may read it
    # The row is ended and the plan saved: the room closes, telling everyone (the owner reads
    # the row first: it acts only on an ended one, and names who ended it from there).
    ENDED = "ended"


@dataclass(frozen=True)
class RoomCommand:
    """A kind and a consult id: nothing a room could not read again from the database."""

    kind: RoomCommandKind
    consult_id: ConsultId

    def __post_init__(self) -> None:
        if not isinstance(self.kind, RoomCommandKind):
            raise ValueError("not a room command kind")
        if not isinstance(self.consult_id, str) or not _ID.fullmatch(self.consult_id):
            raise ValueError("a room command's consult_id is an id")

    def encode(self) -> bytes:
        body = {"kind": str(self.kind), "consult_id": self.consult_id}
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> RoomCommand:
        """Raises `MalformedCommand` for anything that is not a command this module encoded."""
        try:
            return cls._decode(raw)
        except (ValueError, TypeError) as exc:  # JSON's and UTF-8's errors are ValueErrors
            raise MalformedCommand(str(exc)) from None

    @classmethod
    def _decode(cls, raw: bytes) -> RoomCommand:
        if not isinstance(raw, bytes) or len(raw) > MAX_MESSAGE_BYTES:
            raise ValueError("a room command is at most 1 KiB of bytes")
        body = json.loads(raw)  # at most 1 KiB: no depth or size to fear
        if not isinstance(body, dict) or not set(body) <= _FIELDS:
            raise ValueError("not a room command")
        kind = body.get("kind")
        if not isinstance(kind, str):
            raise ValueError("not a room command kind")
        return cls(
            kind=RoomCommandKind(kind),
            consult_id=body.get("consult_id"),  # type: ignore[arg-type]  # checked after
        )


class RoomRelay:
    """Hands each command to the room that must act on it: here, or on the worker that holds
    the consult. `clustered` connects it to the other workers for the app's lifetime."""

    def __init__(self, rooms: RoomRegistry) -> None:
        self._rooms = rooms
        self._mailbox: WorkerMailbox | None = None
        self._membership: Membership | None = None

    async def send(self, command: RoomCommand) -> None:
        """After the change is committed. Never raises for a lost message (see above)."""
        owner = await self._elsewhere(command.consult_id)
        if owner is None:
            await self._rooms.apply(command)
        else:
            await self._post(owner, command)

    async def tell(self, kind: RoomCommandKind, consult_id: ConsultId) -> None:
        await self.send(RoomCommand(kind, consult_id))

    async def finish(self, consult_id: ConsultId, actor: Actor) -> str:
        """After the consult row is ended (the platform's end); returns the plan id. Held here
        (or in one process): the registry's one end path. Held elsewhere: the plan is saved
        here, exactly once (a host's End racing this saves the same plan), then the worker
        that holds the room closes it, telling everyone `ended` with that plan's id."""
        owner = await self._elsewhere(consult_id)
        if owner is None:
            return await self._rooms.finish(consult_id, actor)
        plan_id = await self._rooms.save_plan(consult_id)
        await self._post(owner, RoomCommand(RoomCommandKind.ENDED, consult_id))
        return plan_id

    async def _elsewhere(self, consult_id: ConsultId) -> WorkerId | None:
        """The live worker holding the consult when it is another; None for this one, for one
        process, and for nobody live (then only a stale room here could need telling)."""
        mailbox, member = self._mailbox, self._membership
        if mailbox is None or member is None:
            return None
        try:
            owner = await member.placement.holder(consult_id)
        except RedisError as exc:
            log.error("rooms.command_unrouted", **logs.failure(exc))
            return None
        return None if owner is None or owner == mailbox.me else owner

    async def _post(self, owner: WorkerId, command: RoomCommand) -> None:
        mailbox = self._mailbox
        heard = mailbox is not None and await mailbox.send(owner, command.encode())
        log.info(
            "rooms.command_sent",
            kind=str(command.kind),
            consult_id=command.consult_id,
            worker=owner,
            heard=heard,
        )

    async def received(self, raw: bytes) -> None:
        try:
            command = RoomCommand.decode(raw)
        except MalformedCommand:
            log.warning("rooms.command_malformed")
            return
        await self._rooms.apply(command)

    @asynccontextmanager
    async def clustered(
        self, member: Membership | None, redis: Redis | None
    ) -> AsyncIterator[None]:
        """Several workers: read this worker's channel, and send to the others' (and sweep
        for consults ended elsewhere). One process: nothing to connect."""
        if member is None or redis is None:
            yield
            return
        mailbox = WorkerMailbox(redis, member.placement.keys, member.placement.me, self.received)
        await mailbox.start()
        self._mailbox, self._membership = mailbox, member
        self._rooms.start_sweep()
        try:
            yield
        finally:
            self._mailbox = self._membership = None
            await mailbox.close()
