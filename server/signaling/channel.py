"""A participant's Socket.IO connection, as the room layer's `Channel`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import socketio

from ..errors import ErrorCode
from ..rooms.events import Closing, ServerEvent
from ..rooms.ports import Channel

NAMESPACE = "/consult"


class SocketFanout:
    """The sockets of one Socket.IO server as the room layer's `Fanout`: an event for several
    goes out as one `emit` to their sids, so python-socketio encodes it once."""

    def __init__(self, sio: socketio.AsyncServer, namespace: str = NAMESPACE) -> None:
        self.sio = sio
        self.namespace = namespace

    async def send(self, channels: Sequence[Channel], message: ServerEvent) -> None:
        sids = [c.sid for c in channels if isinstance(c, SocketChannel) and not c.closed]
        if sids:
            await self.sio.emit(message.event, message.wire(), to=sids, namespace=self.namespace)


class SocketChannel:
    def __init__(
        self,
        fanout: SocketFanout,
        sid: str,
        spawn: Callable[[Coroutine[Any, Any, None]], None],
    ) -> None:
        self.fanout = fanout
        self.sid = sid
        self._spawn = spawn
        self.closed = False
        # Clear while one of this socket's events is being handled: a disconnect the handler
        # causes (a host ending the consult) waits for it, so its acknowledgement goes out first.
        self.idle = asyncio.Event()
        self.idle.set()

    async def send(self, message: ServerEvent) -> None:
        await self.fanout.send([self], message)

    async def close(self, code: ErrorCode | None = None, message: str = "") -> None:
        if self.closed:
            return
        if code is not None:
            await self.send(Closing(code=code, message=message))
        self.closed = True
        # The disconnect runs on its own task: Socket.IO calls the disconnect handler inline,
        # and that handler takes the room's lock, which our caller may be holding.
        self._spawn(self._disconnect())

    async def _disconnect(self) -> None:
        await self.idle.wait()
        await self.fanout.sio.disconnect(self.sid, namespace=self.fanout.namespace)
