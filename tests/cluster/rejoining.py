"""A participant that survives its worker, as the browser client does (web/src/signaling.js):
when its socket drops or cannot connect, it reads the session again (on any node that answers)
to learn the consult's worker, connects there, follows `wrong_worker`, and joins with the same
token. Each new room offers a new peer connection, answered by a fresh aiortc `ClientPeer`;
the therapist may also write notes, counting the edits the server acknowledged."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import aiohttp
import pycrdt
import socketio

from tests.media.peers import ClientPeer, TrackMapEntry
from tests.media.triadserver import Seat
from tests.roomclient import RoomClient

# Between attempts to find the worker and join it (a browser backs off the same way).
RETRY_SECONDS = 0.3
EDIT_SECONDS = 0.1


class Rejoining:
    def __init__(self, seat: Seat, consult_id: str, nodes: list[str], **peer_options: Any) -> None:
        self.seat = seat
        self.consult_id = consult_id
        # The nodes' base URLs, in the order a load balancer would try them.
        self.nodes = nodes
        self.peer_options = peer_options
        self.room: RoomClient | None = None
        self.peer = self._new_peer()
        # The worker URL of each successful join, in order.
        self.joins: list[str] = []
        # The codes the server closed this participant's sockets with (`error` events).
        self.closings: list[str] = []
        self.failures: list[BaseException] = []
        self.ended = False
        self._task: asyncio.Task[None] | None = None
        self._joined = asyncio.Event()

    def _new_peer(self) -> ClientPeer:
        return ClientPeer(self.seat.participant_id, **self.peer_options)

    @property
    def worker_url(self) -> str | None:
        return self.joins[-1] if self.joins and self._joined.is_set() else None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def joined(self) -> RoomClient:
        await self._joined.wait()
        assert self.room is not None
        return self.room

    async def locate(self, http: aiohttp.ClientSession) -> str | None:
        """The session's worker URL, from the first node that answers (None: none did)."""
        for base in self.nodes:
            url = f"{base}/api/v1/consults/{self.consult_id}/session"
            headers = {"Authorization": f"Bearer {self.seat.token}"}
            try:
                async with http.get(url, headers=headers) as answer:
                    body = json.loads(await answer.text())
                    if answer.status == 200:
                        worker: str = body["worker"]["url"]
                        return worker
                    if body.get("code") == "consult_ended":
                        self.ended = True
                        return None
            except (aiohttp.ClientError, TimeoutError, ValueError):
                continue
        return None

    async def _run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while not self.ended:
                room = await self._enter(http)
                if room is None:
                    await asyncio.sleep(RETRY_SECONDS)
                    continue
                try:
                    await self._serve(room)
                except Exception as exc:  # surfaced by close()
                    self.failures.append(exc)
                self._joined.clear()
                self.closings.extend(event["code"] for event in room.received("error"))
                with contextlib.suppress(Exception):
                    await room.sio.disconnect()
                # A new room offers a new peer connection: the old one's remote end is gone.
                await self.peer.close()
                self.peer = self._new_peer()

    async def _enter(self, http: aiohttp.ClientSession) -> RoomClient | None:
        url = await self.locate(http)
        for _ in range(3):  # `wrong_worker` answers followed in a row
            if url is None:
                return None
            room = RoomClient(url, self.seat.token, self.seat.role)
            try:
                await room.connect()
                ack = await room.call("join")
            except (socketio.exceptions.SocketIOError, TimeoutError, OSError):
                with contextlib.suppress(Exception):
                    await room.sio.disconnect()
                return None
            if ack["ok"]:
                self.room = room
                self.joins.append(url)
                self._joined.set()
                return room
            await room.sio.disconnect()
            code = ack["error"]["code"]
            if code == "consult_ended":
                self.ended = True
                return None
            if code != "wrong_worker":  # placement_unavailable: ask again shortly
                return None
            url = ack["error"]["worker"]["url"]
        return None

    async def _serve(self, room: RoomClient) -> None:
        """Answer the room's offers until the socket drops."""
        seen = 0
        generation: int | None = None
        while True:
            await room.wait_until(
                lambda n=seen: room.disconnected or len(room.received("signal")) > n, within=3600
            )
            if room.disconnected:
                return
            offer = room.received("signal")[seen]
            seen += 1
            if generation is not None and offer["pc"] != generation:
                await self.peer.close()
                self.peer = self._new_peer()
            generation = offer["pc"]
            tracks = [TrackMapEntry(**t) for t in offer["tracks"]]
            answer = await self.peer.handle_offer(offer["sdp"], tracks)
            try:
                await room.call("signal", {"type": "answer", "sdp": answer, "pc": offer["pc"]})
            except (socketio.exceptions.SocketIOError, TimeoutError):
                return

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.room is not None:
            with contextlib.suppress(Exception):
                await self.room.sio.disconnect()
        await self.peer.close()
        assert not self.failures, self.failures


class NotesWriter:
    """Appends numbered marks to the plan's summary through a `Rejoining` participant's socket,
    remembering those the server acknowledged (durable). After each rejoin it starts from the
    server's document: an edit never acknowledged may be lost, as in the browser."""

    def __init__(self, who: Rejoining) -> None:
        self.who = who
        self.acknowledged: list[str] = []
        self.refused = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        n = 0
        while True:
            room = await self.who.joined()
            doc: pycrdt.Doc[Any] = pycrdt.Doc()
            try:
                synced = await room.call("notes-sync", {"doc": "plan", "state_vector": b"\x00"})
                if not synced["ok"]:
                    raise TimeoutError  # not admitted yet on this room: try again
                doc.apply_update(synced["update"])
                while not room.disconnected:
                    n += 1
                    mark = f"[e{n}]"
                    before = doc.get_state()
                    with doc.transaction():
                        text = doc.get("summary", type=pycrdt.Text)
                        text.insert(len(text), mark)
                    update = doc.get_update(before)
                    ack = await room.call("notes-update", {"doc": "plan", "update": update})
                    if not ack["ok"]:
                        self.refused += 1
                        break
                    self.acknowledged.append(mark)
                    await asyncio.sleep(EDIT_SECONDS)
            except (socketio.exceptions.SocketIOError, TimeoutError):
                pass
            await asyncio.sleep(RETRY_SECONDS)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
