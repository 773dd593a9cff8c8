"""The `/consult` Socket.IO namespace: authenticate the socket, then for every event: rate
limit, validate, authorise, call the room or the notes channel, acknowledge.

Thin by design: no room state lives here, only which socket is which participant. Every
client event is answered `{ok: true, ...}` or `{ok: false, error: {code, message}}`; the
protocol is written down in docs/protocol.md."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import socketio

from .. import logs
from ..consults.model import ConsultView, JoinIdentity
from ..errors import ErrorCode, TriadError
from ..ids import ConsultId, ParticipantId
from ..rooms.room import ConsultRoom
from . import payloads
from .channel import NAMESPACE, SocketChannel
from .deps import SignalingDeps
from .notes_events import NotesEvents
from .ratelimit import TokenBucket

log = logs.get(__name__)


@dataclass
class Connection:
    """One authenticated socket: which participant of which consult it speaks for."""

    identity: JoinIdentity
    consult: ConsultView
    channel: SocketChannel
    bucket: TokenBucket
    joined: bool = False
    limited: bool = field(default=False, repr=False)


Handler = Callable[[Connection, tuple[Any, ...]], Awaitable[dict[str, Any] | None]]


class ConsultNamespace(socketio.AsyncNamespace):  # type: ignore[misc]
    def __init__(
        self,
        deps: Callable[[], SignalingDeps],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(NAMESPACE)
        self._deps = deps
        self._clock = clock
        self._connections: dict[str, Connection] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._notes = NotesEvents(deps)
        self._handlers: dict[str, Handler] = {
            "join": self._join,
            "leave": self._leave,
            "signal": self._signal,
            "candidate": self._candidate,
            "admit": self._host_action(ConsultRoom.admit),
            "deny": self._host_action(ConsultRoom.deny),
            "remove": self._host_action(ConsultRoom.remove),
            "media-state": self._media_state,
            "media-restart": self._media_restart,
            "end": self._end,
            "notes-sync": self._notes_call(self._notes.sync),
            "notes-update": self._notes_call(self._notes.update),
            "notes-awareness": self._notes_call(self._notes.awareness),
        }

    # -- connection lifecycle -----------------------------------------------------------------

    async def on_connect(self, sid: str, _environ: dict[str, Any], auth: Any = None) -> None:
        deps = self._deps()
        token = auth.get("token") if isinstance(auth, dict) else None
        consult_id = auth.get("consult_id") if isinstance(auth, dict) else None
        try:
            if not isinstance(token, str) or not token or len(token) > 8192:
                raise TriadError(ErrorCode.TOKEN_INVALID, "send the join token as auth.token")
            if consult_id is not None and not isinstance(consult_id, str):
                raise TriadError(ErrorCode.VALIDATION_FAILED, "auth.consult_id must be a string")
            identity, consult = await deps.access.authenticate(
                token, ConsultId(consult_id) if consult_id else None
            )
        except TriadError as error:
            log.info("socket.refused", code=str(error.code))
            raise socketio.exceptions.ConnectionRefusedError(
                error.message, error.as_ack()
            ) from None
        self._connections[sid] = Connection(
            identity=identity,
            consult=consult,
            channel=SocketChannel(self.server, sid, self._spawn),
            bucket=TokenBucket(deps.limits.events_per_second, deps.limits.event_burst, self._clock),
        )
        log.info(
            "socket.connected",
            consult_id=identity.consult_id,
            participant_id=identity.participant_id,
            role=str(identity.role),
        )

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        connection = self._connections.pop(sid, None)
        if connection is None:
            return
        connection.channel.closed = True
        log.info(
            "socket.disconnected",
            consult_id=connection.identity.consult_id,
            participant_id=connection.identity.participant_id,
            reason=str(reason),
        )
        room = self._deps().rooms.get(connection.identity.consult_id)
        if connection.joined and room is not None:
            await room.dropped(connection.identity.participant_id, connection.channel)

    async def trigger_event(self, event: str, *args: Any) -> Any:
        if event in ("connect", "disconnect"):
            # python-socketio routes a client's event named `connect`/`disconnect` here like its
            # own lifecycle calls. Its own come while the socket is still connecting or already
            # leaving; on a connected socket the name is the client's, and changes nothing.
            if self.server.manager.is_connected(args[0], NAMESPACE):
                return _refusal(TriadError(ErrorCode.UNKNOWN_EVENT, "no such event"))
            return await super().trigger_event(event, *args)
        sid, rest = args[0], args[1:]
        connection = self._connections.get(sid)
        if connection is None:
            return _refusal(TriadError(ErrorCode.NOT_JOINED, "the connection is not authenticated"))
        if not connection.bucket.take():
            if not connection.limited:  # one log line per flood, not one per message
                connection.limited = True
                log.warning(
                    "socket.rate_limited", participant_id=connection.identity.participant_id
                )
            return _refusal(TriadError(ErrorCode.RATE_LIMITED, "slow down"))
        connection.limited = False
        handler = self._handlers.get(event) if isinstance(event, str) else None
        if handler is None:
            return _refusal(TriadError(ErrorCode.UNKNOWN_EVENT, "no such event"))
        connection.channel.idle.clear()
        try:
            result = await handler(connection, rest)
        except TriadError as error:
            return _refusal(error)
        except Exception as exc:  # a fault of ours: logged without the payload, answered coded
            log.error("socket.event_failed", socket_event=event, **logs.failure(exc))
            return _refusal(TriadError(ErrorCode.INTERNAL, "the server could not do that"))
        finally:
            # Socket.IO queues the acknowledgement as soon as this returns, before any other
            # task runs, so a disconnect waiting on `idle` cannot overtake it.
            connection.channel.idle.set()
        return {"ok": True, **(result or {})}

    async def close(self) -> None:
        """Server shutdown: finish the pending disconnects. Safe to call twice."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- room events --------------------------------------------------------------------------

    async def _join(self, connection: Connection, args: tuple[Any, ...]) -> dict[str, Any]:
        payloads.parse(payloads.Join, args)
        state = await self._deps().rooms.join(
            connection.identity, connection.consult, connection.channel
        )
        connection.joined = True
        return {"state": state}

    async def _leave(self, connection: Connection, args: tuple[Any, ...]) -> None:
        payloads.parse(payloads.Empty, args)
        room = self._room(connection)
        connection.joined = False
        await room.leave(connection.identity.participant_id, connection.channel)

    async def _signal(self, connection: Connection, args: tuple[Any, ...]) -> None:
        signal = payloads.parse(payloads.Signal, args)
        if signal.type != "answer":
            raise TriadError(ErrorCode.SDP_INVALID, "the server makes the offers; send answers")
        await self._room(connection).answer(
            connection.identity.participant_id, signal.pc, signal.sdp
        )

    async def _candidate(self, connection: Connection, args: tuple[Any, ...]) -> None:
        message = payloads.parse(payloads.Candidate, args)
        candidate = None if message.candidate is None else message.candidate.model_dump()
        await self._room(connection).candidate(
            connection.identity.participant_id, message.pc, candidate
        )

    def _host_action(
        self, action: Callable[[ConsultRoom, ParticipantId, ParticipantId], Awaitable[None]]
    ) -> Handler:
        """`admit`, `deny`, `remove`: a host acting on another participant by id."""

        async def handle(connection: Connection, args: tuple[Any, ...]) -> None:
            target = payloads.parse(payloads.Target, args)
            await action(
                self._room(connection),
                connection.identity.participant_id,
                ParticipantId(target.participant_id),
            )

        return handle

    async def _media_state(self, connection: Connection, args: tuple[Any, ...]) -> None:
        state = payloads.parse(payloads.MediaState, args)
        await self._room(connection).set_media_state(
            connection.identity.participant_id, audio=state.audio, video=state.video
        )

    async def _media_restart(self, connection: Connection, args: tuple[Any, ...]) -> dict[str, Any]:
        message = payloads.parse(payloads.MediaRestart, args)
        pc = await self._room(connection).restart_media(
            connection.identity.participant_id, message.pc
        )
        return {"pc": pc}

    async def _end(self, connection: Connection, args: tuple[Any, ...]) -> dict[str, Any]:
        payloads.parse(payloads.Empty, args)
        plan_id = await self._room(connection).end(connection.identity.participant_id)
        return {"plan_id": plan_id}

    def _notes_call(
        self,
        call: Callable[[ConsultRoom, JoinIdentity, tuple[Any, ...]], Awaitable[dict[str, Any]]],
    ) -> Handler:
        async def handle(connection: Connection, args: tuple[Any, ...]) -> dict[str, Any]:
            room = self._room(connection)
            room.require_admitted(connection.identity.participant_id)
            return await call(room, connection.identity, args)

        return handle

    def _room(self, connection: Connection) -> ConsultRoom:
        if not connection.joined:
            raise TriadError(ErrorCode.NOT_JOINED, "join the room first")
        room = self._deps().rooms.get(connection.identity.consult_id)
        if room is None:  # joined, and the room has since closed
            raise TriadError(ErrorCode.CONSULT_ENDED, "the consult has ended")
        return room


def _refusal(error: TriadError) -> dict[str, Any]:
    body: dict[str, Any] = {"ok": False, "error": error.as_ack()}
    if error.field_errors:
        body["error"]["errors"] = [
            {"location": f.location, "message": f.message} for f in error.field_errors
        ]
    return body
