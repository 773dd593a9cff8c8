"""A participant on the real python-socketio client: connects with a join token, calls events
with acknowledgements, and records every server event so tests can wait for one (with a
deadline, never a fixed sleep)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import socketio

NAMESPACE = "/consult"
DEADLINE = 15.0


class RoomClient:
    def __init__(self, base_url: str, token: str, label: str = "") -> None:
        self.base_url = base_url
        self.token = token
        self.label = label
        self.events: list[tuple[str, Any]] = []
        self.connect_error: Any = None
        self._changed = asyncio.Condition()
        self.sio = socketio.AsyncClient(reconnection=False, logger=False, engineio_logger=False)
        self.sio.on("*", self._record, namespace=NAMESPACE)
        self.sio.on("connect_error", self._refused, namespace=NAMESPACE)
        self.sio.on("disconnect", self._disconnected, namespace=NAMESPACE)
        self.disconnected = False

    async def connect(self, auth: Any = None) -> None:
        await self.sio.connect(
            self.base_url,
            namespaces=[NAMESPACE],
            transports=["websocket"],
            auth=auth if auth is not None else {"token": self.token},
            wait_timeout=DEADLINE,
        )

    async def call(self, event: str, payload: Any = None, *, raw: bool = False) -> Any:
        """Emit with an acknowledgement and return the ack (`raw` sends `payload` as given,
        even None, for tests of malformed input)."""
        data = payload if (raw or payload is not None) else {}
        return await self.sio.call(event, data, namespace=NAMESPACE, timeout=DEADLINE)

    async def join(self) -> dict[str, Any]:
        ack = await self.call("join")
        assert ack["ok"], ack
        state: dict[str, Any] = ack["state"]
        return state

    def received(self, event: str) -> list[Any]:
        return [data for name, data in self.events if name == event]

    async def wait_event(
        self,
        event: str,
        where: Callable[[Any], bool] = lambda _data: True,
        *,
        after: int = 0,
        within: float = DEADLINE,
    ) -> Any:
        """The first `event` (from index `after` of the event log) that `where` accepts."""

        def found() -> Any:
            for name, data in self.events[after:]:
                if name == event and where(data):
                    return (data,)
            return None

        async with asyncio.timeout(within):
            async with self._changed:
                await self._changed.wait_for(lambda: found() is not None)
        return found()[0]  # type: ignore[index]

    async def wait_disconnected(self, within: float = DEADLINE) -> None:
        async with asyncio.timeout(within):
            async with self._changed:
                await self._changed.wait_for(lambda: self.disconnected)

    async def close(self) -> None:
        await self.sio.disconnect()
        await self.sio.shutdown() if hasattr(self.sio, "shutdown") else None

    async def _record(self, event: str, data: Any = None) -> None:
        self.events.append((event, data))
        await self._notify()

    async def _refused(self, data: Any = None) -> None:
        self.connect_error = data
        await self._notify()

    async def _disconnected(self, *_args: Any) -> None:
        self.disconnected = True
        await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()
