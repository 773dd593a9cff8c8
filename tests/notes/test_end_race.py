"""The end closes the notes log: an update is either committed before the consult's row is
ended (and so in the plan, whoever freezes it) or refused with `consult_ended`; nothing
acknowledged is left out of the plan. In one process on SQLite and PostgreSQL: two notes
services over one database stand for two workers (the one holding the room, and the one
serving the platform's end), deterministically; the end waiting on a batch's lock, and a
clinician typing through the end."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import text as sql

from server.auth.roles import Role
from server.consults import audit
from server.consults.lifecycle import end_row
from server.consults.model import Actor
from server.errors import ErrorCode, TriadError
from server.notes.documents import DocumentName
from tests.notes.conftest import World
from tests.notes.plans import PLAN, text
from tests.waiting import wait_for


def marks(summary: str) -> set[str]:
    return set(re.findall(r"<\d+>", summary))


async def test_an_update_the_owner_applies_after_another_worker_froze_the_plan_is_refused(
    world: World,
) -> None:
    therapist = world.peers[Role.THERAPIST]
    owner, elsewhere = world.notes, world.service()
    try:
        await therapist.send(PLAN, therapist.edit(PLAN, text("summary", "<1>")))
        await world.end()
        # After the end, before the plan: refused on the owner, which has not been told.
        after_end = therapist.edit(PLAN, text("summary", "<2>"))
        with pytest.raises(TriadError) as refused:
            await therapist.send(PLAN, after_end)
        assert refused.value.code is ErrorCode.CONSULT_ENDED
        # The worker serving the platform's end freezes the plan from the database...
        plan = await elsewhere.finalize(world.consult_id)
        # ...and the owner, still not told, refuses what its clinician types next.
        with pytest.raises(TriadError) as refused:
            await therapist.send(PLAN, therapist.edit(PLAN, text("summary", "<3>")))
        assert refused.value.code is ErrorCode.CONSULT_ENDED
        assert plan.content.summary == "<1>"
        # Told at last, the owner gets the same plan.
        assert (await owner.finalize(world.consult_id)).id == plan.id
    finally:
        await elsewhere.close()


async def test_a_copy_another_worker_wrote_past_is_not_frozen(world: World) -> None:
    """A worker that held the consult before (its copy in memory) serves the platform's end
    after another worker took the consult and wrote to it: the plan holds the later writes."""
    therapist = world.peers[Role.THERAPIST]
    former, current = world.notes, world.service()
    try:
        await therapist.send(PLAN, therapist.edit(PLAN, text("summary", "<1>")))
        await former.sync(world.consult_id, Role.THERAPIST, "plan", b"\x00")  # a copy here
        world.notes = current  # the consult moved: its clinician now writes here
        await therapist.send(PLAN, therapist.edit(PLAN, text("summary", "<2>")))
        await world.end()
        plan = await former.finalize(world.consult_id)
        assert marks(plan.content.summary) == {"<1>", "<2>"}
        assert (await current.finalize(world.consult_id)).id == plan.id
    finally:
        world.notes = former
        await current.close()


async def test_an_update_whose_commit_meets_the_end_is_refused(world: World) -> None:
    """The end's transaction holds the consult's row while the writer's batch commits: the
    batch waits for it, reads the row ended and writes nothing."""
    therapist = world.peers[Role.THERAPIST]
    await therapist.send(PLAN, therapist.edit(PLAN, text("summary", "<1>")))
    late = therapist.edit(PLAN, text("summary", "<2>"))
    postgres = world.db.engine.dialect.name == "postgresql"
    async with world.db.sessions() as session, session.begin():
        platform_id = await audit.platform_of(session, world.consult_id)
        actor = Actor("platform", "k_test")
        assert await end_row(
            session, world.consult_id, actor, datetime.now(UTC), platform_id, world.keyring
        )
        sending = asyncio.create_task(therapist.send(PLAN, late))
        if postgres:
            # The batch waits on the row's lock (SQLite: on the one write lock; either way it
            # reads the row after the end commits, whenever it got there).
            async def waiting() -> bool:
                async with world.db.engine.connect() as conn:
                    waits = await conn.scalar(
                        sql(
                            "SELECT count(*) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                        )
                    )
                return bool(waits)

            await wait_for(waiting, 15, "the notes batch waiting on the consult's row")
        assert not sending.done()
    with pytest.raises(TriadError) as refused:
        await sending
    assert refused.value.code is ErrorCode.CONSULT_ENDED
    plan = await world.notes.finalize(world.consult_id)
    assert plan.content.summary == "<1>"
    # Read back after the end, the document is what the plan says.
    reply = await world.notes.sync(world.consult_id, Role.THERAPIST, "plan", b"\x00")
    assert b"<2>" not in reply.update


TYPISTS = (Role.THERAPIST, Role.PSYCHIATRIST)


async def test_typing_through_the_end_keeps_every_acknowledged_update(world: World) -> None:
    """Clinicians typing one edit after another while the consult ends and its plan is saved
    (as `RoomRegistry.finish` does): acknowledged means in the plan, refused means absent."""
    acked: list[str] = []
    refused: list[str] = []
    codes: set[ErrorCode] = set()
    going = asyncio.Event()

    async def typist(n: int, role: Role) -> None:
        peer = world.peers[role]
        i = 0
        while True:
            mark = f"<{n * 100_000 + i}>"
            i += 1
            try:
                await peer.send(PLAN, peer.edit(PLAN, text("summary", mark)))
            except TriadError as error:
                codes.add(error.code)
                refused.append(mark)
                return
            acked.append(mark)
            if len(acked) >= 3 * len(TYPISTS):
                going.set()

    typing = [asyncio.create_task(typist(n, role)) for n, role in enumerate(TYPISTS)]
    await asyncio.wait_for(going.wait(), 30)
    await world.end()
    plan = await world.notes.finalize(world.consult_id)
    await asyncio.wait_for(asyncio.gather(*typing), 30)
    assert len(refused) == len(TYPISTS)
    assert codes == {ErrorCode.CONSULT_ENDED}
    saved = marks(plan.content.summary)
    assert saved == set(acked)
    assert not saved & set(refused)
    # What the database holds for the document after the end is the plan, too.
    reply = await world.notes.sync(world.consult_id, Role.THERAPIST, str(DocumentName.PLAN), b"\0")
    assert all(mark.encode() in reply.update for mark in acked)
    assert not any(mark.encode() in reply.update for mark in refused)
