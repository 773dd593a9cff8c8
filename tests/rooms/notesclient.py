"""A participant's notes documents on the python-socketio client: pycrdt docs that sync with
the server by state vector, send their own edits as Yjs updates and apply what is fanned out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pycrdt

from tests.roomclient import RoomClient


class NotesClient:
    def __init__(self, room: RoomClient) -> None:
        self.room = room
        self.docs: dict[str, pycrdt.Doc[Any]] = {}
        self.applied = 0  # index into room.events already applied

    def doc(self, name: str) -> pycrdt.Doc[Any]:
        if name not in self.docs:
            self.docs[name] = pycrdt.Doc()
        return self.docs[name]

    def text(self, doc: str, root: str) -> str:
        return str(self.doc(doc).get(root, type=pycrdt.Text))

    async def sync(self, name: str) -> dict[str, Any]:
        doc = self.doc(name)
        ack: dict[str, Any] = await self.room.call(
            "notes-sync", {"doc": name, "state_vector": doc.get_state()}
        )
        if ack["ok"]:
            doc.apply_update(ack["update"])
        return ack

    async def edit(self, name: str, change: Callable[[pycrdt.Doc[Any]], None]) -> dict[str, Any]:
        """Make a local edit and send exactly the update it produced."""
        doc = self.doc(name)
        before = doc.get_state()
        with doc.transaction():
            change(doc)
        update = doc.get_update(before)
        ack: dict[str, Any] = await self.room.call("notes-update", {"doc": name, "update": update})
        return ack

    def apply_received(self) -> None:
        """Apply every `notes-update` received since the last call."""
        for event, data in self.room.events[self.applied :]:
            if event == "notes-update":
                self.doc(data["doc"]).apply_update(data["update"])
        self.applied = len(self.room.events)


def insert(root: str, index: int, text: str) -> Callable[[pycrdt.Doc[Any]], None]:
    def change(doc: pycrdt.Doc[Any]) -> None:
        doc.get(root, type=pycrdt.Text).insert(index, text)

    return change


def append_text(root: str, text: str) -> Callable[[pycrdt.Doc[Any]], None]:
    def change(doc: pycrdt.Doc[Any]) -> None:
        shared = doc.get(root, type=pycrdt.Text)
        shared.insert(len(shared), text)

    return change
