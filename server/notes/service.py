"""NotesService: the server's copy of each consult's three CRDT documents, the rules for reading
and writing them, durability, and the freeze into a plan when the consult ends.

One service per process. A consult's documents are loaded on first use (newest snapshot, then the
log after it) and kept in memory until `unload`. Each document has a lock held from applying an
update until its log row is committed, so (1) the log order is the apply order, and (2) the
in-memory copy that `sync` reads never holds anything that is not durable: a client is never sent
an edit the server could lose in a crash. Commits of different documents share transactions
(group commit, `log.py`).

A refused update changes nothing: its document name, the role, its size, the pre-scan of its
bytes (`intake.py`, `yupdate.py`), its causality against the live copy's state and the document
size cap are all checked before the live copy is touched. If applying still fails (an error or a
panic of the CRDT library), or the commit does, the live copy (which may now hold the update) is
dropped and rebuilt from the database on next use.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy.exc import IntegrityError

from .. import logs
from ..auth.roles import Role
from ..crypto import KeyRing
from ..db.engine import Database
from ..errors import ErrorCode, TriadError
from ..ids import ConsultId, ParticipantId, new_plan_id
from . import intake, markdown, schema
from .diff import PlanChange, plan_changes
from .documents import DocumentName, parse_document, require_read, require_write
from .intake import CheckedUpdate, CrdtFailure
from .live import LiveConsult, LiveDoc, build_document
from .log import Authors, LogEntry, NoteLog, consult_ended
from .plan import PlanView, PreviousPlanRef, attendance, authors_by_section
from .store import PlanStore, SeriesPlan, StaleCopy
from .yupdate import UpdateLimits

log = logs.get(__name__)
FIRST_VERSION = 1
# How long an update that builds on one not yet applied waits for it before it is refused.
REORDER_WAIT = 3.0
# A follow-up's documents that start from the consult it follows (docs/notes.md says why the
# clinicians' private document does not).
CARRIED_OVER = frozenset({DocumentName.PLAN, DocumentName.CLIENT})


@dataclass(frozen=True)
class SyncReply:
    update: bytes  # exactly what the caller's state vector misses
    state_vector: bytes  # the server's, so the caller can send what the server misses


@dataclass(frozen=True)
class Applied:
    doc: DocumentName
    seq: int

    def __post_init__(self) -> None:
        if self.seq < 1:
            raise ValueError("applied updates have a sequence number from 1")


class NotesService:
    def __init__(
        self,
        db: Database,
        keyring: KeyRing,
        clock: Callable[[], datetime],
        *,
        max_update_bytes: int,
        snapshot_every: int,
        max_document_bytes: int = intake.DEFAULT_MAX_DOCUMENT_BYTES,
        update_limits: UpdateLimits | None = None,
        reorder_wait: float = REORDER_WAIT,
    ) -> None:
        if min(max_update_bytes, snapshot_every, max_document_bytes) < 1:
            raise ValueError("limits must be positive")
        self._log = NoteLog(db, keyring)
        self._plans = PlanStore(db, keyring)
        self._clock = clock
        self._max_update_bytes = max_update_bytes
        self._snapshot_every = snapshot_every
        self._max_document_bytes = max_document_bytes
        self._limits = update_limits or UpdateLimits()
        self._reorder_wait = reorder_wait
        self._consults: dict[ConsultId, LiveConsult] = {}
        self._consults_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- the contract signaling calls ---

    async def sync(
        self, consult_id: ConsultId, role: Role, doc: str, state_vector: bytes
    ) -> SyncReply:
        """What the caller's state vector misses, and the server's state vector. Works after
        the consult ended too (read-only)."""
        name = parse_document(doc)
        require_read(role, name)
        if not isinstance(state_vector, bytes | bytearray | memoryview):
            raise TriadError(ErrorCode.NOTES_UPDATE_INVALID, "a state vector is binary")
        vector = intake.check_state_vector(bytes(state_vector), self._limits)
        consult = await self._consult(consult_id)
        while True:
            live = await self._document(consult, name)
            async with live.lock:
                if not live.usable:
                    continue
                try:
                    reply = SyncReply(
                        intake.guarded(partial(live.doc.get_update, vector)),
                        intake.guarded(live.doc.get_state),
                    )
                except CrdtFailure:
                    live.stale = True  # rebuilt from the log, which skips what cannot encode
                    log.warning("notes_sync_failed", consult_id=consult_id, doc=str(name))
                    raise TriadError(
                        ErrorCode.NOTES_UPDATE_INVALID, "the state vector does not apply"
                    ) from None
            # Answer only with what is durable: wait for the writes the reply includes.
            try:
                await live.chain.settled()
            except Exception:
                live.stale = True
                continue
            return reply

    async def apply(
        self,
        consult_id: ConsultId,
        participant_id: ParticipantId,
        role: Role,
        doc: str,
        update: bytes,
    ) -> Applied:
        """Check, apply to the server copy and commit to the log; returns once durable. The
        caller then acknowledges and fans out the same bytes to those who may read `doc`."""
        name = parse_document(doc)
        require_write(role, name)
        data = intake.check_update(
            update, self._max_update_bytes, schema.root_names(name), self._limits
        )
        consult = await self._consult(consult_id)
        if consult.frozen:
            raise consult_ended()
        # Shielded: once the update is in the live copy, the commit and the bookkeeping must
        # finish even if the caller goes away, or the next update would reuse the sequence.
        task = asyncio.create_task(self._apply(consult, name, participant_id, role, data))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(task)

    async def finalize(self, consult_id: ConsultId) -> PlanView:
        """Freeze the documents into the consult's plan, once: later and racing calls return the
        same plan. Afterwards `apply` raises `consult_ended`; `sync` still answers."""
        consult = await self._consult(consult_id)
        rebuilt = False
        async with consult.finalize_lock:
            while True:
                existing = await self._plans.get(consult_id)
                if existing is not None:
                    consult.frozen = True
                    return existing
                async with AsyncExitStack() as stack:
                    lives = {}
                    for name in DocumentName:
                        live = await self._document(consult, name)
                        await stack.enter_async_context(live.lock)
                        lives[name] = live
                    if not all(live.usable for live in lives.values()):
                        continue  # a copy was dropped meanwhile: take fresh ones
                    consult.frozen = True
                    try:
                        # Everything applied (and acknowledged or about to be) is durable first.
                        for live in lives.values():
                            await live.chain.settled()
                    except Exception:
                        consult.frozen = False
                        for live in lives.values():
                            live.stale = True
                        continue
                    try:
                        return await self._freeze(consult_id, lives)
                    except IntegrityError:
                        # Another process saved this consult's plan first: that one is the plan.
                        saved = await self._plans.get(consult_id)
                        if saved is None:
                            raise
                        return saved
                    except (CrdtFailure, StaleCopy) as failure:
                        # A copy behind the log (`PlanStore.save`) is taken afresh; one that
                        # does not encode is rebuilt once from the log, whose replay skips what
                        # cannot be integrated.
                        consult.frozen = False
                        for live in lives.values():
                            live.stale = True
                        if rebuilt and isinstance(failure, CrdtFailure):
                            raise
                        rebuilt = rebuilt or isinstance(failure, CrdtFailure)
                    except BaseException:
                        consult.frozen = False
                        raise

    async def unload(self, consult_id: ConsultId) -> None:
        """Drop the consult's documents from memory (the room closed). Everything acknowledged
        is in the database already; a later call loads them again."""
        async with self._consults_lock:
            consult = self._consults.pop(consult_id, None)
        if consult is None:
            return
        for live in list(consult.docs.values()):
            async with live.lock:
                live.stale = True
            # Let writes in flight finish: their callers are waiting to acknowledge them.
            await asyncio.gather(live.chain.settled(), return_exceptions=True)

    async def close(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        self._consults.clear()
        await self._log.close()

    # --- reads for the REST API ---

    async def plan(self, consult_id: ConsultId) -> PlanView | None:
        return await self._plans.get(consult_id)

    async def plan_markdown(self, consult_id: ConsultId) -> str | None:
        return await self._plans.markdown(consult_id)

    async def clinicians_notes(self, consult_id: ConsultId) -> str:
        """The clinicians' private notes: from the saved plan after the end, else the current
        (durable) text. The caller checks the reader is a clinician."""
        saved = await self._plans.clinicians(consult_id)
        if saved is not None:
            return saved
        consult = self._consults.get(consult_id)
        live = consult.docs.get(DocumentName.CLINICIANS) if consult is not None else None
        if live is not None and live.usable:
            async with live.lock:
                text = schema.read_clinicians(live.doc)
            await live.chain.settled()
            return text
        # Not open here: read the database without keeping the document in memory.
        await self._plans.consult_facts(consult_id)  # consult_not_found for unknown ids
        stored = await self._log.load(consult_id, DocumentName.CLINICIANS)
        return schema.read_clinicians(build_document(DocumentName.CLINICIANS, stored).doc)

    # --- follow-up series ---

    async def changes_since_previous(
        self, consult_id: ConsultId
    ) -> tuple[PreviousPlanRef | None, list[PlanChange]]:
        """The current plan against the saved plan of the consult this one follows; (None, [])
        for a consult that follows none. Current: the saved plan after the end, else what the
        database holds (exactly what was acknowledged), read without keeping the documents in
        memory (a REST call must not load a consult that is not open here)."""
        facts = await self._plans.consult_facts(consult_id)
        before = await self._plans.get(facts.follows_id) if facts.follows_id else None
        if before is None:
            return None, []
        saved = await self._plans.get(consult_id) if facts.has_plan else None
        if saved is not None:
            current = saved.content
        else:
            follows, now = before.consult_id, self._clock()
            plan, client = [
                build_document(
                    name, await self._log.load(consult_id, name, follows, now), self._limits
                )
                for name in (DocumentName.PLAN, DocumentName.CLIENT)
            ]
            current, _ = schema.read_plan(plan.doc, client.doc)
        previous = PreviousPlanRef(before.consult_id, before.id, before.version)
        return previous, plan_changes(before.content, current)

    async def diff_plans(
        self, from_consult: ConsultId, to_consult: ConsultId
    ) -> tuple[PlanView, PlanView, list[PlanChange]]:
        """Two saved plans of one series and the changes between them (`plan_not_found` when
        either consult has none, `validation_failed` for plans of two series)."""
        return await self._plans.diff(from_consult, to_consult)

    async def series_plans(self, series_id: ConsultId) -> list[SeriesPlan]:
        """The saved plans of a follow-up series (`ConsultView.series_id`), in version order."""
        return await self._plans.series_plans(series_id)

    # --- inside ---

    async def _consult(self, consult_id: ConsultId) -> LiveConsult:
        consult = self._consults.get(consult_id)
        if consult is not None:
            return consult
        async with self._consults_lock:
            consult = self._consults.get(consult_id)
            if consult is None:
                facts = await self._plans.consult_facts(consult_id)
                consult = LiveConsult(consult_id, frozen=facts.has_plan, follows=facts.follows_id)
                self._consults[consult_id] = consult
            return consult

    async def _document(self, consult: LiveConsult, name: DocumentName) -> LiveDoc:
        live = consult.docs.get(name)
        if live is not None and live.usable:
            return live
        async with consult.load_lock:
            live = consult.docs.get(name)
            if live is None or not live.usable:
                # A follow-up's plan and client documents start from the earlier consult's.
                seed = consult.follows if name in CARRIED_OVER else None
                stored = await self._log.load(consult.consult_id, name, seed, self._clock())
                live = build_document(name, stored, self._limits)
                consult.docs[name] = live
                log.debug(
                    "notes_loaded",
                    consult_id=consult.consult_id,
                    doc=str(name),
                    seq=live.seq,
                    replayed=len(stored.entries),
                )
            return live

    async def _apply(
        self,
        consult: LiveConsult,
        name: DocumentName,
        participant_id: ParticipantId,
        role: Role,
        update: CheckedUpdate,
    ) -> Applied:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._reorder_wait
        while True:
            live = await self._document(consult, name)
            async with live.lock:
                if not live.usable:
                    continue
                if consult.frozen:
                    raise consult_ended()
                try:
                    seq, durable = self._apply_locked(consult, live, participant_id, role, update)
                except intake.NotYet:
                    if loop.time() >= deadline:
                        raise
                    advanced: asyncio.Event | None = live.advanced
                else:
                    advanced = None
            if advanced is not None:
                # It builds on an update still on its way: two in flight from one browser can
                # reach the lock in either order. Wait for the document to advance, then retry.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout_at(deadline):
                        await advanced.wait()
                continue
            # Outside the lock: the next update of this document applies and queues while this
            # one commits (in order: one chain per document), but nobody hears of this one
            # before it is durable.
            try:
                await durable
            except TriadError as refused:  # the log closed: the consult ended (`log.py`)
                live.stale = True  # the copy holds an update the log does not
                consult.frozen = refused.code is ErrorCode.CONSULT_ENDED or consult.frozen
                raise
            except BaseException:
                live.stale = True  # the copy holds an update the log does not
                log.warning(
                    "notes_commit_failed", consult_id=consult.consult_id, doc=str(live.name)
                )
                raise
            return Applied(live.name, seq)

    def _apply_locked(
        self,
        consult: LiveConsult,
        live: LiveDoc,
        participant_id: ParticipantId,
        role: Role,
        update: CheckedUpdate,
    ) -> tuple[int, asyncio.Future[None]]:
        # Causality and the size cap against this copy: refused here, nothing changed.
        intake.admit(live.doc, update, live.facts, self._max_document_bytes, self._limits)
        live.touched.clear()
        try:
            intake.apply_update(live.doc, update.data)
        except CrdtFailure:
            live.stale = True  # it may be half-applied: rebuild from the log
            log.warning("notes_apply_failed", consult_id=consult.consult_id, doc=str(live.name))
            raise TriadError(
                ErrorCode.NOTES_UPDATE_INVALID, "the notes update does not apply"
            ) from None
        intake.applied(live.facts, update)
        live.advanced.set()
        live.advanced = asyncio.Event()
        sections = tuple(sorted(live.touched))
        entry = LogEntry(
            consult_id=consult.consult_id,
            doc=live.name,
            seq=live.seq + 1,
            participant_id=participant_id,
            role=role,
            sections=sections,
            update=update.data,
            at=self._clock(),
        )
        durable = self._log.append(entry, live.chain)
        live.seq = entry.seq
        live.authors.add(sections, participant_id, role)
        due = live.seq - live.snapshot_seq >= self._snapshot_every
        if due and (live.snapshot is None or live.snapshot.done()):
            self._start_snapshot(consult, live)
        return entry.seq, durable

    def _start_snapshot(self, consult: LiveConsult, live: LiveDoc) -> None:
        # Taken under the document's lock (the caller holds it) and queued behind the updates it
        # includes, on the same chain: it commits after them, and updates go on meanwhile.
        try:
            seq, state = live.seq, intake.guarded(live.doc.get_update)
        except CrdtFailure:
            log.warning("notes_snapshot_failed", consult_id=consult.consult_id, doc=str(live.name))
            return
        authors = Authors()
        authors.merge(live.authors)
        written = self._log.write_snapshot(
            consult.consult_id, live.name, seq, state, authors, self._clock(), live.chain
        )

        def done(future: asyncio.Future[None]) -> None:
            if future.cancelled() or future.exception() is not None:
                # The log still has every update; the next one due tries again.
                log.warning(
                    "notes_snapshot_failed", consult_id=consult.consult_id, doc=str(live.name)
                )
                return
            live.snapshot_seq = max(live.snapshot_seq, seq)

        written.add_done_callback(done)
        live.snapshot = written

    async def _freeze(self, consult_id: ConsultId, lives: dict[DocumentName, LiveDoc]) -> PlanView:
        facts = await self._plans.consult_facts(consult_id, for_plan=True)
        previous = await self._plans.previous(facts.follows_id)
        content, warnings = intake.guarded(
            lambda: schema.read_plan(lives[DocumentName.PLAN].doc, lives[DocumentName.CLIENT].doc)
        )
        people = Authors()
        people.merge(lives[DocumentName.PLAN].authors)
        people.merge(lives[DocumentName.CLIENT].authors)
        plan = PlanView(
            id=new_plan_id(),
            consult_id=consult_id,
            version=previous.version + 1 if previous is not None else FIRST_VERSION,
            created_at=self._clock(),
            consult_started_at=facts.started_at,
            consult_ended_at=facts.ended_at,
            content=content,
            authors=authors_by_section(people.by_section),
            attendance=attendance(facts.participants, facts.events),
            warnings=tuple(warnings),
            measures=facts.measures,
            previous=previous,
            series_id=facts.series_id,
            brief_attached=facts.brief_attached,
        )
        now = self._clock()
        # Final snapshots in the plan's transaction: the log is compacted for good, and a
        # reader after the end (or after a restart) loads one row per document.
        jobs = [
            self._log.snapshot_job(
                consult_id, name, live.seq, intake.guarded(live.doc.get_update), live.authors, now
            )
            for name, live in lives.items()
        ]
        await self._plans.save(
            plan,
            markdown.render(plan),
            schema.read_clinicians(lives[DocumentName.CLINICIANS].doc),
            jobs,
            {str(name): live.seq for name, live in lives.items()},
        )
        for live in lives.values():
            live.snapshot_seq = live.seq
        log.info(
            "plan_saved",
            consult_id=consult_id,
            plan_id=plan.id,
            version=plan.version,
            warnings=len(warnings),
        )
        return plan
