"""The pre-scan is not stricter than Yjs: updates made by the real JavaScript Yjs in
web/node_modules, the way the browser client makes them (typing batched with Y.mergeUpdates, a
resync trimmed with Y.diffUpdate, two people at once, emoji, formatting, embeds, lists of maps,
replaced fields, deletions) all pass the checks and apply, and y-protocols awareness passes."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pycrdt
import pytest

from server.auth.roles import Role
from server.notes.yawareness import AwarenessLimits, scan_awareness
from tests.databases import services_required
from tests.notes.conftest import World

WEB = Path(__file__).resolve().parents[2] / "web"
SCRIPT = Path(__file__).with_name("real_yjs.mjs")
WRITER = {"plan": Role.THERAPIST, "client": Role.CLIENT, "clinicians": Role.PSYCHIATRIST}


@pytest.fixture(scope="module")
def made_by_yjs() -> dict[str, Any]:
    node = shutil.which("node")
    if node is None or not (WEB / "node_modules" / "yjs").is_dir():
        reason = "Node.js and web/node_modules are needed (scripts/install)"
        if services_required():
            pytest.fail(reason)
        pytest.skip(reason)
    run = subprocess.run(
        [node, "--input-type=module"],
        input=SCRIPT.read_text(),
        cwd=WEB,
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    made: dict[str, Any] = json.loads(run.stdout)
    return made


async def test_updates_from_real_yjs_pass_and_apply(
    world: World, made_by_yjs: dict[str, Any]
) -> None:
    updates = [(doc, base64.b64decode(data)) for doc, data in made_by_yjs["updates"]]
    assert len(updates) > 20
    for doc, data in updates:
        role = WRITER[doc]
        await world.notes.apply(world.consult_id, world.ids[role], role, doc, data)
    reply = await world.notes.sync(world.consult_id, Role.CLIENT, "plan", b"\x00")
    plan: pycrdt.Doc[Any] = pycrdt.Doc()
    plan.apply_update(reply.update)
    assert str(plan.get("summary", type=pycrdt.Text)) == made_by_yjs["planText"]
    await world.end()
    saved = await world.notes.finalize(world.consult_id)
    assert saved.content.diagnoses[0].name == "Major depressive disorder"
    assert saved.content.safety == "No current risk; plan shared."


def test_awareness_from_y_protocols_passes(made_by_yjs: dict[str, Any]) -> None:
    for data in made_by_yjs["awareness"]:
        clients = scan_awareness(base64.b64decode(data), AwarenessLimits())
        assert len(clients) == 1
