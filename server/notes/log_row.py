"""One row of the notes log as it is written: the update sealed, ids and section names only.

Made by `NoteLog.append`, written by whichever path commits its batch: SQLAlchemy's
(`log.py`), asyncpg's (`log_postgres.py`) or aiosqlite's (`log_sqlite.py`)."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple


class SealedRow(NamedTuple):
    """A `note_updates` row; the fields in the table's column order."""

    consult_id: str
    doc: str
    seq: int
    participant_id: str
    role: str
    sections: list[str]  # schema names, never text
    sealed: bytes
    created_at: datetime
