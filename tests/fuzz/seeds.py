"""Valid inputs for the notes fuzz target, made with pycrdt: a base document per notes document
(the state the target applies first) and updates made on top of it by other clients, so the
mutations start from origins, deletions and map entries that point into real content."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import pycrdt

from server.notes.documents import DocumentName

BASE_CLIENT = 1
TARGETS = {DocumentName.PLAN: 0, DocumentName.CLIENT: 1, DocumentName.CLINICIANS: 2}
AWARENESS_TARGET = 3


def _plan(doc: pycrdt.Doc[Any]) -> None:
    doc.get("summary", type=pycrdt.Text).insert(0, "Low mood for three months. 😀 Sleep poor.")
    diagnoses = doc.get("diagnoses", type=pycrdt.Array)
    diagnoses.append(pycrdt.Map({"name": "Major depressive disorder", "icd10": "F32.1"}))
    doc.get("medications", type=pycrdt.Array).append(
        pycrdt.Map({"name": "Sertraline", "dose": pycrdt.Text("50 mg"), "action": "start"})
    )
    doc.get("therapy_goals", type=pycrdt.Array).append("walk daily")
    doc.get("follow_up", type=pycrdt.Map)["date"] = "2026-12-15"


def _client(doc: pycrdt.Doc[Any]) -> None:
    doc.get("questions", type=pycrdt.Array).append("Can I drink coffee?")
    doc.get("goals", type=pycrdt.Array).append(pycrdt.Map({"text": pycrdt.Text("sleep by 11")}))


def _clinicians(doc: pycrdt.Doc[Any]) -> None:
    doc.get("notes", type=pycrdt.Text).insert(0, "Consider CBT-I. Review in 4 weeks.")


_BUILDERS: dict[DocumentName, Callable[[pycrdt.Doc[Any]], None]] = {
    DocumentName.PLAN: _plan,
    DocumentName.CLIENT: _client,
    DocumentName.CLINICIANS: _clinicians,
}


@functools.cache
def base_update(name: DocumentName) -> bytes:
    doc: pycrdt.Doc[Any] = pycrdt.Doc(client_id=BASE_CLIENT)
    with doc.transaction():
        _BUILDERS[name](doc)
    return doc.get_update()


def _edit(name: DocumentName, client: int, change: Callable[[pycrdt.Doc[Any]], None]) -> bytes:
    doc: pycrdt.Doc[Any] = pycrdt.Doc(client_id=client)
    doc.apply_update(base_update(name))
    before = doc.get_state()
    with doc.transaction():
        change(doc)
    return bytes([TARGETS[name]]) + doc.get_update(before)


def _plan_edits() -> list[Callable[[pycrdt.Doc[Any]], None]]:
    def text_middle(doc: pycrdt.Doc[Any]) -> None:
        doc.get("summary", type=pycrdt.Text).insert(10, " (worse mornings)")

    def text_delete(doc: pycrdt.Doc[Any]) -> None:
        del doc.get("summary", type=pycrdt.Text)[3:12]

    def text_format(doc: pycrdt.Doc[Any]) -> None:
        summary = doc.get("summary", type=pycrdt.Text)
        summary.format(0, 8, {"bold": True})
        summary.insert_embed(5, {"image": "x"})

    def new_medication(doc: pycrdt.Doc[Any]) -> None:
        doc.get("medications", type=pycrdt.Array).append(
            pycrdt.Map({"name": "Mirtazapine", "dose": "15 mg", "schedule": "night"})
        )

    def replace_field(doc: pycrdt.Doc[Any]) -> None:
        doc.get("follow_up", type=pycrdt.Map)["date"] = "2027-01-10"
        doc.get("diagnoses", type=pycrdt.Array)[0]["status"] = "confirmed"

    def nested_any(doc: pycrdt.Doc[Any]) -> None:
        doc.get("therapy_goals", type=pycrdt.Array).append(
            {"a": [1, 2.5, None, True, "x", {"b": [[1], {"c": "d"}]}]}
        )

    def remove_item(doc: pycrdt.Doc[Any]) -> None:
        del doc.get("diagnoses", type=pycrdt.Array)[0]

    return [
        text_middle,
        text_delete,
        text_format,
        new_medication,
        replace_field,
        nested_any,
        remove_item,
    ]


def seed_inputs() -> list[bytes]:
    seeds = [bytes([TARGETS[name]]) + base_update(name) for name in DocumentName]
    seeds += [_edit(DocumentName.PLAN, 2 + i, e) for i, e in enumerate(_plan_edits())]

    def question(doc: pycrdt.Doc[Any]) -> None:
        doc.get("questions", type=pycrdt.Array).append(pycrdt.Text("How long?"))
        del doc.get("questions", type=pycrdt.Array)[0]

    def note(doc: pycrdt.Doc[Any]) -> None:
        doc.get("notes", type=pycrdt.Text).insert(7, "and sleep diary ")

    def nested_maps(doc: pycrdt.Doc[Any]) -> None:
        # Shared types inside shared types: what the parent index (yparents.py) places.
        goal = doc.get("goals", type=pycrdt.Array)[0]
        goal["steps"] = pycrdt.Array([pycrdt.Map({"text": pycrdt.Text("lights out")})])

    seeds.append(_edit(DocumentName.CLIENT, 40, question))
    seeds.append(_edit(DocumentName.CLIENT, 42, nested_maps))
    seeds.append(_edit(DocumentName.CLINICIANS, 41, note))
    for state in ({"user": {"name": "T"}, "section": "summary", "cursor": {"a": [1, 2]}}, None):
        text = json.dumps(state).encode()
        seeds.append(bytes([AWARENESS_TARGET, 1, 0x81, 0x80, 0x04, 3]) + bytes([len(text)]) + text)
    return seeds
