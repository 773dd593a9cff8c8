"""The notes log's driver paths (`log_postgres.py`, `log_sqlite.py`) store a batch of updates
exactly as SQLAlchemy's general path does: the same values, in the same stored form, so every
reader (the log's load, retention, an operator's query) sees one format whichever path wrote."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import insert, select, text

from server.auth.roles import Role
from server.db.models import NoteUpdate
from server.notes import log_postgres, log_sqlite
from server.notes.documents import DocumentName
from server.notes.log import Chain, LogEntry, NoteLog, update_aad
from tests.notes.conftest import World


def entry(world: World, seq: int, at: datetime) -> LogEntry:
    return LogEntry(
        consult_id=world.consult_id,
        doc=DocumentName.PLAN,
        seq=seq,
        participant_id=world.ids[Role.THERAPIST],
        role=Role.THERAPIST,
        sections=("goals", "summary"),
        update=f"update {seq}".encode(),
        at=at,
    )


async def stored(world: World, seq: int) -> tuple[object, ...]:
    """The row as the database holds it, not as SQLAlchemy's types read it back."""
    async with world.db.engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT consult_id, doc, seq, participant_id, role, "
                    "CAST(sections AS TEXT), CAST(created_at AS TEXT) "
                    "FROM note_updates WHERE consult_id = :c AND doc = 'plan' AND seq = :s"
                ),
                {"c": world.consult_id, "s": seq},
            )
        ).one()
    return tuple(row)


async def test_a_batch_through_the_driver_is_stored_as_sqlalchemy_stores_it(world: World) -> None:
    async with world.db.engine.connect() as conn:
        assert log_postgres.usable(conn) or log_sqlite.usable(conn)
    at = datetime(2026, 11, 29, 10, 11, 12, 345678, tzinfo=UTC)
    log = NoteLog(world.db, world.keyring)
    try:
        chain = Chain()
        # Two rows in one batch, no snapshot job: the driver path.
        await asyncio.gather(
            log.append(entry(world, 1, at), chain), log.append(entry(world, 2, at), chain)
        )
    finally:
        await log.close()
    # The general path's row, written by SQLAlchemy itself.
    reference = entry(world, 3, at)
    async with world.db.sessions() as session, session.begin():
        await session.execute(
            insert(NoteUpdate),
            [
                {
                    "consult_id": reference.consult_id,
                    "doc": str(reference.doc),
                    "seq": reference.seq,
                    "participant_id": reference.participant_id,
                    "role": str(reference.role),
                    "sections": list(reference.sections),
                    "sealed": b"-",
                    "created_at": reference.at,
                }
            ],
        )
    by_driver, by_sqlalchemy = await stored(world, 2), await stored(world, 3)
    assert by_driver[:2] == by_sqlalchemy[:2]
    assert (by_driver[2], by_sqlalchemy[2]) == (2, 3)
    assert by_driver[3:] == by_sqlalchemy[3:]
    # Read back through the models: the values, and the sealed update bound to its place.
    async with world.db.sessions() as session:
        rows = (
            await session.scalars(
                select(NoteUpdate)
                .where(NoteUpdate.consult_id == world.consult_id, NoteUpdate.seq < 3)
                .order_by(NoteUpdate.seq)
            )
        ).all()
    assert [row.seq for row in rows] == [1, 2]
    for row in rows:
        assert row.created_at == at
        assert row.sections == ["goals", "summary"]
        assert row.role == "therapist"
        opened = world.keyring.open(row.sealed, update_aad(world.consult_id, "plan", row.seq))
        assert opened == f"update {row.seq}".encode()
