"""Durability: a new service over the same database (a restarted process) rebuilds every
document from its snapshot and the log after it, and a reconnecting browser that resyncs with its
state vector gets exactly what it misses, duplicating nothing."""

from __future__ import annotations

from typing import Any

import pycrdt
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from server.auth.roles import Role
from server.db.models import NoteSnapshot, NoteUpdate
from server.ids import ParticipantId
from server.notes.documents import DocumentName
from tests.notes.conftest import World
from tests.waiting import wait_for

PLAN, CLIENT = DocumentName.PLAN, DocumentName.CLIENT


def typing(root: str, text: str) -> Any:
    def change(doc: pycrdt.Doc[Any]) -> None:
        shared = doc.get(root, type=pycrdt.Text)
        shared.insert(len(shared), text)

    return change


async def log_rows(world: World) -> int:
    async with world.db.sessions() as session:
        count: int = await session.scalar(
            select(func.count())
            .select_from(NoteUpdate)
            .where(NoteUpdate.consult_id == world.consult_id)
        )
    return count


async def snapshot_seqs(world: World) -> dict[str, int]:
    async with world.db.sessions() as session:
        rows = await session.scalars(
            select(NoteSnapshot).where(NoteSnapshot.consult_id == world.consult_id)
        )
        return {row.doc: row.seq for row in rows}


async def test_restart_rebuilds_from_snapshot_and_log_and_resync_duplicates_nothing(
    world: World,
) -> None:
    await world.restart(snapshot_every=5)
    therapist, psychiatrist = world.peers[Role.THERAPIST], world.peers[Role.PSYCHIATRIST]
    client = world.peers[Role.CLIENT]
    words = [f"w{i} " for i in range(23)]
    for i, word in enumerate(words):
        peer = therapist if i % 2 else psychiatrist
        await peer.send(PLAN, peer.edit(PLAN, typing("summary", word)))
    await client.send(
        CLIENT, client.edit(CLIENT, lambda d: d.get("questions", type=pycrdt.Array).append("why?"))
    )
    expected = "".join(words)
    assert therapist.text(PLAN, "summary") == expected

    async def compacted() -> bool:
        return (await snapshot_seqs(world)).get("plan") == 20

    await wait_for(compacted)
    assert await log_rows(world) == 3 + 1  # plan rows after seq 20, and the client's one

    # The reconnecting browser missed the last two updates while it was away.
    away = pycrdt.Doc()
    away.apply_update(therapist.docs[PLAN].get_update())
    late = [
        therapist.edit(PLAN, typing("summary", "late1 ")),
        therapist.edit(PLAN, typing("summary", "late2 ")),
    ]
    for update in late:
        await therapist.send(PLAN, update)
    away_state = away.get_state()
    # Every browser keeps its copy across the server's restart; the client's is the stale one.
    client.docs[PLAN] = away
    notes = await world.restart(snapshot_every=5)
    reply = await notes.sync(world.consult_id, Role.CLIENT, "plan", away_state)
    client.docs[PLAN].apply_update(reply.update)
    assert client.text(PLAN, "summary") == expected + "late1 late2 "
    # Everything again (a browser that lost its state) still gives the same text, once.
    again = await notes.sync(world.consult_id, Role.CLIENT, "plan", b"\x00")
    client.docs[PLAN].apply_update(again.update)
    assert client.text(PLAN, "summary") == expected + "late1 late2 "
    # The rebuilt server copy continues the sequence.
    applied = await psychiatrist.send(PLAN, psychiatrist.edit(PLAN, typing("summary", "end")))
    assert applied.seq == 26
    assert client.text(PLAN, "summary") == expected + "late1 late2 end"
    restored = await notes.sync(world.consult_id, Role.CLIENT, "client", b"\x00")
    fresh = pycrdt.Doc()
    fresh.apply_update(restored.update)
    assert fresh.get("questions", type=pycrdt.Array).to_py() == ["why?"]


async def test_unload_keeps_everything_acknowledged(world: World) -> None:
    therapist = world.peers[Role.THERAPIST]
    await therapist.send(PLAN, therapist.edit(PLAN, typing("safety", "Crisis line given.")))
    await world.notes.unload(world.consult_id)
    reply = await world.notes.sync(world.consult_id, Role.CLIENT, "plan", b"\x00")
    fresh = pycrdt.Doc()
    fresh.apply_update(reply.update)
    assert str(fresh.get("safety", type=pycrdt.Text)) == "Crisis line given."


async def test_a_write_that_fails_to_commit_is_not_kept_and_the_document_recovers(
    world: World,
) -> None:
    therapist = world.peers[Role.THERAPIST]
    await therapist.send(PLAN, therapist.edit(PLAN, typing("summary", "kept ")))
    lost = therapist.edit(PLAN, typing("summary", "lost "))
    # A participant id the database does not know: the row's foreign key refuses the commit.
    with pytest.raises(IntegrityError):
        await world.notes.apply(
            world.consult_id, ParticipantId("p_nobody"), Role.THERAPIST, "plan", lost
        )
    reply = await world.notes.sync(world.consult_id, Role.CLIENT, "plan", b"\x00")
    fresh: pycrdt.Doc[Any] = pycrdt.Doc()
    fresh.apply_update(reply.update)
    assert str(fresh.get("summary", type=pycrdt.Text)) == "kept "
    # The document goes on from the durable state; the lost update can simply be sent again.
    applied = await therapist.send(PLAN, lost)
    assert applied.seq == 2
    await therapist.send(PLAN, therapist.edit(PLAN, typing("summary", "more")))
    again = await world.notes.sync(world.consult_id, Role.CLIENT, "plan", b"\x00")
    fresh = pycrdt.Doc()
    fresh.apply_update(again.update)
    assert str(fresh.get("summary", type=pycrdt.Text)) == "kept lost more"
    assert await log_rows(world) == 3
