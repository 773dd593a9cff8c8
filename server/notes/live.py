"""The server's in-memory copy of a consult's notes documents, and how one is built from the
database (snapshot, then the log after it)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pycrdt

from ..ids import ConsultId
from . import intake, schema
from .documents import DocumentName
from .intake import DocumentFacts
from .log import Authors, Chain, StoredDocument
from .yupdate import UpdateLimits


@dataclass(eq=False)
class LiveDoc:
    name: DocumentName
    doc: pycrdt.Doc[Any]
    seq: int
    snapshot_seq: int
    authors: Authors
    touched: set[str]
    # The observed roots and their subscriptions: alive as long as this copy is.
    observers: list[object]
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # This copy's writes, in order; broken when one failed.
    chain: Chain = field(default_factory=Chain)
    # Set when the copy may differ from the database; whoever holds a reference must re-fetch.
    stale: bool = False
    snapshot: asyncio.Future[None] | None = None
    facts: DocumentFacts = field(default_factory=DocumentFacts)
    # Set (and replaced) each time an update is applied: what a reordered update waits for.
    advanced: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def usable(self) -> bool:
        return not self.stale and not self.chain.broken


@dataclass(eq=False)
class LiveConsult:
    consult_id: ConsultId
    frozen: bool
    follows: ConsultId | None = None
    docs: dict[DocumentName, LiveDoc] = field(default_factory=dict)
    load_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    finalize_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def build_document(
    name: DocumentName, stored: StoredDocument, limits: UpdateLimits | None = None
) -> LiveDoc:
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    touched: set[str] = set()
    observers = schema.declare(doc, name, touched.add)
    entries = ((entry.seq, entry.update) for entry in stored.entries)
    limits = limits or UpdateLimits()
    facts = intake.replay(doc, name, stored.snapshot, entries, limits)
    touched.clear()
    return LiveDoc(
        name,
        doc,
        stored.last_seq,
        stored.snapshot_seq,
        stored.authors,
        touched,
        observers,
        facts=facts,
    )
