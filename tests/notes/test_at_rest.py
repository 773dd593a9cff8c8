"""Clinical text at rest is sealed: a copy of the database, taken while the consult runs and again
after its plan is saved, holds none of the words typed (SQLite: the file and its WAL, byte for
byte; PostgreSQL: every column of every row)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select, text

from server.db.models import Base
from tests.notes.conftest import World
from tests.notes.plans import SECRET_WORDS, type_a_consult


async def stored_bytes(world: World) -> bytes:
    path = world.db.sqlite_path()
    if path is not None:
        async with world.db.engine.connect() as conn:
            await conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        files = [path, Path(f"{path}-wal")]
        return b"".join(f.read_bytes() for f in files if f.exists())
    chunks = []
    async with world.db.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in await conn.execute(select(table)):
                for value in row:
                    chunks.append(value if isinstance(value, bytes) else str(value).encode())
    return b"\n".join(chunks)


def leaked(data: bytes) -> list[str]:
    found = []
    for word in SECRET_WORDS:
        for encoded in (word.encode(), word.encode("utf-16-le"), word.lower().encode()):
            if encoded in data:
                found.append(word)
    return found


async def test_no_typed_word_is_stored_in_clear(world: World) -> None:
    await world.restart(snapshot_every=3)  # snapshots as well as log rows
    await type_a_consult(world)
    assert leaked(await stored_bytes(world)) == []
    await world.end()
    plan = await world.notes.finalize(world.consult_id)
    # The words did reach the plan (and the clinicians' notes), only sealed.
    assert "nightmareflux" in plan.content.summary
    assert "Brightwaterhope" in plan.content.client_goals[0]
    assert "Quietmorrowplan" in await world.notes.clinicians_notes(world.consult_id)
    assert leaked(await stored_bytes(world)) == []
