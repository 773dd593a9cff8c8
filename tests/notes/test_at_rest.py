"""Clinical text at rest is sealed: a copy of the database, taken while the consult runs and again
after its plan is saved, holds none of the words typed (SQLite: the file and its WAL, byte for
byte; PostgreSQL: every column of every row)."""

from __future__ import annotations

from tests.databases import stored_bytes
from tests.notes.conftest import World
from tests.notes.plans import SECRET_WORDS, type_a_consult


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
    assert leaked(await stored_bytes(world.db)) == []
    await world.end()
    plan = await world.notes.finalize(world.consult_id)
    # The words did reach the plan (and the clinicians' notes), only sealed.
    assert "nightmareflux" in plan.content.summary
    assert "Brightwaterhope" in plan.content.client_goals[0]
    assert "Quietmorrowplan" in await world.notes.clinicians_notes(world.consult_id)
    assert leaked(await stored_bytes(world.db)) == []
