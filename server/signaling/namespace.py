"""The `/consult` Socket.IO namespace: authenticate the socket, then for every event: rate
limit, validate, authorise, call the room or the notes channel, acknowledge.

Thin by design: no room state lives here, only which socket is which participant. Every
client event is answered `{ok: true, ...}` or `{ok: false, error: {code, message}}`; the
protocol is written down in docs/protocol.md."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import socketio

from .. import logs, metrics
from ..cluster.placement import WrongWorker
from ..consults.access_events import AccessEvent
from ..consults.model import JoinIdentity
from ..errors import ErrorCode, TriadError
from ..ids import ConsultId, ParticipantId
from ..rooms.room import ConsultRoom
from . import payloads
from .channel import NAMESPACE, SocketChannel, SocketFanout
from .connection import CLOSE_MESSAGES, Connection
from .contract import (
    Ack,
    EndAck,
    ErrorBody,
    FieldProblem,
    JoinAck,
    MediaRestartAck,
    Refusal,
    ShareStopAck,
    WorkerOut,
)
from .deps import SignalingDeps
from .notes_events import NotesEvents
from .ratelimit import TokenBucket

log = logs.get(__name__)


# Each re-reads the care state, writes an audit row or renegotiates everyone's media: their own
# budget.
COSTLY_EVENTS = frozenset(
    {"join", "media-restart", "share-start", "share-stop", "share-permission"}
)


Handler = Callable[[Connection, tuple[Any, ...]], Awaitable[Ack | None]]
LEAVING = "this worker stops serving the consult: read the session again and connect there"


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
        self._sockets: SocketFanout | None = None  # once registered (`self.server` is set then)
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
            "share-start": self._share_start,
            "share-stop": self._share_stop,
            "share-permission": self._share_permission,
            "end": self._end,
            "notes-sync": self._notes_call(self._notes.sync),
            "notes-update": self._notes_call(self._notes.update),
            "notes-awareness": self._notes_call(self._notes.awareness),
        }

    @property
    def handled_events(self) -> frozenset[str]:
        """The client events this namespace answers (the contract lists the same ones)."""
        return frozenset(self._handlers)

    # -- connection lifecycle -----------------------------------------------------------------

    def _fanout(self) -> SocketFanout:
        if self._sockets is None:
            self._sockets = SocketFanout(self.server, NAMESPACE)
        return self._sockets

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
            self._require_unjoined_place(identity.participant_id)
        except TriadError as error:
            log.info("socket.refused", code=str(error.code))
            raise socketio.exceptions.ConnectionRefusedError(
                error.message, error.as_ack()
            ) from None
        limits = deps.limits
        connection = Connection(
            identity=identity,
            consult=consult,
            channel=SocketChannel(self._fanout(), sid, self._spawn),
            token=token,
            bucket=TokenBucket(limits.events_per_second, limits.event_burst, self._clock),
            costly=TokenBucket(limits.joins_per_second, limits.join_burst, self._clock),
        )
        self._connections[sid] = connection
        # The token's own deadline (with the leeway its verification allowed), and the join's.
        loop = asyncio.get_running_loop()
        expires_in = identity.expires_at + limits.token_leeway - time.time()
        connection.timers.append(
            loop.call_later(max(expires_in, 0), self._close_later, sid, ErrorCode.TOKEN_EXPIRED)
        )
        self._arm_join_deadline(connection)
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
        connection.cancel_timers()
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
        sid, rest = args[0], args[1:]
        # The reserved names come from Socket.IO itself only when the socket is not yet ours
        # (connect) or already on its way out (disconnect); a client sending them otherwise is
        # answered `unknown_event` below, and its seat and the others' view stay as they are.
        if (event == "connect" and sid not in self._connections) or (
            event == "disconnect" and not self.server.manager.is_connected(sid, NAMESPACE)
        ):
            return await super().trigger_event(event, *args)
        answer = await self._dispatch(event, sid, rest)
        if event == "join":  # joins and their refusals by code (rate limit included)
            error = answer.get("error") if isinstance(answer, dict) else None
            code = error.get("code") if isinstance(error, dict) else None
            metrics.SOCKET_JOINS.labels(metrics.result_label(code, metrics.JOINED)).inc()
        return answer

    async def _dispatch(self, event: Any, sid: str, rest: tuple[Any, ...]) -> Any:
        connection = self._connections.get(sid)
        if connection is None:
            return _refusal(TriadError(ErrorCode.NOT_JOINED, "the connection is not authenticated"))
        if connection.closed_with is not None:  # closing: its access ended
            return _refusal(TriadError(connection.closed_with, "this connection is closing"))
        if not connection.bucket.take() or (
            # A client's event name can be any JSON value: only strings are names of ours.
            isinstance(event, str) and event in COSTLY_EVENTS and not connection.costly.take()
        ):
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
        return (result or Ack()).model_dump(mode="python")

    async def close(self) -> None:
        """Server shutdown: finish the pending disconnects. Safe to call twice."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def worker_leaving(self) -> None:
        """This worker stops serving its consults (fenced, or drained past its time): every
        socket is told `worker_leaving` (find the consult's worker again) and closed, then
        the rooms close without ending and their notes leave memory (the database has every
        acknowledged update; a later owner, maybe this worker again, loads them afresh)."""
        for connection in list(self._connections.values()):
            if connection.closed_with is None and not connection.channel.closed:
                connection.closed_with = ErrorCode.WORKER_LEAVING
                connection.cancel_timers()
                await connection.channel.close(ErrorCode.WORKER_LEAVING, LEAVING)
        await self._deps().rooms.close_rooms()  # their notes leave memory with them
        log.info("cluster.rooms_left")

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- access ending --------------------------------------------------------------------------

    async def on_access_event(self, event: AccessEvent) -> None:
        """A revocation (from this process or another, through the bus): close the sockets
        whose token it takes away."""
        for connection in list(self._connections.values()):
            code = connection.revoked_by(event)
            if code is not None:
                await self._shut(connection, code)

    async def recheck_all(self) -> None:
        """Re-check every live socket's token against the database (the sweep's work)."""
        live = [c for c in self._connections.values() if c.closed_with is None]
        codes = await self._deps().access.lapsed([c.identity for c in live])
        for connection, code in zip(live, codes, strict=True):
            if code is not None:
                await self._shut(connection, code)

    async def _shut(self, connection: Connection, code: ErrorCode, message: str = "") -> None:
        """Close a socket whose access ended: its seat is freed, it is told why, then it is
        disconnected (after the event it may be handling is acknowledged)."""
        if connection.closed_with is not None or connection.channel.closed:
            return
        connection.closed_with = code
        connection.cancel_timers()
        identity = connection.identity
        log.info("socket.access_ended", participant_id=identity.participant_id, code=str(code))
        message = message or CLOSE_MESSAGES.get(code, "your access ended")
        room = self._deps().rooms.get(identity.consult_id)
        if connection.joined and room is not None:
            connection.joined = False
            await room.revoked(identity.participant_id, connection.channel, code, message)
        await connection.channel.close(code, message)

    def _close_later(self, sid: str, code: ErrorCode) -> None:
        connection = self._connections.get(sid)
        if connection is None or (code is ErrorCode.JOIN_TIMEOUT and connection.joined):
            return
        self._spawn(self._shut(connection, code))

    def _arm_join_deadline(self, connection: Connection) -> None:
        timeout = self._deps().limits.join_timeout
        handle = asyncio.get_running_loop().call_later(
            timeout, self._close_later, connection.channel.sid, ErrorCode.JOIN_TIMEOUT
        )
        connection.timers.append(handle)

    def _require_unjoined_place(self, participant_id: ParticipantId) -> None:
        """A participant may hold only a few sockets that have not joined (a reconnecting tab
        needs one or two); more is a client spinning up sockets."""
        waiting = sum(
            1
            for c in self._connections.values()
            if c.identity.participant_id == participant_id and not c.joined and not c.closed_with
        )
        if waiting >= self._deps().limits.max_unjoined_per_participant:
            raise TriadError(ErrorCode.RATE_LIMITED, "too many connections waiting to join")

    # -- room events --------------------------------------------------------------------------

    async def _join(self, connection: Connection, args: tuple[Any, ...]) -> JoinAck:
        payloads.parse(payloads.Join, args)
        deps = self._deps()
        # The token again, against the database: signature, key, revocation, consult. A socket
        # that slipped past a revocation event (connecting while it was published) stops here.
        try:
            identity, consult = await deps.access.authenticate(
                connection.token, connection.identity.consult_id
            )
        except TriadError as error:
            await self._shut(connection, error.code, error.message)
            raise
        connection.identity, connection.consult = identity, consult
        if deps.placement is not None:  # several workers: seat only on the consult's own
            await deps.placement.require_here(consult.id)
        state = await deps.rooms.join(identity, consult, connection.channel)
        code = connection.closed_with
        if code is not None:  # its access ended while it was being seated: free the seat
            room = deps.rooms.get(identity.consult_id)
            if room is not None:
                message = CLOSE_MESSAGES.get(code, "your access ended")
                await room.revoked(identity.participant_id, connection.channel, code, message)
            raise TriadError(code, "this connection is closing")
        connection.joined = True
        return JoinAck(state=state)

    async def _leave(self, connection: Connection, args: tuple[Any, ...]) -> None:
        payloads.parse(payloads.Empty, args)
        room = self._room(connection)
        connection.joined = False
        await room.leave(connection.identity.participant_id, connection.channel)
        self._arm_join_deadline(connection)

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

    async def _media_restart(self, connection: Connection, args: tuple[Any, ...]) -> Ack:
        message = payloads.parse(payloads.MediaRestart, args)
        pc = await self._room(connection).restart_media(
            connection.identity.participant_id, message.pc
        )
        return MediaRestartAck(pc=pc)

    async def _share_start(self, connection: Connection, args: tuple[Any, ...]) -> None:
        payloads.parse(payloads.Empty, args)
        await self._room(connection).start_share(connection.identity.participant_id)

    async def _share_stop(self, connection: Connection, args: tuple[Any, ...]) -> Ack:
        message = payloads.parse(payloads.ShareStop, args)
        target = None if message.participant_id is None else ParticipantId(message.participant_id)
        stopped = await self._room(connection).stop_share(
            connection.identity.participant_id, target
        )
        return ShareStopAck(stopped=stopped)

    async def _share_permission(self, connection: Connection, args: tuple[Any, ...]) -> None:
        message = payloads.parse(payloads.SharePermission, args)
        await self._room(connection).allow_client_share(
            connection.identity.participant_id, message.client_may_share
        )

    async def _end(self, connection: Connection, args: tuple[Any, ...]) -> Ack:
        payloads.parse(payloads.Empty, args)
        plan_id = await self._room(connection).end(connection.identity.participant_id)
        return EndAck(plan_id=str(plan_id))

    def _notes_call(
        self,
        call: Callable[[ConsultRoom, JoinIdentity, tuple[Any, ...]], Awaitable[Ack]],
    ) -> Handler:
        async def handle(connection: Connection, args: tuple[Any, ...]) -> Ack:
            # The notes rule, admission included, is notes_events.py's.
            return await call(self._room(connection), connection.identity, args)

        return handle

    def _room(self, connection: Connection) -> ConsultRoom:
        if not connection.joined:
            raise TriadError(ErrorCode.NOT_JOINED, "join the room first")
        room = self._deps().rooms.get(connection.identity.consult_id)
        if room is None:  # joined, and the room has since closed
            raise TriadError(ErrorCode.CONSULT_ENDED, "the consult has ended")
        return room


def _refusal(error: TriadError) -> dict[str, Any]:
    problems = (
        [FieldProblem(location=f.location, message=f.message) for f in error.field_errors]
        if error.field_errors
        else None
    )
    owner = error.owner if isinstance(error, WrongWorker) else None
    worker = WorkerOut(id=owner.worker_id, url=owner.url) if owner is not None else None
    refusal = Refusal(
        error=ErrorBody(code=error.code, message=error.message, errors=problems, worker=worker)
    )
    return refusal.model_dump(mode="json", exclude_none=True)
