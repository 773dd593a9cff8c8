"""The Yjs structure of each notes document (written down for browsers in docs/notes.md), and a
tolerant reader that freezes a document into plan content.

Every section is its own top-level shared type, so a browser binds an editor straight to it
(`ydoc.getText("summary")`, `ydoc.getArray("diagnoses")`) and the server learns which section an
update touched from which root fired. Items of lists are Y.Maps whose fields are strings or Y.Text.
The browser is not trusted to keep to this: reading never fails, a malformed item is skipped or a
bad enumerated value replaced, and each such repair is named in `warnings` (by position and field,
never by the text, which is clinical).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pycrdt

from .content import (
    Diagnosis,
    DiagnosisStatus,
    FollowUp,
    Medication,
    MedicationAction,
    Monitoring,
    PlanContent,
    normalize_icd10,
)
from .documents import DocumentName

RootType = type[pycrdt.Text] | type[pycrdt.Array[Any]] | type[pycrdt.Map[Any]]

# document -> root name -> (Yjs type, section name used for authors)
ROOTS: dict[DocumentName, dict[str, tuple[RootType, str]]] = {
    DocumentName.PLAN: {
        "summary": (pycrdt.Text, "summary"),
        "diagnoses": (pycrdt.Array, "diagnoses"),
        "medications": (pycrdt.Array, "medications"),
        "therapy_focus": (pycrdt.Text, "therapy_focus"),
        "therapy_goals": (pycrdt.Array, "therapy_goals"),
        "monitoring": (pycrdt.Array, "monitoring"),
        "follow_up": (pycrdt.Map, "follow_up"),
        "safety": (pycrdt.Text, "safety"),
    },
    DocumentName.CLIENT: {
        "questions": (pycrdt.Array, "client_questions"),
        "goals": (pycrdt.Array, "client_goals"),
    },
    DocumentName.CLINICIANS: {
        "notes": (pycrdt.Text, "clinicians_notes"),
    },
}


def root_names(name: DocumentName) -> frozenset[str]:
    """The roots an update to `name` may create items in; any other is refused."""
    return frozenset(ROOTS[name])


# Sections of the client-visible plan, in reading order.
PLAN_SECTIONS: tuple[str, ...] = tuple(
    section
    for doc in (DocumentName.PLAN, DocumentName.CLIENT)
    for _, section in ROOTS[doc].values()
)
# Longest text kept per field: a bound on what one runaway paste can put into a plan record.
MAX_FIELD_CHARS = 20_000
MAX_ITEMS = 200


def declare(
    doc: pycrdt.Doc[Any], name: DocumentName, on_change: Callable[[str], None]
) -> list[object]:
    """Declare the document's roots on a server copy and report, by section name, every root an
    applied update changes. Declaring a root writes nothing: the state vector stays empty.
    Returns the roots and subscriptions, which the caller keeps: dropping them unsubscribes."""
    keep: list[object] = []
    for root, (kind, section) in ROOTS[name].items():
        shared = doc.get(root, type=kind)
        # On the yrs type itself, not through pycrdt's `observe_deep`: that one builds a Python
        # event object per change, reading its delta, path and keys out of yrs, for a callback
        # that only needs to know the root fired (about 8% of a worker's CPU at 100 consults).
        keep += [shared, shared.integrated.observe_deep(_reporter(on_change, section))]
    return keep


def _reporter(on_change: Callable[[str], None], section: str) -> Callable[[Any], None]:
    def report(_events: Any) -> None:
        on_change(section)

    return report


@dataclass
class Reader:
    warnings: list[str] = field(default_factory=list)

    def warn(self, where: str, problem: str) -> None:
        self.warnings.append(f"{where}: {problem}")


def clean_text(value: Any) -> str | None:
    """A field's text: strings and Y.Text (already a str after `to_py`), numbers as written;
    None for anything else. Control characters other than newline and tab are dropped."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # Yjs numbers are JavaScript doubles: 150 arrives as 150.0
    if isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str):
        return None
    text = unicodedata.normalize("NFC", value)
    text = "".join(
        ch for ch in text if ch in "\n\t" or not unicodedata.category(ch).startswith("C")
    )
    return text.strip()[:MAX_FIELD_CHARS]


def _root(doc: pycrdt.Doc[Any], name: str, kind: RootType) -> Any:
    try:
        return doc.get(name, type=kind).to_py()
    except Exception:  # a root a browser created with another type: read as absent
        return None


def _field(item: dict[str, Any], key: str, where: str, reader: Reader) -> str:
    if key not in item or item[key] is None:
        return ""
    text = clean_text(item[key])
    if text is None:
        reader.warn(f"{where}.{key}", "not text; left empty")
        return ""
    return text


def _items(value: Any, where: str, reader: Reader) -> list[tuple[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        reader.warn(where, "not a list; left empty")
        return []
    if len(value) > MAX_ITEMS:
        reader.warn(where, f"more than {MAX_ITEMS} items; the rest left out")
    return [(f"{where}[{i}]", item) for i, item in enumerate(value[:MAX_ITEMS])]


def _maps(value: Any, where: str, reader: Reader) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for at, item in _items(value, where, reader):
        if isinstance(item, dict):
            found.append((at, item))
        else:
            reader.warn(at, "not a map; left out")
    return found


def _strings(value: Any, where: str, reader: Reader) -> tuple[str, ...]:
    """A list of free-text entries: each a string, a Y.Text, or a Y.Map with `text`."""
    found = []
    for at, item in _items(value, where, reader):
        text = clean_text(item.get("text") if isinstance(item, dict) else item)
        if text is None:
            reader.warn(at, "not text; left out")
        elif text:
            found.append(text)
    return tuple(found)


def _diagnoses(value: Any, reader: Reader) -> tuple[Diagnosis, ...]:
    found = []
    for at, item in _maps(value, "diagnoses", reader):
        name = _field(item, "name", at, reader)
        if not name:
            reader.warn(at, "no name; left out")
            continue
        raw_code = _field(item, "icd10", at, reader)
        code = normalize_icd10(raw_code) if raw_code else None
        if raw_code and code is None:
            reader.warn(f"{at}.icd10", "not an ICD-10 code; left out")
        raw_status = _field(item, "status", at, reader).lower()
        if raw_status in tuple(DiagnosisStatus):
            status = DiagnosisStatus(raw_status)
        else:
            status = DiagnosisStatus.PROVISIONAL
            if raw_status:
                reader.warn(f"{at}.status", "not provisional or confirmed; read as provisional")
        found.append(Diagnosis(name, code, status))
    return tuple(found)


def _medications(value: Any, reader: Reader) -> tuple[Medication, ...]:
    found = []
    for at, item in _maps(value, "medications", reader):
        name = _field(item, "name", at, reader)
        if not name:
            reader.warn(at, "no name; left out")
            continue
        raw_action = _field(item, "action", at, reader).lower()
        action = MedicationAction(raw_action) if raw_action in tuple(MedicationAction) else None
        if raw_action and action is None:
            reader.warn(f"{at}.action", "not start, adjust or stop; left unspecified")
        found.append(
            Medication(
                name=name,
                dose=_field(item, "dose", at, reader),
                schedule=_field(item, "schedule", at, reader),
                action=action,
                side_effects=_field(item, "side_effects", at, reader),
            )
        )
    return tuple(found)


def _monitoring(value: Any, reader: Reader) -> tuple[Monitoring, ...]:
    found = []
    for at, item in _maps(value, "monitoring", reader):
        measure = _field(item, "measure", at, reader)
        if not measure:
            reader.warn(at, "no measure; left out")
            continue
        found.append(Monitoring(measure, _field(item, "when", at, reader)))
    return tuple(found)


def _follow_up(value: Any, reader: Reader) -> FollowUp:
    if value is None:
        return FollowUp()
    if not isinstance(value, dict):
        reader.warn("follow_up", "not a map; left empty")
        return FollowUp()
    raw_date = _field(value, "date", "follow_up", reader)
    when = _field(value, "when", "follow_up", reader)
    day: date | None = None
    if raw_date:
        try:
            day = date.fromisoformat(raw_date)
        except ValueError:
            # Kept as written rather than lost: "in four weeks" is still a plan.
            when = f"{raw_date} {when}".strip() if when else raw_date
    return FollowUp(day, when, _field(value, "with_whom", "follow_up", reader))


def _text_root(doc: pycrdt.Doc[Any], name: str, reader: Reader) -> str:
    text = clean_text(_root(doc, name, pycrdt.Text))
    if text is None:
        reader.warn(name, "not text; left empty")
        return ""
    return text


def read_plan(plan: pycrdt.Doc[Any], client: pycrdt.Doc[Any]) -> tuple[PlanContent, list[str]]:
    """Freeze the `plan` and `client` documents into plan content, with the repairs made."""
    reader = Reader()
    content = PlanContent(
        summary=_text_root(plan, "summary", reader),
        diagnoses=_diagnoses(_root(plan, "diagnoses", pycrdt.Array), reader),
        medications=_medications(_root(plan, "medications", pycrdt.Array), reader),
        therapy_focus=_text_root(plan, "therapy_focus", reader),
        therapy_goals=_strings(_root(plan, "therapy_goals", pycrdt.Array), "therapy_goals", reader),
        monitoring=_monitoring(_root(plan, "monitoring", pycrdt.Array), reader),
        follow_up=_follow_up(_root(plan, "follow_up", pycrdt.Map), reader),
        safety=_text_root(plan, "safety", reader),
        client_questions=_strings(_root(client, "questions", pycrdt.Array), "questions", reader),
        client_goals=_strings(_root(client, "goals", pycrdt.Array), "goals", reader),
    )
    return content, reader.warnings


def read_clinicians(doc: pycrdt.Doc[Any]) -> str:
    return clean_text(_root(doc, "notes", pycrdt.Text)) or ""
