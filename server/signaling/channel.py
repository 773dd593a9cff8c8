"""A participant's Socket.IO connection, as the room layer's `Channel`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import socketio

from ..errors import ErrorCode
from ..rooms.events import Closing, ServerEvent

NAMESPACE = "/consult"


class SocketChannel:
    def __init__(
        self,
        sio: socketio.AsyncServer,
        sid: str,
        spawn: Callable[[Coroutine[Any, Any, None]], None],
        namespace: str = NAMESPACE,
    ) -> None:
        self._sio = sio
        self.sid = sid
        self._namespace = namespace
        self._spawn = spawn
        self.closed = False
        # Clear while one of this socket's events is being handled: a disconnect the handler
        # causes (a host ending the consult) waits for it, so its acknowledgement goes out first.
        self.idle = asyncio.Event()
        self.idle.set()

    async def send(self, message: ServerEvent) -> None:
        if not self.closed:
            await self._sio.emit(
                message.event, message.wire(), to=self.sid, namespace=self._namespace
            )

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
        await self._sio.disconnect(self.sid, namespace=self._namespace)
