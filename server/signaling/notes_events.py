"""The notes rule, in one place: every notes event of the consult namespace goes through
here, in this order: the sender is admitted to the room; their role may read (sync, awareness)
or write (update) the document; the clinicians' document is closed once the client withdrew
consent to sharing; an update is checked and applied durably by the notes service; only then is
it acknowledged and fanned out, to the admitted readers of the document and nobody else.
Awareness (presence, cursors) is relayed but never stored.

The notes service checks the role again on its own (it is the data's last line of defence),
but the decision and the order are this module's.

Awareness is read by `scan_awareness` before it is relayed (bounded, JSON checked), and the
Yjs client ids it speaks for are bound to the participant who first used them in the room:
nobody can move or clear another participant's cursor. Only what passed is fanned out."""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from typing import Any

from .. import metrics
from ..consults.model import JoinIdentity
from ..errors import ErrorCode, TriadError
from ..notes.documents import (
    DocumentName,
    may_read,
    parse_document,
    require_read,
    require_write,
)
from ..notes.yawareness import AwarenessLimits, AwarenessOwners, scan_awareness
from ..notes.ywire import Refused
from ..rooms.events import AwarenessRelay, NotesRelay
from ..rooms.occupant import Occupant
from ..rooms.room import ConsultRoom
from . import payloads
from .contract import Ack, NotesSyncAck, NotesUpdateAck
from .deps import SignalingDeps


class NotesEvents:
    def __init__(self, deps: Callable[[], SignalingDeps]) -> None:
        self._deps = deps
        self._awareness_limits = AwarenessLimits()
        # Per live room, gone with it.
        self._owners: weakref.WeakKeyDictionary[ConsultRoom, AwarenessOwners] = (
            weakref.WeakKeyDictionary()
        )

    async def sync(
        self, room: ConsultRoom, identity: JoinIdentity, args: tuple[Any, ...]
    ) -> NotesSyncAck:
        message = payloads.parse(payloads.NotesSync, args)
        room.require_admitted(identity.participant_id)
        require_read(identity.role, parse_document(message.doc))
        reply = await self._deps().notes.sync(
            identity.consult_id, identity.role, message.doc, message.state_vector
        )
        return NotesSyncAck(
            doc=parse_document(message.doc).value,
            update=reply.update,
            state_vector=reply.state_vector,
        )

    async def update(
        self, room: ConsultRoom, identity: JoinIdentity, args: tuple[Any, ...]
    ) -> NotesUpdateAck:
        try:
            ack = await self._update(room, identity, args)
        except Exception as exc:  # refused (by its code) or failed (`internal`)
            code = exc.code if isinstance(exc, TriadError) else ErrorCode.INTERNAL
            metrics.NOTES_UPDATES.labels(code.value).inc()
            raise
        metrics.NOTES_UPDATES.labels(metrics.NOTES_APPLIED).inc()
        return ack

    async def _update(
        self, room: ConsultRoom, identity: JoinIdentity, args: tuple[Any, ...]
    ) -> NotesUpdateAck:
        arrived = time.perf_counter()
        message = payloads.parse(payloads.NotesUpdate, args)
        room.require_admitted(identity.participant_id)
        doc = parse_document(message.doc)
        require_write(identity.role, doc)
        if doc is DocumentName.CLINICIANS and room.sharing_withdrawn:
            # The clinicians' channel is information shared between them: it stops with consent.
            raise TriadError(
                ErrorCode.CONSENT_WITHDRAWN,
                "the client withdrew consent to sharing: the clinicians' notes are closed",
            )
        # Durable before anything else: the service returns once the update is in the log.
        applied = await self._deps().notes.apply(
            identity.consult_id, identity.participant_id, identity.role, message.doc, message.update
        )
        durable = time.perf_counter()
        metrics.NOTES_APPLY_SECONDS.observe(durable - arrived)
        await room.send_to_admitted(
            NotesRelay(doc=doc.value, update=message.update, sender=identity.participant_id),
            where=_readers_of(doc),
            skip=identity.participant_id,
        )
        metrics.NOTES_FANOUT_SECONDS.observe(time.perf_counter() - durable)
        return NotesUpdateAck(doc=doc.value, seq=applied.seq)

    async def awareness(
        self, room: ConsultRoom, identity: JoinIdentity, args: tuple[Any, ...]
    ) -> Ack:
        message = payloads.parse(payloads.NotesAwareness, args)
        room.require_admitted(identity.participant_id)
        doc = parse_document(message.doc)
        # Presence in a document is as private as the document: only its readers see it.
        require_read(identity.role, doc)
        try:
            clients = scan_awareness(message.update, self._awareness_limits)
        except Refused as refused:
            raise TriadError(
                ErrorCode.NOTES_UPDATE_INVALID,
                f"the awareness update is refused: {refused.reason}",
            ) from None
        owners = self._owners.setdefault(room, AwarenessOwners())
        if not owners.claim(identity.participant_id, clients):
            raise TriadError(
                ErrorCode.NOTES_CLIENT_ID_TAKEN,
                "an awareness client id in this update belongs to another participant",
            )
        await room.send_to_admitted(
            AwarenessRelay(doc=doc.value, update=message.update, sender=identity.participant_id),
            where=_readers_of(doc),
            skip=identity.participant_id,
        )
        return Ack()


def _readers_of(doc: DocumentName) -> Callable[[Occupant], bool]:
    return lambda occupant: may_read(occupant.role, doc)
