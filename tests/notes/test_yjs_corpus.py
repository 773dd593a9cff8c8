"""Every input the fuzzer found and every crasher from issue 11 (tests/notes/yjs_corpus/), replayed
through the fuzz target's path (pre-scan, checks, apply with deep observers, sync, freeze) in a
subprocess: a regression that crashes the process fails here instead of killing pytest. The
panic- and error-class inputs also go through the NotesService: refused with a code by the checks
(the live copy kept), nothing logged, the document still syncs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pycrdt
import pytest

from server.auth.roles import Role
from server.errors import ErrorCode, TriadError
from server.notes import intake, schema
from server.notes.documents import DocumentName
from server.notes.yupdate import UpdateLimits
from tests.fuzz.seeds import base_update, seed_inputs
from tests.notes.conftest import World

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).parent / "yjs_corpus"
FILES = sorted(CORPUS.glob("*.bin"))
DOCS = (DocumentName.PLAN, DocumentName.CLIENT, DocumentName.CLINICIANS)


def test_the_corpus_holds_the_issue_crashers_and_the_fuzz_findings() -> None:
    names = {path.stem for path in FILES}
    assert any(name.startswith("issue11-nested-array-30000") for name in names)
    assert any(name.startswith("fuzz-") for name in names)
    assert any(name.startswith("panic-") for name in names)
    assert any(name.startswith("error-") for name in names)


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
def test_replay_in_a_subprocess(path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "tests.fuzz.yjs_target", "--replay", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"ok {path.name}" in run.stdout


@pytest.mark.parametrize("seed", range(len(seed_inputs())))
def test_the_fuzz_seeds_made_by_pycrdt_pass_the_checks(seed: int) -> None:
    data = seed_inputs()[seed]
    if data[0] == 3:
        return  # awareness: covered by test_yupdate
    name = DOCS[data[0]]
    checked = intake.check_update(data[1:], 64 * 1024, schema.root_names(name), UpdateLimits())
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    if data[1:] != base_update(name):
        doc.apply_update(base_update(name))
    intake.admit(doc, checked, intake.DocumentFacts(), 2 * 1024 * 1024, UpdateLimits())


# Inputs that made the library panic (`panic-`) or fail with an error (`error-`), caught by the
# guard, until the checks learnt to refuse them.
PANICS = {
    path.stem: path.read_bytes() for path in FILES if path.stem.startswith(("panic-", "error-"))
}


@pytest.mark.parametrize("data", list(PANICS.values()), ids=list(PANICS))
async def test_a_panic_class_input_is_refused_by_the_checks_before_the_library(
    world: World, data: bytes
) -> None:
    name = DOCS[data[0] % 4]
    role = Role.CLIENT if name is DocumentName.CLIENT else Role.THERAPIST
    base = base_update(name)
    # The base comes from a browser of that role first, as in the fuzz target.
    await world.notes.apply(world.consult_id, world.ids[role], role, str(name), base)
    live = world.notes._consults[world.consult_id].docs[name]
    with pytest.raises(TriadError) as refused:
        await world.notes.apply(world.consult_id, world.ids[role], role, str(name), data[1:])
    assert refused.value.code is ErrorCode.NOTES_UPDATE_INVALID
    # The checks refused it, not the guard after a panic: the live copy was not dropped.
    assert "does not apply" not in str(refused.value)
    assert world.notes._consults[world.consult_id].docs[name] is live
    assert live.usable
    reply = await world.notes.sync(world.consult_id, role, str(name), b"\x00")
    copy: pycrdt.Doc[Any] = pycrdt.Doc()
    copy.apply_update(reply.update)
    expected: pycrdt.Doc[Any] = pycrdt.Doc()
    expected.apply_update(base)
    assert intake.state_of(copy) == intake.state_of(expected)
    await world.end()
    await world.notes.finalize(world.consult_id)


DEEP_TYPES = """
import pycrdt
from server.notes import intake, schema
from server.notes.documents import DocumentName
from server.notes.yupdate import UpdateLimits
from tests.notes.yencode import Struct, Update, type_item, varuint

C, PER_UPDATE, UPDATES = 5, 6000, 8
doc = pycrdt.Doc()
keep = schema.declare(doc, DocumentName.CLIENT, lambda section: None)
facts = intake.DocumentFacts()
# The server's limit refuses this at depth 33 (test_type_depth.py); raised here to show that the
# server's own paths would survive such a document anyway.
limits = UpdateLimits(max_type_depth=60_000)
clock = 0
for n in range(UPDATES):
    structs = [] if clock else [type_item(1, parent_root="goals")]
    start = clock
    clock += len(structs)
    while clock < start + PER_UPDATE:
        structs.append(Struct(7, varuint(1), parent_id=(C, clock - 1), parent_sub="k"))
        clock += 1
    data = Update([(C, start, structs)]).encode()
    roots = schema.root_names(DocumentName.CLIENT)
    checked = intake.check_update(data, 64 * 1024, roots, limits)
    intake.admit(doc, checked, facts, 2 * 1024 * 1024, limits)
    intake.apply_update(doc, data)
    intake.applied(facts, checked)
fresh = pycrdt.Doc()
fresh.apply_update(doc.get_update())
assert intake.state_of(fresh) == intake.state_of(doc) == {C: clock}
schema.read_plan(pycrdt.Doc(), doc)
print("deep", clock)
"""


def test_types_nested_48000_deep_over_several_updates_keep_the_server_paths_alive() -> None:
    """With the type depth limit raised, what the server runs on a document nested 48,000 deep
    (apply with deep observers, encode, sync, the plan reader, whose recursion is Python's and
    caught) does not crash: defence in depth behind `max_type_depth`. In a subprocess."""
    run = subprocess.run(
        [sys.executable, "-c", DEEP_TYPES],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "deep 48000" in run.stdout
