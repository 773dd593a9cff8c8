"""What changed between two versions of a plan, by place and field name only.

A change names where (`medications[0].dose`, `summary`), which section (the authors' section
names, `schema.PLAN_SECTIONS`), and whether something was added, removed or changed; never the
text, which is clinical: changes may be logged and are shown to every participant.

Plan items carry no ids (they are Y.Maps typed in a browser), so list items are matched by what
identifies them in the plan: a diagnosis by its name, else by its ICD-10 code (a renamed
diagnosis with the same code is one diagnosis, changed); a medication by its name; a monitoring
item by its measure; a free-text entry (goal, question) by its text, so a reworded goal reads as
one removed and one added. Names match case-insensitively, repeats in order. The path of an item
that is still there or new uses its position in the newer plan; a removed item, its position in
the older one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .content import Diagnosis, Medication, Monitoring, PlanContent
from .schema import PLAN_SECTIONS


class ChangeKind(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


@dataclass(frozen=True)
class PlanChange:
    path: str
    section: str
    kind: ChangeKind

    def __post_init__(self) -> None:
        if self.section not in PLAN_SECTIONS:
            raise ValueError("a change names a plan section")
        object.__setattr__(self, "kind", ChangeKind(self.kind))

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "section": self.section, "kind": str(self.kind)}


Key = Callable[[Any], str | None]


def _fold(text: str | None) -> str | None:
    return " ".join(text.split()).casefold() if text else None


# Per list section: the item fields compared, and the keys that identify an item, tried in order.
_DIAGNOSIS_FIELDS = ("name", "icd10", "status")
_MEDICATION_FIELDS = ("name", "dose", "schedule", "action", "side_effects")
_MONITORING_FIELDS = ("measure", "when")
_FOLLOW_UP_FIELDS = ("date", "when", "with_whom")


def _by_name(item: Diagnosis | Medication) -> str | None:
    return _fold(item.name)


def _by_code(item: Diagnosis) -> str | None:
    return item.icd10


def _by_measure(item: Monitoring) -> str | None:
    return _fold(item.measure)


def _by_text(item: str) -> str | None:
    return item


def _match(
    old: Sequence[Any], new: Sequence[Any], keys: Sequence[Key]
) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Pairs (old index, new index) of the same item, then the old items gone and the new ones
    added. Each key in turn pairs what the ones before it left unpaired."""
    pairs: list[tuple[int, int]] = []
    old_left = list(range(len(old)))
    new_left = list(range(len(new)))
    for key in keys:
        waiting: dict[str, list[int]] = {}
        for i in old_left:
            k = key(old[i])
            if k is not None:
                waiting.setdefault(k, []).append(i)
        still_new = []
        for j in new_left:
            k = key(new[j])
            if k is not None and waiting.get(k):
                pairs.append((waiting[k].pop(0), j))
            else:
                still_new.append(j)
        paired_old = {i for i, _ in pairs}
        old_left = [i for i in old_left if i not in paired_old]
        new_left = still_new
    return sorted(pairs, key=lambda p: p[1]), old_left, new_left


def _value_change(old: object, new: object) -> ChangeKind | None:
    if old == new:
        return None
    if old in (None, ""):
        return ChangeKind.ADDED
    if new in (None, ""):
        return ChangeKind.REMOVED
    return ChangeKind.CHANGED


def _fields(
    section: str, path: str, old: object, new: object, fields: Sequence[str]
) -> list[PlanChange]:
    changes = []
    for name in fields:
        kind = _value_change(getattr(old, name), getattr(new, name))
        if kind is not None:
            changes.append(PlanChange(f"{path}.{name}", section, kind))
    return changes


def _list(
    section: str,
    old: Sequence[Any],
    new: Sequence[Any],
    keys: Sequence[Key],
    fields: Sequence[str] = (),
) -> list[PlanChange]:
    pairs, removed, added = _match(old, new, keys)
    # What is in the newer plan in its order (changed or added), then what left it.
    at_new: list[tuple[int, PlanChange]] = []
    for i, j in pairs:
        at_new += [(j, c) for c in _fields(section, f"{section}[{j}]", old[i], new[j], fields)]
    at_new += [(j, PlanChange(f"{section}[{j}]", section, ChangeKind.ADDED)) for j in added]
    gone = [PlanChange(f"{section}[{i}]", section, ChangeKind.REMOVED) for i in removed]
    return [c for _, c in sorted(at_new, key=lambda item: item[0])] + gone


def _text(section: str, old: str, new: str) -> list[PlanChange]:
    kind = _value_change(old, new)
    return [PlanChange(section, section, kind)] if kind is not None else []


def plan_changes(old: PlanContent | None, new: PlanContent) -> list[PlanChange]:
    """The changes from `old` to `new`, in the plan's section order; with no `old`, everything
    in `new` is added."""
    before = old if old is not None else PlanContent()
    changes = [
        *_text("summary", before.summary, new.summary),
        *_list(
            "diagnoses", before.diagnoses, new.diagnoses, (_by_name, _by_code), _DIAGNOSIS_FIELDS
        ),
        *_list("medications", before.medications, new.medications, (_by_name,), _MEDICATION_FIELDS),
        *_text("therapy_focus", before.therapy_focus, new.therapy_focus),
        *_list("therapy_goals", before.therapy_goals, new.therapy_goals, (_by_text,)),
        *_list("monitoring", before.monitoring, new.monitoring, (_by_measure,), _MONITORING_FIELDS),
        *_fields("follow_up", "follow_up", before.follow_up, new.follow_up, _FOLLOW_UP_FIELDS),
        *_text("safety", before.safety, new.safety),
        *_list("client_questions", before.client_questions, new.client_questions, (_by_text,)),
        *_list("client_goals", before.client_goals, new.client_goals, (_by_text,)),
    ]
    return changes
