"""The durable side of the notes: the sealed append-only update log, snapshots, and the group
commit that makes each acknowledged update durable without one transaction per keystroke.

Every update is sealed with the key ring before it reaches the database, bound (as associated
data) to its consult, document and sequence number, so a row copied elsewhere does not open.

Group commit: `append` queues a row and waits; one writer task takes everything queued, writes it
in one transaction and wakes the waiters only after the commit. While it commits, new rows queue
for the next batch. So a caller's return still means "durable", and N concurrent documents cost
one commit instead of N. Snapshot writes go through the same writer, which keeps the notes to one
writer at a time (SQLite has exactly one anyway).

The log closes when the consult ends. Each batch, after its inserts and in their transaction,
reads the status of its consults' rows `FOR SHARE` (one statement per batch): a consult ended
meanwhile has its items refused (`consult_ended`, nothing of them written), and an end racing
the batch waits for its commit (its `UPDATE` conflicts with the share lock; SQLite has one
writer). So once the end has committed, the log holds every update that will ever be
acknowledged, and a plan frozen after it, on any worker, holds them all.

A batch of updates alone (no snapshot in it) skips SQLAlchemy for the driver: on PostgreSQL
one statement on asyncpg (`log_postgres.py`: the share lock first, in a CTE, the inserts only
if no consult of the batch has ended), on SQLite three calls to aiosqlite's thread
(`log_sqlite.py`); the same rule either way.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pycrdt
from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from .. import logs
from ..auth.roles import Role
from ..consults.model import ConsultStatus
from ..crypto import KeyRing
from ..db.engine import Database
from ..db.models import Consult, NoteSnapshot, NoteUpdate
from ..errors import ErrorCode, TriadError
from ..ids import ConsultId, ParticipantId
from . import log_postgres, log_sqlite
from .documents import DocumentName
from .log_row import SealedRow

log = logs.get(__name__)

Job = Callable[[AsyncConnection], Awaitable[None]]
# SQLite: a passive WAL checkpoint after this many notes commits (about SQLite's own 1000 pages).
CHECKPOINT_EVERY = 500
# A commit's statements, built once: building them per batch (the IN list, the cache key of a
# new statement object) cost a few percent of a worker's CPU at 100 consults.
_INSERT_UPDATES = insert(NoteUpdate)
_CONSULTS_FOR_SHARE = (
    select(Consult.id, Consult.status)
    .where(Consult.id.in_(bindparam("consult_ids", expanding=True)))
    .with_for_update(read=True)  # FOR SHARE; SQLite's one writer is the lock
)


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


@dataclass(eq=False)
class Chain:
    """The order of one document's writes. Once a write of the chain fails, every later one
    fails too without being tried: a later update may build on the lost one, and must not be
    acknowledged as if the document were whole."""

    broken: bool = False
    # Broken because the consult ended: what is refused after is refused as `consult_ended`.
    ended: bool = False
    # The newest write queued on this chain: waiting for it waits for all before it.
    tail: asyncio.Future[None] | None = None

    async def settled(self) -> None:
        """Wait until everything queued so far is written; raise if an update of it failed (a
        failed snapshot breaks nothing: the log still has every update)."""
        if self.tail is not None and not self.tail.done():
            await asyncio.wait([self.tail])
        if self.broken:
            raise ChainBroken("an earlier write of this document failed")


class ChainBroken(Exception):
    pass


def consult_ended() -> TriadError:
    return TriadError(ErrorCode.CONSULT_ENDED, "the consult has ended: its notes are read-only")


# What to write, its waiter, its document's chain, and its consult.
_Item = tuple[Job | SealedRow, asyncio.Future[None], Chain, str]


class NoteLog:
    def __init__(self, db: Database, keyring: KeyRing) -> None:
        self._db = db
        self._keyring = keyring
        self._pending: list[_Item] = []
        self._wakeup = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        # The writer keeps one connection: no pool checkout or pre-ping per commit.
        self._conn: AsyncConnection | None = None
        self._commits = 0
        self._checkpoint: asyncio.Task[None] | None = None
        self._closed = False

    def append(self, entry: LogEntry, chain: Chain) -> asyncio.Future[None]:
        """Queue the entry; the future resolves once it is committed (or fails). Entries of one
        chain commit in the order they were queued."""
        row = SealedRow(
            consult_id=entry.consult_id,
            doc=str(entry.doc),
            seq=entry.seq,
            participant_id=entry.participant_id,
            role=str(entry.role),
            sections=list(entry.sections),
            sealed=self._keyring.seal(
                entry.update, update_aad(entry.consult_id, entry.doc, entry.seq)
            ),
            created_at=entry.at,
        )
        return self._submit(row, chain, entry.consult_id)

    def write_snapshot(
        self,
        consult_id: ConsultId,
        doc: DocumentName,
        seq: int,
        state: bytes,
        authors: Authors,
        at: datetime,
        chain: Chain,
    ) -> asyncio.Future[None]:
        """Queue a snapshot of the document (its state including every update up to `seq`); its
        write deletes the log rows it covers, in the same transaction."""
        job = self.snapshot_job(consult_id, doc, seq, state, authors, at)
        return self._submit(job, chain, consult_id)

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

    async def load(
        self,
        consult_id: ConsultId,
        doc: DocumentName,
        seed_from: ConsultId | None = None,
        at: datetime | None = None,
    ) -> StoredDocument:
        """The document as stored. With `seed_from` (a follow-up's carried-over document), a
        document never written yet is first seeded from that consult's (`seed`)."""
        stored = await self._load(consult_id, doc)
        fresh = stored.snapshot is None and not stored.entries
        if fresh and seed_from is not None and await self.seed(consult_id, doc, seed_from, at):
            stored = await self._load(consult_id, doc)
        return stored

    async def _load(self, consult_id: ConsultId, doc: DocumentName) -> StoredDocument:
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

    async def seed(
        self,
        consult_id: ConsultId,
        doc: DocumentName,
        source_id: ConsultId,
        at: datetime | None = None,
    ) -> bool:
        """Start a follow-up's document from the consult it follows: that document's final state
        becomes this consult's snapshot at seq 0, sealed for this consult, with no authors
        (whoever wrote it then did not write it in this consult). Written before anyone can
        build on it, so an update acknowledged later never depends on a seed that was lost.
        False when the source holds nothing. A racing seed of the same source is the same
        state; the first one written stays."""
        source = await self._load(source_id, doc)
        updates = ([source.snapshot] if source.snapshot is not None else []) + [
            entry.update for entry in source.entries
        ]
        if not updates:
            return False
        state = pycrdt.merge_updates(*updates) if len(updates) > 1 else updates[0]
        job = self.snapshot_job(consult_id, doc, 0, state, Authors(), at or datetime.now(UTC))
        try:
            async with self._db.engine.begin() as conn:
                await job(conn)
        except IntegrityError:
            return True  # another process seeded it between our read and our write: theirs
        log.info("notes_seeded", consult_id=consult_id, doc=str(doc), source=source_id)
        return True

    async def close(self) -> None:
        """Finish what is queued, then stop the writer."""
        self._closed = True
        self._wakeup.set()
        if self._writer is not None:
            await self._writer
            self._writer = None
        if self._checkpoint is not None:
            await self._checkpoint
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    # --- the writer ---

    def _submit(self, item: Job | SealedRow, chain: Chain, consult_id: str) -> asyncio.Future[None]:
        if self._closed:
            raise RuntimeError("the notes log is closed")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future, chain, consult_id))
        chain.tail = future
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_loop(), name="notes-log-writer")
        self._wakeup.set()
        return future

    async def _write_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch, self._pending = self._pending, []
                await self._write_batch(batch)
            if self._closed:
                return

    async def _write_batch(self, batch: list[_Item]) -> None:
        live = [entry for entry in batch if not _refuse_if_broken(entry)]
        try:
            # Rarely more than once: only when a consult of the batch ended meanwhile.
            while live and (ended := await self._commit(live)):
                live = [entry for entry in live if not _refuse_if_ended(entry, ended)]
        except Exception as exc:
            if len(live) > 1:
                log.warning("notes_batch_failed", size=len(live), error=type(exc).__name__)
            # One bad item must not fail its neighbours: retry each alone, in order, so that a
            # failure breaks only its own document's chain.
            for entry in live:
                item, future, chain, _ = entry
                if _refuse_if_broken(entry):
                    continue
                try:
                    ended = await self._commit([entry])
                except Exception as single:
                    if isinstance(item, SealedRow):
                        chain.broken = True
                    _settle(future, single)
                else:
                    if not _refuse_if_ended(entry, ended):
                        _settle(future, None)
            return
        for _, future, _, _ in live:
            _settle(future, None)

    async def _commit(self, entries: list[_Item]) -> set[str]:
        """Write the entries in one transaction; or, when a consult of theirs has ended, write
        nothing and return the ended consults."""
        items = [item for item, _, _, _ in entries]
        rows = [item for item in items if isinstance(item, SealedRow)]
        consults = sorted({consult_id for _, _, _, consult_id in entries})
        if self._conn is None:
            self._conn = await self._connect()
        try:
            if len(rows) == len(items) and log_postgres.usable(self._conn):
                return await log_postgres.commit_rows(self._conn, rows, consults)
            if len(rows) == len(items) and log_sqlite.usable(self._conn):
                ended = await log_sqlite.commit_rows(self._conn, rows, consults)
                if not ended:
                    self._after_commit()
                return ended
            async with self._conn.begin() as transaction:
                # Inserts first: on SQLite the first write takes the one write lock, so the
                # status read after it is the newest and no end can commit until this does.
                if rows:
                    await self._conn.execute(_INSERT_UPDATES, [row._asdict() for row in rows])
                status = await self._conn.execute(_CONSULTS_FOR_SHARE, {"consult_ids": consults})
                ended = {row.id for row in status if row.status == ConsultStatus.ENDED}
                if ended:
                    await transaction.rollback()
                    return ended
                for item in items:
                    if not isinstance(item, SealedRow):
                        await item(self._conn)
            self._after_commit()
            return set()
        except Exception:
            # The connection may be what failed: start the next commit on a fresh one.
            conn, self._conn = self._conn, None
            try:
                await conn.invalidate()
            except Exception as exc:
                log.warning("notes_connection_close_failed", error=type(exc).__name__)
            raise

    async def _connect(self) -> AsyncConnection:
        conn = await self._db.engine.connect()
        if conn.dialect.name == "sqlite":
            # SQLite's automatic checkpoint runs inside the commit that crosses the threshold and
            # fsyncs the database file there: a stall of tens of milliseconds for every update
            # waiting on that commit. The writer's commits skip it; a passive checkpoint on
            # another connection (its own thread) follows every CHECKPOINT_EVERY commits.
            await conn.exec_driver_sql("PRAGMA wal_autocheckpoint=0")
            await conn.commit()
        return conn

    def _after_commit(self) -> None:
        if self._db.engine.dialect.name != "sqlite":
            return
        self._commits += 1
        idle = self._checkpoint is None or self._checkpoint.done()
        if self._commits >= CHECKPOINT_EVERY and idle:
            self._commits = 0
            self._checkpoint = asyncio.create_task(self._checkpoint_wal())

    async def _checkpoint_wal(self) -> None:
        try:
            async with self._db.engine.connect() as conn:
                await conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        except Exception as exc:  # the next one tries again; nothing is lost meanwhile
            log.warning("notes_checkpoint_failed", error=type(exc).__name__)


def _refuse_if_broken(entry: _Item) -> bool:
    _, future, chain, _ = entry
    if chain.broken:
        error = consult_ended() if chain.ended else ChainBroken("an earlier write failed")
        _settle(future, error)
    return chain.broken


def _refuse_if_ended(entry: _Item, ended: set[str]) -> bool:
    """Refuse an entry of an ended consult; its document takes no more writes."""
    _, future, chain, consult_id = entry
    if consult_id not in ended:
        return False
    chain.broken = chain.ended = True
    _settle(future, consult_ended())
    return True


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():  # the waiter went away; the write happened (or not) all the same
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
