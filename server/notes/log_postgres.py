"""The notes log's batch of updates on PostgreSQL as one statement on asyncpg.

The general path (`NoteLog._commit`) is four round trips through SQLAlchemy: BEGIN, the
inserts, the consults' status `FOR SHARE`, COMMIT. At 100 consults on one worker that was a
quarter of the worker's CPU (docs/benchmarks.md). A batch of updates alone (no snapshot job
in it) is the same rule in one statement, its own transaction: the consults' rows are locked
`FOR SHARE` first (an end racing the batch waits for it, or it sees the end), and the rows are
inserted only when none of those consults has ended; the statement returns the ended ones."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..consults.model import ConsultStatus
from .log_row import SealedRow

# A CTE with FOR SHARE is never inlined: it is evaluated once, before the insert reads it.
_COMMIT_ROWS = """
WITH locked AS (
    SELECT id, status FROM consults WHERE id = ANY($1::text[]) FOR SHARE
), written AS (
    INSERT INTO note_updates
        (consult_id, doc, seq, participant_id, role, sections, sealed, created_at)
    SELECT * FROM unnest(
        $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::json[],
        $8::bytea[], $9::timestamptz[]
    )
    WHERE NOT EXISTS (SELECT 1 FROM locked WHERE status = $10)
)
SELECT id FROM locked WHERE status = $10
"""


def usable(conn: AsyncConnection) -> bool:
    return conn.dialect.name == "postgresql" and conn.dialect.driver == "asyncpg"


async def commit_rows(
    conn: AsyncConnection, rows: Sequence[SealedRow], consults: Sequence[str]
) -> set[str]:
    """Write `rows` (`NoteLog.append`'s) in one statement outside any SQLAlchemy transaction;
    or, when one of `consults` has ended, write nothing and return the ended ones."""
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    try:
        ended = await driver.fetch(
            _COMMIT_ROWS,
            list(consults),
            [row.consult_id for row in rows],
            [row.doc for row in rows],
            [row.seq for row in rows],
            [row.participant_id for row in rows],
            [row.role for row in rows],
            [json.dumps(row.sections) for row in rows],
            [row.sealed for row in rows],
            [row.created_at for row in rows],
            ConsultStatus.ENDED.value,
        )
    except asyncpg.IntegrityConstraintViolationError as exc:
        # As SQLAlchemy raises it: callers tell a refused row by this type.
        raise IntegrityError(_COMMIT_ROWS, None, exc) from exc
    return {record["id"] for record in ended}
