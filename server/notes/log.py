"""The durable side of the notes: the sealed append-only update log, snapshots, and the group
commit that makes each acknowledged update durable without one transaction per keystroke.

Every update is sealed with the key ring before it reaches the database, bound (as associated
data) to its consult, document and sequence number, so a row copied elsewhere does not open.

Group commit: `append` queues a row and waits; one writer task takes everything queued, writes it
in one transaction and wakes the waiters only after the commit. While it commits, new rows queue
for the next batch. So a caller's return still means "durable", and N concurrent documents cost
one commit instead of N. Snapshot writes go through the same writer, which keeps the notes to one
writer at a time (SQLite has exactly one anyway).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from .. import logs
from ..auth.roles import Role
from ..crypto import KeyRing
from ..db.engine import Database
from ..db.models import NoteSnapshot, NoteUpdate
from ..ids import ConsultId, ParticipantId
from .documents import DocumentName

_log = logs.get("triad.notes.log")

Job = Callable[[AsyncConnection], Awaitable[None]]


def update_aad(consult_id: str, doc: str, seq: int) -> bytes:
    return f"note_update:{consult_id}:{doc}:{seq}".encode()


def snapshot_aad(consult_id: str, doc: str, seq: int) -> bytes:
    return f"note_snapshot:{consult_id}:{doc}:{seq}".encode()


@dataclass
class Authors:
    """Who changed which section: section -> {(participant id, role)}. Ids and roles only."""

    by_section: dict[str, set[tuple[str, str]]] = field(default_factory=dict)

    def add(self, sections: tuple[str, ...], participant_id: str, role: str) -> None:
        for section in sections:
            self.by_section.setdefault(section, set()).add((participant_id, role))

    def merge(self, other: Authors) -> None:
        for section, people in other.by_section.items():
            self.by_section.setdefault(section, set()).update(people)

    def to_json(self) -> dict[str, Any]:
        return {s: sorted([list(p) for p in people]) for s, people in self.by_section.items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Authors:
        return cls({s: {(str(p[0]), str(p[1])) for p in people} for s, people in data.items()})


@dataclass(frozen=True)
class LogEntry:
    consult_id: ConsultId
    doc: DocumentName
    seq: int
    participant_id: ParticipantId
    role: Role
    sections: tuple[str, ...]
    update: bytes = field(repr=False)
    at: datetime

    def __post_init__(self) -> None:
        if self.seq < 1:
            raise ValueError("log sequence numbers start at 1")
        if self.at.tzinfo is None:
            raise ValueError("log times are aware")


@dataclass(frozen=True)
class StoredDocument:
    """What the database holds for one document: the newest snapshot (or none) and the log
    after it, in order."""

    snapshot: bytes | None = field(repr=False)
    snapshot_seq: int
    entries: tuple[LogEntry, ...]
    authors: Authors

    @property
    def last_seq(self) -> int:
        return self.entries[-1].seq if self.entries else self.snapshot_seq


class NoteLog:
    def __init__(self, db: Database, keyring: KeyRing) -> None:
        self._db = db
        self._keyring = keyring
        self._pending: list[tuple[Job | dict[str, Any], asyncio.Future[None]]] = []
        self._wakeup = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closed = False

    async def append(self, entry: LogEntry) -> None:
        """Returns once the entry is committed; raises if it could not be."""
        row = {
            "consult_id": entry.consult_id,
            "doc": str(entry.doc),
            "seq": entry.seq,
            "participant_id": entry.participant_id,
            "role": str(entry.role),
            "sections": list(entry.sections),
            "sealed": self._keyring.seal(
                entry.update, update_aad(entry.consult_id, entry.doc, entry.seq)
            ),
            "created_at": entry.at,
        }
        await self._submit(row)

    async def write_snapshot(
        self,
        consult_id: ConsultId,
        doc: DocumentName,
        seq: int,
        state: bytes,
        authors: Authors,
        at: datetime,
    ) -> None:
        """Replace the document's snapshot with this state (which includes every update up to
        `seq`) and delete the log rows it covers, in one transaction."""
        await self._submit(self.snapshot_job(consult_id, doc, seq, state, authors, at))

    def snapshot_job(
        self,
        consult_id: ConsultId,
        doc: DocumentName,
        seq: int,
        state: bytes,
        authors: Authors,
        at: datetime,
    ) -> Job:
        sealed = self._keyring.seal(state, snapshot_aad(consult_id, doc, seq))
        # A JSON round trip now: a job that is retried must not see a set mutated since.
        authors_json = json.loads(json.dumps(authors.to_json()))

        async def job(conn: AsyncConnection) -> None:
            where = (NoteSnapshot.consult_id == consult_id) & (NoteSnapshot.doc == str(doc))
            newer = await conn.scalar(select(NoteSnapshot.seq).where(where))
            if newer is not None and newer >= seq:
                return  # a later snapshot (say, the final one) is already in: keep it
            await conn.execute(delete(NoteSnapshot).where(where))
            await conn.execute(
                insert(NoteSnapshot).values(
                    consult_id=consult_id,
                    doc=str(doc),
                    seq=seq,
                    authors=authors_json,
                    sealed=sealed,
                    created_at=at,
                )
            )
            await conn.execute(
                delete(NoteUpdate).where(
                    NoteUpdate.consult_id == consult_id,
                    NoteUpdate.doc == str(doc),
                    NoteUpdate.seq <= seq,
                )
            )

        return job

    async def load(self, consult_id: ConsultId, doc: DocumentName) -> StoredDocument:
        async with self._db.engine.connect() as conn:
            snap = (
                await conn.execute(
                    select(NoteSnapshot.seq, NoteSnapshot.sealed, NoteSnapshot.authors).where(
                        NoteSnapshot.consult_id == consult_id, NoteSnapshot.doc == str(doc)
                    )
                )
            ).first()
            after = snap.seq if snap is not None else 0
            rows = (
                await conn.execute(
                    select(NoteUpdate)
                    .where(
                        NoteUpdate.consult_id == consult_id,
                        NoteUpdate.doc == str(doc),
                        NoteUpdate.seq > after,
                    )
                    .order_by(NoteUpdate.seq)
                )
            ).all()
        authors = Authors.from_json(snap.authors) if snap is not None else Authors()
        state = (
            self._keyring.open(snap.sealed, snapshot_aad(consult_id, doc, snap.seq))
            if snap is not None
            else None
        )
        entries = []
        for row in rows:
            entry = LogEntry(
                consult_id=consult_id,
                doc=doc,
                seq=row.seq,
                participant_id=ParticipantId(row.participant_id),
                role=Role(row.role),
                sections=tuple(row.sections),
                update=self._keyring.open(row.sealed, update_aad(consult_id, doc, row.seq)),
                at=row.created_at,
            )
            authors.add(entry.sections, entry.participant_id, entry.role)
            entries.append(entry)
        return StoredDocument(state, after, tuple(entries), authors)

    async def close(self) -> None:
        """Finish what is queued, then stop the writer."""
        self._closed = True
        self._wakeup.set()
        if self._writer is not None:
            await self._writer
            self._writer = None

    # --- the writer ---

    async def _submit(self, item: Job | dict[str, Any]) -> None:
        if self._closed:
            raise RuntimeError("the notes log is closed")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_loop(), name="notes-log-writer")
        self._wakeup.set()
        await future

    async def _write_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch, self._pending = self._pending, []
                await self._write_batch(batch)
            if self._closed:
                return

    async def _write_batch(
        self, batch: list[tuple[Job | dict[str, Any], asyncio.Future[None]]]
    ) -> None:
        try:
            await self._commit([item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][1], exc)
                return
            # One bad item must not fail its neighbours: retry each alone.
            _log.warning("notes_batch_failed", size=len(batch), error=type(exc).__name__)
            for item, future in batch:
                try:
                    await self._commit([item])
                except Exception as single:
                    _settle(future, single)
                else:
                    _settle(future, None)
            return
        for _, future in batch:
            _settle(future, None)

    async def _commit(self, items: list[Job | dict[str, Any]]) -> None:
        rows = [item for item in items if isinstance(item, dict)]
        async with self._db.engine.begin() as conn:
            if rows:
                await conn.execute(insert(NoteUpdate), rows)
            for item in items:
                if not isinstance(item, dict):
                    await item(conn)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():  # the waiter went away; the write happened (or not) all the same
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
