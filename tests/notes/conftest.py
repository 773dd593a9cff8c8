"""Fixtures for the notes channel: a real database (SQLite, and PostgreSQL when configured), a
consult made through the consult service, the NotesService over it, and browser stand-ins: pycrdt
documents that edit locally, send their updates through the service and receive the fan-out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pycrdt
import pytest

from server.auth.roles import Role
from server.consults import audit
from server.consults.audit import AuditAction
from server.consults.model import Actor, ConsultSpec, ConsultView, ParticipantSpec, PlatformCaller
from server.consults.platforms import PlatformKeys
from server.consults.service import ConsultService
from server.crypto import KeyRing
from server.db.engine import Database
from server.ids import ConsultId, ParticipantId
from server.notes.documents import DocumentName, may_read
from server.notes.log import Chain, LogEntry, NoteLog
from server.notes.service import Applied, NotesService
from tests.conftest import TEST_KEY

MAX_UPDATE = 4096


def utc_now() -> datetime:
    return datetime.now(UTC)


class Peer:
    """A participant's browser: its own copies of the documents it may read."""

    def __init__(self, world: World, role: Role) -> None:
        self.world = world
        self.role = role
        self.participant_id = world.ids[role]
        self.docs: dict[DocumentName, pycrdt.Doc[Any]] = {
            name: pycrdt.Doc() for name in DocumentName if may_read(role, name)
        }
        self.received: list[tuple[DocumentName, bytes]] = []

    def text(self, doc: DocumentName, root: str) -> str:
        return str(self.docs[doc].get(root, type=pycrdt.Text))

    def array(self, doc: DocumentName, root: str) -> Any:
        return self.docs[doc].get(root, type=pycrdt.Array).to_py()

    def edit(self, doc: DocumentName, change: Callable[[pycrdt.Doc[Any]], None]) -> bytes:
        """Make a local change and return the update it produced."""
        before = self.docs[doc].get_state()
        with self.docs[doc].transaction():
            change(self.docs[doc])
        return self.docs[doc].get_update(before)

    async def send(self, doc: DocumentName, update: bytes) -> Applied:
        """What signaling does: apply durably, then fan out to the other readers."""
        applied = await self.world.notes.apply(
            self.world.consult_id, self.participant_id, self.role, str(doc), update
        )
        for peer in self.world.peers.values():
            if peer is not self and doc in peer.docs:
                peer.docs[doc].apply_update(update)
                peer.received.append((doc, update))
        return applied

    async def sync(self, doc: DocumentName, service: NotesService | None = None) -> bytes:
        """The join/reconnect handshake: get what we miss, send what the server misses."""
        service = service or self.world.notes
        reply = await service.sync(
            self.world.consult_id, self.role, str(doc), self.docs[doc].get_state()
        )
        self.docs[doc].apply_update(reply.update)
        return reply.update


@dataclass
class World:
    db: Database
    keyring: KeyRing
    consults: ConsultService
    caller: PlatformCaller
    consult: ConsultView
    notes: NotesService
    peers: dict[Role, Peer] = field(default_factory=dict)

    @property
    def consult_id(self) -> ConsultId:
        return self.consult.id

    @property
    def ids(self) -> dict[Role, ParticipantId]:
        return {p.role: p.id for p in self.consult.participants}

    def service(self, **overrides: Any) -> NotesService:
        options: dict[str, Any] = {"max_update_bytes": MAX_UPDATE, "snapshot_every": 500}
        options.update(overrides)
        return NotesService(self.db, self.keyring, utc_now, **options)

    async def restart(self, **overrides: Any) -> NotesService:
        """A new process over the same database: the old service is closed, its memory gone."""
        await self.notes.close()
        self.notes = self.service(**overrides)
        return self.notes

    async def record_room_event(self, role: Role, action: str, at: datetime) -> None:
        """What the room layer writes when someone enters or leaves."""
        pid = self.ids[role]
        async with self.db.sessions.begin() as session:
            audit.record(
                session,
                at=at,
                actor=Actor("participant", pid),
                action=AuditAction(action),
                consult_id=self.consult_id,
                details={"participant_id": pid},
            )

    async def end(self) -> None:
        await self.consults.end(self.caller, self.consult_id)


async def make_world(database_url: str, *, seated: bool = False, **notes_options: Any) -> World:
    """`seated`: the consult has a guardian (its client is a minor) and an interpreter too."""
    db = Database(database_url)
    keyring = KeyRing.parse(TEST_KEY)
    keys = PlatformKeys(db, keyring, utc_now)
    created = await keys.create("Acme Health", Actor("operator", "test"))
    caller = await keys.authenticate(created.secret)
    consults = ConsultService(
        db,
        keyring,
        public_base_url="http://127.0.0.1:8080",
        token_ttl=timedelta(hours=1),
        clock=utc_now,
    )
    seats = [
        ParticipantSpec(Role.CLIENT, "Alex Rivera"),
        ParticipantSpec(Role.THERAPIST, "Sam Okafor"),
        ParticipantSpec(Role.PSYCHIATRIST, "Priya Nair"),
    ]
    if seated:
        seats += [
            ParticipantSpec(Role.GUARDIAN, "Jordan Rivera"),
            ParticipantSpec(Role.INTERPRETER, "Lucia Moreno"),
        ]
    spec = ConsultSpec(participants=tuple(seats), client_is_minor=seated)
    consult = (await consults.create(caller, spec)).consult
    options: dict[str, Any] = {"max_update_bytes": MAX_UPDATE, "snapshot_every": 500}
    options.update(notes_options)
    notes = NotesService(db, keyring, utc_now, **options)
    world = World(db, keyring, consults, caller, consult, notes)
    world.peers = {role: Peer(world, role) for role in world.ids}
    return world


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:
    world = await make_world(database_url)
    try:
        yield world
    finally:
        await world.notes.close()
        await world.db.close()


@pytest.fixture
async def seated_world(database_url: str) -> AsyncIterator[World]:
    world = await make_world(database_url, seated=True)
    try:
        yield world
    finally:
        await world.notes.close()
        await world.db.close()


async def write_unchecked_rows(
    world: World, rows: list[bytes], *, sections: tuple[str, ...], first_seq: int = 2
) -> None:
    """Append the client's `rows` to its document's log as the code before the update checks
    would have acknowledged them (no check runs): the state a rebuild must heal."""
    log = NoteLog(world.db, world.keyring)
    chain = Chain()
    for seq, data in enumerate(rows, start=first_seq):
        entry = LogEntry(
            consult_id=world.consult_id,
            doc=DocumentName.CLIENT,
            seq=seq,
            participant_id=world.ids[Role.CLIENT],
            role=Role.CLIENT,
            sections=sections,
            update=data,
            at=utc_now(),
        )
        await log.append(entry, chain)
    await log.close()
