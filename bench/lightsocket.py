"""A lean Socket.IO v5 client for load generation: one aiohttp websocket speaking Engine.IO v4
and the msgpack serialization the server uses, each received frame handled inline by one
reader task (no task, queue or packet object per message as python-socketio's client makes).

It speaks the same frames as the python-socketio client with `serializer="msgpack"` and
`transports=["websocket"]` (the server cannot tell them apart), with the subset of its API the
notes bench uses: `on`, `connect`, `call`, `disconnect`. Why it exists: 300 python-socketio
clients in the bench's one process took about 0.45 CPU s/s at 100 consults, on the same two
cores as the server, and their own loop's delays were part of every latency measured.
Shortcuts a load generator may take: no reconnection, no binary attachments (msgpack carries
bytes inline), one namespace."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import msgpack

CONNECT, DISCONNECT, EVENT, ACK, CONNECT_ERROR = 0, 1, 2, 3, 4
EventHandler = Callable[[Any], Awaitable[None]]


class LightSocketClient:
    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._namespace = "/"
        self._handlers: dict[str, EventHandler] = {}
        self._acks: dict[int, asyncio.Future[Any]] = {}
        self._connected: asyncio.Future[None] | None = None
        self._next_id = 0

    def on(self, event: str, handler: EventHandler, namespace: str = "/") -> None:
        self._handlers[event] = handler

    async def connect(
        self,
        url: str,
        namespaces: list[str],
        transports: list[str] | None = None,
        auth: dict[str, Any] | None = None,
    ) -> None:
        (self._namespace,) = namespaces
        self._session = aiohttp.ClientSession()
        ws_url = url.replace("http://", "ws://", 1).rstrip("/")
        self._ws = await self._session.ws_connect(
            ws_url + "/socket.io/?EIO=4&transport=websocket", max_msg_size=0
        )
        opened = await self._ws.receive(timeout=30)
        if opened.type != aiohttp.WSMsgType.TEXT or not opened.data.startswith("0"):
            raise ConnectionError("no Engine.IO open packet")
        json.loads(opened.data[1:])  # the handshake (sid, ping interval): nothing to keep
        self._connected = asyncio.get_running_loop().create_future()
        self._reader = asyncio.get_running_loop().create_task(self._read())
        await self._send({"type": CONNECT, "nsp": self._namespace, "data": auth or {}})
        await asyncio.wait_for(self._connected, 30)

    async def call(  # python-socketio's signature, which the bench calls
        self,
        event: str,
        data: Any,
        namespace: str = "/",
        timeout: float = 60,  # noqa: ASYNC109
    ) -> Any:
        self._next_id += 1
        ack_id = self._next_id
        answer = asyncio.get_running_loop().create_future()
        self._acks[ack_id] = answer
        try:
            await self._send(
                {"type": EVENT, "nsp": self._namespace, "data": [event, data], "id": ack_id}
            )
            return await asyncio.wait_for(answer, timeout)
        finally:
            self._acks.pop(ack_id, None)

    async def disconnect(self) -> None:
        if self._ws is not None and not self._ws.closed:
            await self._send({"type": DISCONNECT, "nsp": self._namespace})
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def _send(self, packet: dict[str, Any]) -> None:
        assert self._ws is not None
        await self._ws.send_bytes(msgpack.packb(packet))

    async def _read(self) -> None:
        assert self._ws is not None
        async for message in self._ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                if message.data == "2":  # Engine.IO ping: answer at once
                    await self._ws.send_str("3")
                continue
            if message.type != aiohttp.WSMsgType.BINARY:
                break
            packet = msgpack.unpackb(message.data)
            kind = packet.get("type")
            if kind == EVENT:
                name, *args = packet["data"]
                handler = self._handlers.get(name)
                if handler is not None:
                    await handler(args[0] if args else None)
            elif kind == ACK:
                answer = self._acks.get(packet.get("id", -1))
                if answer is not None and not answer.done():
                    answer.set_result(packet["data"][0] if packet["data"] else None)
            elif kind == CONNECT and self._connected is not None:
                self._connected.set_result(None) if not self._connected.done() else None
            elif kind == CONNECT_ERROR and self._connected is not None:
                self._connected.set_exception(ConnectionRefusedError(str(packet.get("data"))))
        for answer in self._acks.values():
            if not answer.done():
                answer.set_exception(ConnectionError("the socket closed"))
