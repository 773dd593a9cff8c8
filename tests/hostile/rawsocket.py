"""A hand-driven Engine.IO v4 / Socket.IO v5 websocket (aiohttp's client), for frames the
python-socketio client would never send: absurd attachment counts and ack ids, nesting, binary
placeholders pointing nowhere, reserved event names."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

NAMESPACE = "/consult"
DEADLINE = 10.0


class RawSocket:
    def __init__(self, base_url: str) -> None:
        self.url = base_url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        self.session = aiohttp.ClientSession()
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.texts: list[str] = []
        self.closed = False
        self._changed = asyncio.Condition()
        self._reader: asyncio.Task[None] | None = None
        self._next_id = 1

    async def open(self, token: str) -> None:
        self.ws = await self.session.ws_connect(self.url, max_msg_size=0)
        self._reader = asyncio.get_running_loop().create_task(self._read())
        await self.wait_text(lambda t: t.startswith("0{"))
        await self.send(f"40{NAMESPACE}," + json.dumps({"token": token}))
        await self.wait_text(lambda t: t.startswith(f"40{NAMESPACE},"))

    async def send(self, text: str) -> None:
        assert self.ws is not None
        await self.ws.send_str(text)

    async def send_bytes(self, data: bytes) -> None:
        assert self.ws is not None
        await self.ws.send_bytes(data)

    async def call(self, event: str, payload: Any = None) -> Any:
        """A well-formed event with an ack id; returns the ack's first argument."""
        ack_id = self.new_id()
        args = [event] if payload is None else [event, payload]
        await self.send(f"42{NAMESPACE},{ack_id}" + json.dumps(args))
        return await self.ack(ack_id)

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    async def ack(self, ack_id: int | str, within: float = DEADLINE) -> Any:
        prefix = f"43{NAMESPACE},{ack_id}"
        text = await self.wait_text(lambda t: t.startswith(prefix + "["), within)
        return json.loads(text[len(prefix) :])[0]

    def events(self, name: str) -> list[Any]:
        found = []
        for text in self.texts:
            if text.startswith(f"42{NAMESPACE},"):
                body = json.loads(text[len(NAMESPACE) + 3 :])
                if body and body[0] == name:
                    found.append(body[1] if len(body) > 1 else None)
        return found

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
