"""Follow-up series and the care workflow around a consult, through the real services: a consult
created as the follow-up of another, browsers that sync first (so they edit what the server
holds, the seeded plan included), and participants' identities for consent and check-ins."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pycrdt

from server.auth.roles import Role
from server.consults.model import ConsultSpec, ConsultView, JoinIdentity, ParticipantSpec
from server.ids import ConsultId, TokenId
from server.notes.documents import DocumentName, may_read
from server.notes.service import NotesService
from tests.notes.conftest import World

PEOPLE = (
    ParticipantSpec(Role.CLIENT, "Alex Rivera"),
    ParticipantSpec(Role.THERAPIST, "Sam Okafor"),
    ParticipantSpec(Role.PSYCHIATRIST, "Priya Nair"),
)


async def new_consult(world: World, follows: ConsultId | None = None) -> ConsultView:
    spec = ConsultSpec(participants=PEOPLE, follows=follows)
    return (await world.consults.create(world.caller, spec)).consult


def identity(consult: ConsultView, role: Role) -> JoinIdentity:
    """What a verified join token yields (the services below take it, not the token)."""
    who = next(p for p in consult.participants if p.role == role)
    return JoinIdentity(consult.id, who.id, role, who.name, TokenId("test-jti"), time.time() + 3600)


class Browser:
    """One participant's browser in one consult: syncs, edits locally, sends the update."""

    def __init__(self, notes: NotesService, consult: ConsultView, role: Role) -> None:
        self.notes = notes
        self.consult = consult
        self.role = role
        self.participant_id = next(p.id for p in consult.participants if p.role == role)
        self.docs: dict[DocumentName, pycrdt.Doc[Any]] = {
            name: pycrdt.Doc() for name in DocumentName if may_read(role, name)
        }

    async def sync(self, doc: DocumentName) -> pycrdt.Doc[Any]:
        reply = await self.notes.sync(
            self.consult.id, self.role, str(doc), self.docs[doc].get_state()
        )
        self.docs[doc].apply_update(reply.update)
        return self.docs[doc]

    async def edit(self, doc: DocumentName, change: Callable[[pycrdt.Doc[Any]], None]) -> None:
        await self.sync(doc)
        before = self.docs[doc].get_state()
        with self.docs[doc].transaction():
            change(self.docs[doc])
        update = self.docs[doc].get_update(before)
        await self.notes.apply(self.consult.id, self.participant_id, self.role, str(doc), update)
