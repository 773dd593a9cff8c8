"""A consult's worth of typing: what the clinicians and the client write, through the service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pycrdt

from server.auth.roles import Role
from server.notes.documents import DocumentName
from tests.notes.conftest import World

PLAN, CLIENT, CLINICIANS = DocumentName.PLAN, DocumentName.CLIENT, DocumentName.CLINICIANS
START = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
# Distinctive words, searched for in the database file afterwards.
SECRET_WORDS = ("Zolpiquinex", "nightmareflux", "Brightwaterhope", "Quietmorrowplan")


def text(root: str, value: str) -> Any:
    def change(doc: pycrdt.Doc[Any]) -> None:
        shared = doc.get(root, type=pycrdt.Text)
        shared.insert(len(shared), value)

    return change


def items(root: str, *values: dict[str, Any] | str) -> Any:
    def change(doc: pycrdt.Doc[Any]) -> None:
        array = doc.get(root, type=pycrdt.Array)
        for value in values:
            array.append(pycrdt.Map(value) if isinstance(value, dict) else value)

    return change


def follow_up(**fields: str) -> Any:
    def change(doc: pycrdt.Doc[Any]) -> None:
        shared = doc.get("follow_up", type=pycrdt.Map)
        for key, value in fields.items():
            shared[key] = value

    return change


async def type_a_consult(world: World) -> None:
    """Admit everyone, write a whole plan, the client's notes and the clinicians' notes."""
    for i, role in enumerate(world.ids):
        await world.record_room_event(role, "participant.admitted", START + timedelta(minutes=i))
    therapist, psychiatrist = world.peers[Role.THERAPIST], world.peers[Role.PSYCHIATRIST]
    client = world.peers[Role.CLIENT]
    steps: list[tuple[Any, DocumentName, Any]] = [
        (therapist, PLAN, text("summary", "Low mood and poor sleep since spring; nightmareflux.")),
        (
            psychiatrist,
            PLAN,
            items(
                "diagnoses",
                {
                    "name": "Major depressive disorder, single episode",
                    "icd10": "f32.1",
                    "status": "confirmed",
                },
                {"name": "Insomnia", "status": "provisional"},
                {"name": "Rule out bipolar II", "icd10": "not-a-code", "status": "maybe"},
            ),
        ),
        (
            psychiatrist,
            PLAN,
            items(
                "medications",
                {
                    "name": "Sertraline",
                    "dose": "50 mg",
                    "schedule": "once daily",
                    "action": "start",
                    "side_effects": pycrdt.Text("nausea, Zolpiquinex-like agitation"),
                },
                {"name": "Zolpidem", "action": "stop"},
            ),
        ),
        (therapist, PLAN, text("therapy_focus", "CBT-I and behavioural activation")),
        (therapist, PLAN, items("therapy_goals", "Walk daily", {"text": "Sleep by 23:00"})),
        (psychiatrist, PLAN, items("monitoring", {"measure": "PHQ-9", "when": "every 2 weeks"})),
        (therapist, PLAN, follow_up(date="2026-12-15", with_whom="Dr. Nair")),
        (therapist, PLAN, text("safety", "No current ideation; crisis line <988> shared.")),
        (client, CLIENT, items("questions", "Will it make me drowsy?")),
        (client, CLIENT, items("goals", {"text": "Brightwaterhope: back to work"})),
        (psychiatrist, CLINICIANS, text("notes", "Quietmorrowplan: consider lithium later")),
    ]
    for peer, doc, change in steps:
        await peer.send(doc, peer.edit(doc, change))
    await world.record_room_event(Role.CLIENT, "participant.left", START + timedelta(minutes=50))
