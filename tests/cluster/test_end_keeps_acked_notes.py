"""The platform's end served by a worker that does not hold the consult, while the clinicians
type into the plan on the worker that does: every notes update acknowledged `ok` is in the
saved plan, and every one that is not was refused with a code (nothing acknowledged is lost;
the plan is what was written in the session). One node of two workers (`triad serve --workers
2`, real processes), PostgreSQL and Redis, the clinicians on the real python-socketio client
writing with pycrdt.

Before the fix the REST worker froze the plan from the database while the owner, not yet told,
kept acknowledging updates: they reached the notes log but not the plan."""

from __future__ import annotations

import asyncio
import re
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import aiohttp
import pytest

from tests.cluster.test_room_commands import Rest, new_consult, node, seated, worker_of
from tests.media.triadserver import TriadServer
from tests.rooms.notesclient import NotesClient, append_text

__all__ = ["node"]  # the fixture, shared with the room commands' tests

CLINICIANS = ("therapist", "psychiatrist")
# Refusals an update may meet once the consult ended (the room may close under the sender).
ENDED_CODES = {"consult_ended", "not_admitted"}
# Rounds: a consult each, ended while both clinicians type.
ROUNDS = 3
# Edits each clinician sends before the platform's end goes out: the log has rows by then.
WARMUP = 5


@dataclass
class Typist:
    """A clinician typing into the plan's summary, one marked edit after another, each sent
    once its predecessor was answered (as the browser does). Records what every answer was."""

    tag: str
    notes: NotesClient
    acked: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    unanswered: list[str] = field(default_factory=list)

    async def type_until_ended(self, started: asyncio.Event) -> None:
        room = self.notes.room
        i = 0
        while not (room.disconnected or room.received("ended")):
            mark = f"<{self.tag}{i}>"
            i += 1
            sending = asyncio.create_task(self.notes.edit("plan", append_text("summary", mark)))
            gone = asyncio.create_task(room.wait_disconnected(within=60))
            await asyncio.wait((sending, gone), return_when=asyncio.FIRST_COMPLETED)
            gone.cancel()
            if not sending.done():
                # The server closed the socket (the room ended) with this edit unanswered:
                # never acknowledged, so the browser would send it again elsewhere.
                sending.cancel()
                self.unanswered.append(mark)
                return
            ack = sending.result()
            if ack["ok"]:
                self.acked.append(mark)
            else:
                self.refused.append((mark, ack["error"]["code"]))
                return
            if len(self.acked) >= WARMUP:
                started.set()


def marks_in(text: str) -> set[str]:
    return set(re.findall(r"<[a-z]\d+>", text))


@pytest.mark.timeout(180)
async def test_the_platforms_end_on_the_other_worker_keeps_every_acknowledged_update(
    node: TriadServer,
) -> None:
    async with aiohttp.ClientSession() as http:
        rest = Rest(http)
        for _ in range(ROUNDS):
            async with AsyncExitStack() as stack:
                consult = await new_consult(rest, node)
                cid = consult["id"]
                owner = await worker_of(rest, node, consult)
                other = next(url for url in node.worker_urls if url != owner["url"])
                people = await seated(stack, owner["url"], consult, CLINICIANS)
                typists = []
                for role in CLINICIANS:
                    notes = NotesClient(people[role])
                    assert (await notes.sync("plan"))["ok"]
                    typists.append(Typist(role[0], notes))
                started = [asyncio.Event() for _ in typists]
                typing = [
                    asyncio.create_task(t.type_until_ended(s))
                    for t, s in zip(typists, started, strict=True)
                ]
                for event in started:
                    await asyncio.wait_for(event.wait(), 30)
                await rest.call(other, "POST", f"/api/v1/consults/{cid}/end", node.api_key)
                await asyncio.wait_for(asyncio.gather(*typing), 30)
                plan = await rest.call(other, "GET", f"/api/v1/consults/{cid}/plan", node.api_key)
                for role in CLINICIANS:
                    ended = await people[role].wait_event("ended")
                    assert ended["plan_id"] == plan["id"]

                saved = marks_in(plan["content"]["summary"])
                for typist in typists:
                    # Acknowledged: in the plan. Not in the plan: refused, with a code.
                    missing = [m for m in typist.acked if m not in saved]
                    assert missing == [], (typist.tag, missing, len(typist.acked))
                    for mark, code in typist.refused:
                        assert code in ENDED_CODES, (mark, code)
                        assert mark not in saved
                # Nothing else is in it: the acknowledged edits, and at most one the server
                # closed the socket on before answering (the page never heard either way; the
                # room answers before it disconnects, so this is not expected).
                acked = {m for t in typists for m in t.acked}
                unanswered = {m for t in typists for m in t.unanswered}
                assert acked <= saved <= acked | unanswered
                for person in people.values():
                    await person.wait_disconnected()
