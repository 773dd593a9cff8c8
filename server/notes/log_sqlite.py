"""The notes log's batch of updates on SQLite in three calls to aiosqlite's thread.

Through SQLAlchemy's asyncio adapter every statement is four hand-offs to aiosqlite's thread
(a cursor, the execute, the fetch, the close), each a wake-up of the event loop, after the
statement's compilation and the rows' processing: at 100 consults on one worker the general
path (`NoteLog._commit`) was about a quarter of the worker's busy time. A batch of updates
alone (no snapshot job in it) is the same rule on the driver's connection: the inserts (the
first write takes SQLite's one write lock, so nothing can end a consult until this commits),
then the consults' status, then COMMIT, or ROLLBACK when one has ended. The values go through
the columns' own bind processors, so they are stored exactly as SQLAlchemy stores them."""

from __future__ import annotations

import json
import sqlite3
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..consults.model import ConsultStatus
from ..db.models import NoteUpdate
from .log_row import SealedRow

# The columns in `SealedRow`'s order.
_INSERT = """
INSERT INTO note_updates
    (consult_id, doc, seq, participant_id, role, sections, sealed, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""
# The batch's consults as one JSON array: one statement text for any batch size.
_ENDED = "SELECT id FROM consults WHERE status = ? AND id IN (SELECT value FROM json_each(?))"
_Processors = tuple[Callable[[Any], Any] | None, ...]
_processors: weakref.WeakKeyDictionary[Dialect, _Processors] = weakref.WeakKeyDictionary()


def usable(conn: AsyncConnection) -> bool:
    return conn.dialect.name == "sqlite" and conn.dialect.driver == "aiosqlite"


async def commit_rows(
    conn: AsyncConnection, rows: Sequence[SealedRow], consults: Sequence[str]
) -> set[str]:
    """Write `rows` (`NoteLog.append`'s) in one transaction outside any SQLAlchemy one; or,
    when one of `consults` has ended, write nothing and return the ended ones."""
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    processors = _row_processors(conn.dialect)
    values = [
        tuple(
            value if process is None else process(value)
            for value, process in zip(row, processors, strict=True)
        )
        for row in rows
    ]
    try:
        # The sqlite3 module opens the transaction before the first insert (deferred: the
        # insert takes the write lock), so the status read after it is the newest.
        await driver.executemany(_INSERT, values)
        status = await driver.execute_fetchall(
            _ENDED, (ConsultStatus.ENDED.value, json.dumps(list(consults)))
        )
        if status:
            await driver.rollback()
            return {str(row[0]) for row in status}
        await driver.commit()
    except sqlite3.IntegrityError as exc:
        # As SQLAlchemy raises it: callers tell a refused row by this type. The caller
        # invalidates the connection, which rolls back what this transaction wrote.
        raise IntegrityError(_INSERT, None, exc) from exc
    return set()


def _row_processors(dialect: Dialect) -> _Processors:
    found = _processors.get(dialect)
    if found is None:
        found = tuple(
            NoteUpdate.__table__.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in SealedRow._fields
        )
        _processors[dialect] = found
    return found
