"""The care workflow in a live room (a part of `ConsultRoom`): consent, same-room presence,
safety flags and the hand-off brief, each changed over REST and acted on here once the room
re-reads the care state from the database (`commands.py` brings the word from any worker)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ..auth.roles import Role, is_host
from ..consults.care import CareState
from ..consults.model import Actor
from ..ids import ConsultId, ParticipantId
from . import events
from .events import ServerEvent
from .occupant import Occupant, Place
from .ports import CareRecords
from .views import pending_presence, send_each


class CareWorkflow:
    """Mixed into `ConsultRoom`, whose state and helpers these are."""

    consult_id: ConsultId
    closed: bool
    _lock: asyncio.Lock
    _care: CareState
    _care_records: CareRecords
    _occupants: dict[ParticipantId, Occupant]
    _removed: set[ParticipantId]
    _auto_admit: bool

    async def _broadcast(
        self, message: ServerEvent, *, skip: ParticipantId | None = None
    ) -> None: ...

    async def _enter(self, occupant: Occupant, actor: Actor) -> None: ...

    async def _lobby_changed(self) -> None: ...

    async def care_changed(self) -> None:
        """Consent or same-room presence changed: tell everyone what changed (a pending
        declaration only to who may make it count), and let an auto-admitted client in once
        their consent is complete."""
        async with self._lock:
            if self.closed:
                return
            before, self._care = self._care, await self._care_records.care_state(self.consult_id)
            for occupant in list(self._occupants.values()):
                pending = pending_presence(self._care, occupant)
                if pending != occupant.presence_pending:
                    occupant.presence_pending = pending
                    await send_each([occupant], events.PresencePendingChanged(pending=[*pending]))
            for occupant in list(self._occupants.values()):
                present = self._care.present_with.get(occupant.id, ())
                if present != occupant.present_with:
                    occupant.present_with = present
                    await self._broadcast(events.PeerUpdated(participant=occupant.view()))
            if before.consent_public() != self._care.consent_public():
                await self._broadcast(events.ConsentChanged(**self._care.consent_public()))
            if self._auto_admit and self._care.consent_complete:
                for occupant in list(self._occupants.values()):
                    if occupant.place is Place.LOBBY and occupant.id not in self._removed:
                        occupant.place = Place.ROOM
                        await self._enter(occupant, Actor("system", "auto-admit"))
            await self._lobby_changed()

    async def safety_flags_changed(self) -> None:
        """A check-in raised a safety flag: re-read the flags, and the clinicians in the room see
        each one they have not been shown (a clinician who joins later gets them all in the
        join state)."""
        async with self._lock:
            if self.closed:
                return
            shown = {f.get("measure_id") for f in self._care.safety_flags}
            care = await self._care_records.care_state(self.consult_id)
            new = [f for f in care.safety_flags if f.get("measure_id") not in shown]
            self._care = replace(self._care, safety_flags=care.safety_flags)
            await self._tell_hosts(new)

    async def _tell_hosts(self, flags: list[Mapping[str, Any]]) -> None:
        hosts = [o for o in self._occupants.values() if is_host(o.role)]
        for flag in flags:
            await send_each(hosts, events.SafetyFlagRaised.model_validate(flag))

    async def brief_updated(self) -> None:
        """The hand-off brief was saved: the clinicians who may read it are told (the event
        carries none of it); the psychiatrist not once the client withdrew sharing."""
        async with self._lock:
            if self.closed:
                return
            readers = [
                o
                for o in self._occupants.values()
                if o.role == Role.THERAPIST
                or (is_host(o.role) and not self._care.sharing_withdrawn)
            ]
            await send_each(readers, events.BriefUpdated())
