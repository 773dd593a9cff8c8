"""A participant on the real python-socketio client: connects with a join token, calls events
with acknowledgements, and records every server event so tests can wait for one (with a
deadline, never a fixed sleep).

Every event received and every acknowledgement is checked against the protocol's models (the
ones the AsyncAPI document is built from), so each room test is also a conformance test: a
payload the contract does not describe fails the test when the client closes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import socketio
from pydantic import BaseModel, ValidationError

from server.rooms.events import SERVER_EVENTS
from server.signaling.contract import CLIENT_EVENTS, Refusal

NAMESPACE = "/consult"
DEADLINE = 15.0
_SERVER_EVENTS: dict[str, type[BaseModel]] = {model.event: model for model in SERVER_EVENTS}
_ACKS: dict[str, type[BaseModel]] = {event.name: event.ack for event in CLIENT_EVENTS}


class RoomClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        label: str = "",
        *,
        transports: tuple[str, ...] = ("websocket",),
        http: aiohttp.ClientSession | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """`base_url`: the server's, or a worker's public URL, whose path prefixes Socket.IO's
        (as the browser's `socketAddress`). `http`: the session to connect with (one trusting a
        test CA); `headers`: sent with every request (a browser's Origin)."""
        self.base_url = base_url
        self.token = token
        self.label = label
        self.transports = list(transports)
        self._http = http
        self._headers = dict(headers or {})
        self.events: list[tuple[str, Any]] = []
        self.connect_error: Any = None
        self._changed = asyncio.Condition()
        self.sio = self._new_socket()
        self.disconnected = False
        # Payloads the protocol's models do not describe: (event, why).
        self.violations: list[tuple[str, str]] = []
        self._auth: Any = None
        # The `wrong_worker` answers `join()` followed (several workers: the consult's is
        # another than the one connected to).
        self.moves = 0

    def _new_socket(self) -> socketio.AsyncClient:
        sio = socketio.AsyncClient(
            reconnection=False,
            logger=False,
            engineio_logger=False,
            serializer="msgpack",
            http_session=self._http,
        )
        sio.on("*", self._record, namespace=NAMESPACE)
        sio.on("connect_error", self._refused, namespace=NAMESPACE)

        async def disconnected(*_args: Any) -> None:
            if sio is self.sio:  # not the socket a `wrong_worker` answer made it leave
                await self._disconnected()

        sio.on("disconnect", disconnected, namespace=NAMESPACE)
        return sio

    async def connect(self, auth: Any = None) -> None:
        self._auth = auth
        url = urlsplit(self.base_url)
        await self.sio.connect(
            f"{url.scheme}://{url.netloc}",
            headers=self._headers,
            namespaces=[NAMESPACE],
            transports=self.transports,
            auth=auth if auth is not None else {"token": self.token},
            socketio_path=f"{url.path.rstrip('/')}/socket.io",
            wait_timeout=DEADLINE,
        )

    async def call(self, event: str, payload: Any = None, *, raw: bool = False) -> Any:
        """Emit with an acknowledgement and return the ack (`raw` sends `payload` as given,
        even None, for tests of malformed input)."""
        data = payload if (raw or payload is not None) else {}
        ack = await self.sio.call(event, data, namespace=NAMESPACE, timeout=DEADLINE)
        success = _ACKS.get(event) if isinstance(event, str) else None
        if isinstance(ack, dict) and ack.get("ok") is True and success is not None:
            self._check(f"{event} ack", success, ack)
        else:
            self._check(f"{event} ack", Refusal, ack)
        return ack

    async def join(self) -> dict[str, Any]:
        """Join, following a `wrong_worker` answer once as the browser does (web/src/signaling.js):
        connect at the worker it names, with the same token, and join there."""
        ack = await self.call("join")
        if not ack["ok"] and ack["error"]["code"] == "wrong_worker":
            await self._move(ack["error"]["worker"]["url"])
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
        await self.wait_until(lambda: self.disconnected, within=within)

    async def wait_until(self, condition: Callable[[], bool], *, within: float = DEADLINE) -> None:
        """Until `condition()` holds, checked at each event, disconnect or refusal."""
        async with asyncio.timeout(within):
            async with self._changed:
                await self._changed.wait_for(condition)

    async def _move(self, url: str) -> None:
        """The same participant on a new socket at `url` (the events seen so far are kept)."""
        old, self.sio = self.sio, self._new_socket()
        await old.disconnect()
        await old.shutdown() if hasattr(old, "shutdown") else None
        self.base_url = url
        self.moves += 1
        await self.connect(self._auth)

    async def close(self) -> None:
        await self.sio.disconnect()
        await self.sio.shutdown() if hasattr(self.sio, "shutdown") else None
        assert not self.violations, f"{self.label}: payloads off the contract: {self.violations}"

    async def _record(self, event: str, data: Any = None) -> None:
        self.events.append((event, data))
        model = _SERVER_EVENTS.get(event)
        if model is None:
            self.violations.append((event, "not a documented server event"))
        else:
            self._check(event, model, data)
        await self._notify()

    def _check(self, what: str, model: type[BaseModel], data: Any) -> None:
        try:
            model.model_validate(data)
        except ValidationError as exc:
            self.violations.append((what, str(exc.errors(include_input=False))))

    async def _refused(self, data: Any = None) -> None:
        self.connect_error = data
        await self._notify()

    async def _disconnected(self, *_args: Any) -> None:
        self.disconnected = True
        await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()
