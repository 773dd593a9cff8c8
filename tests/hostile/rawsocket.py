"""A hand-driven Engine.IO v4 / Socket.IO v5 websocket (aiohttp's client) speaking the msgpack
serialization the server uses, for frames the python-socketio client would never send: maps
of the wrong shape, absurd ack ids, nesting, extension types, truncated or trailing bytes,
reserved event names. Engine.IO's own packets (open, ping) are text frames; every Socket.IO
packet is one binary frame."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import msgpack

NAMESPACE = "/consult"
DEADLINE = 10.0


class RawSocket:
    def __init__(self, base_url: str) -> None:
        self.url = base_url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        self.session = aiohttp.ClientSession()
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.texts: list[str] = []
        self.packets: list[dict[str, Any]] = []
        self.closed = False
        self._changed = asyncio.Condition()
        self._reader: asyncio.Task[None] | None = None
        self._next_id = 1000  # far from the ids the hand-made frames use

    async def open(self, token: str) -> None:
        self.ws = await self.session.ws_connect(self.url, max_msg_size=0)
        self._reader = asyncio.get_running_loop().create_task(self._read())
        await self.wait_text(lambda t: t.startswith("0{"))
        await self.send_packet({"type": 0, "nsp": NAMESPACE, "data": {"token": token}})
        await self.wait_packet(lambda p: p.get("type") == 0 and p.get("nsp") == NAMESPACE)

    async def send(self, text: str) -> None:
        assert self.ws is not None
        await self.ws.send_str(text)

    async def send_bytes(self, data: bytes) -> None:
        assert self.ws is not None
        await self.ws.send_bytes(data)

    async def send_packet(self, packet: Any) -> None:
        """Any value, packed as msgpack into one binary frame."""
        await self.send_bytes(msgpack.packb(packet))

    async def call(self, event: str, payload: Any = None) -> Any:
        """A well-formed event with an ack id; returns the ack's first argument."""
        ack_id = self.new_id()
        args = [event] if payload is None else [event, payload]
        await self.send_packet({"type": 2, "nsp": NAMESPACE, "data": args, "id": ack_id})
        return await self.ack(ack_id)

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    async def ack(self, ack_id: int, within: float = DEADLINE) -> Any:
        packet = await self.wait_packet(
            lambda p: p.get("type") == 3 and p.get("nsp") == NAMESPACE and p.get("id") == ack_id,
            within,
        )
        return packet["data"][0]

    def events(self, name: str) -> list[Any]:
        return [
            p["data"][1] if len(p["data"]) > 1 else None
            for p in self.packets
            if p.get("type") == 2 and p.get("nsp") == NAMESPACE and p["data"][:1] == [name]
        ]

    async def wait_packet(self, where: Any, within: float = DEADLINE) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            return next((p for p in self.packets if where(p)), None)

        async with asyncio.timeout(within):
            async with self._changed:
                await self._changed.wait_for(lambda: found() is not None or self.closed)
        packet = found()
        if packet is None:
            raise ConnectionError("the server closed the socket")
        return packet

    async def wait_text(self, where: Any, within: float = DEADLINE) -> str:
        def found() -> str | None:
            return next((t for t in self.texts if where(t)), None)

        async with asyncio.timeout(within):
            async with self._changed:
                await self._changed.wait_for(lambda: found() is not None or self.closed)
        text = found()
        if text is None:
            raise ConnectionError("the server closed the socket")
        return text

    async def wait_closed(self, within: float = DEADLINE) -> None:
        async with asyncio.timeout(within):
            async with self._changed:
                await self._changed.wait_for(lambda: self.closed)

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for message in self.ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    if message.data == "2":  # Engine.IO ping: answer, or be dropped
                        await self.ws.send_str("3")
                        continue
                    self.texts.append(message.data)
                elif message.type == aiohttp.WSMsgType.BINARY:
                    self.packets.append(msgpack.unpackb(message.data))
                else:
                    continue
                async with self._changed:
                    self._changed.notify_all()
        finally:
            self.closed = True
            async with self._changed:
                self._changed.notify_all()

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await self.session.close()
