"""The pre-scan of a y-protocols awareness update (presence and cursors) before it is relayed.

The encoding (y-protocols `awareness.js`, encodeAwarenessUpdate): a varuint count, then per entry
a varuint client id, a varuint clock and the state as a JSON string (`null` when the client
left). Browsers apply what the server relays with `JSON.parse` and keep it, so each state is
checked for size and nesting (one pass over its bytes, before `json.loads`) and must be an
object or null. The scan returns the client ids the update speaks for: the relay binds them to
the participant who sent them (`AwarenessOwners`), so nobody can speak for another's cursor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .ywire import MAX_SAFE_INTEGER, Reader, Refusal, Refused, json_depth_ok


@dataclass(frozen=True)
class AwarenessLimits:
    max_entries: int = 8
    max_state_bytes: int = 8 * 1024
    max_depth: int = 16
    max_clock: int = MAX_SAFE_INTEGER

    def __post_init__(self) -> None:
        if min(self.max_entries, self.max_state_bytes, self.max_depth, self.max_clock) < 1:
            raise ValueError("awareness limits must be positive")
        if self.max_depth > 1000:
            raise ValueError("max_depth above 1000 is where recursive decoders start to fail")


def scan_awareness(data: bytes, limits: AwarenessLimits) -> tuple[int, ...]:
    """The client ids the update carries states for; `Refused` at the first rule broken."""
    reader = Reader(data)
    clients: list[int] = []
    for _ in range(reader.count(4, limits.max_entries)):
        client = reader.varuint()
        reader.varuint(limits.max_clock)
        text = reader.string(limits.max_state_bytes)
        if not json_depth_ok(text, limits.max_depth):
            raise Refused(Refusal.TOO_DEEP)
        try:
            state = json.loads(text, parse_constant=_no_constant)
        except (ValueError, RecursionError):
            raise Refused(Refusal.BAD_JSON) from None
        if state is not None and not isinstance(state, dict):
            raise Refused(Refusal.NOT_AN_OBJECT)
        if client in clients:
            raise Refused(Refusal.DUPLICATE_CLIENT)
        clients.append(client)
    reader.finish()
    return tuple(clients)


def _no_constant(name: str) -> None:
    raise ValueError(name)


class AwarenessOwners:
    """Which participant speaks for each awareness client id in one consult: the first to use an
    id owns it for the consult. Each participant keeps at most `per_participant` ids (a reload
    or a new tab brings new ones; the oldest are let go)."""

    def __init__(self, per_participant: int = 16) -> None:
        if per_participant < 1:
            raise ValueError("per_participant must be positive")
        self._per_participant = per_participant
        self._owner: dict[int, str] = {}
        self._held: dict[str, list[int]] = {}

    def claim(self, participant_id: str, clients: tuple[int, ...]) -> bool:
        """Bind `clients` to the participant; False (and nothing bound) when any belongs to
        someone else."""
        if any(self._owner.get(c, participant_id) != participant_id for c in clients):
            return False
        held = self._held.setdefault(participant_id, [])
        for client in clients:
            if client in self._owner:
                continue
            self._owner[client] = participant_id
            held.append(client)
            if len(held) > self._per_participant:
                del self._owner[held.pop(0)]
        return True
