"""The notes fuzz target (atheris): mutated Yjs updates and awareness updates through the
pre-scan and, when it accepts one, the apply path the server runs: causality and size checks
against a declared document holding a realistic base, pycrdt's apply with deep observers, then
what sync and the plan freeze do (encode the state, rebuild a fresh copy from it, read the plan).

The rule under test: nothing crashes the process (a SIGSEGV or an abort, which libFuzzer reports
as a deadly signal), and every acknowledged update leaves a document that still syncs and freezes
(a failed assertion is a finding). Where the library still fails on bytes the pre-scan passed (an
error, or a panic the guard in `intake.py` catches), the target does what the server does: the
update is refused, the copy dropped and rebuilt from the log, which must then sync. Such inputs
are kept in tests/notes/yjs_corpus/ too (`panic-*`): the pre-scan does not know the document's
structure (which parent each existing item has), so yrs' own checks are the last line there.

    python -m tests.fuzz.yjs_target --seconds 60 [--corpus DIR] [--artifacts DIR]
    python -m tests.fuzz.yjs_target --replay FILE...   (what the suite runs, in a subprocess)

The first byte of an input picks the target: 0-2 an update to plan, client or clinicians, 3 an
awareness update; the rest is the payload.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path
from typing import Any

import pycrdt

from server.errors import TriadError
from server.notes import intake, schema
from server.notes.documents import DocumentName
from server.notes.yawareness import AwarenessLimits, scan_awareness
from server.notes.yupdate import UpdateLimits
from server.notes.ywire import Refused
from tests.fuzz.seeds import base_update, seed_inputs

MAX_UPDATE = 64 * 1024
MAX_DOCUMENT = 2 * 1024 * 1024
LIMITS = UpdateLimits()
AWARENESS = AwarenessLimits()
DOCS = (DocumentName.PLAN, DocumentName.CLIENT, DocumentName.CLINICIANS)


def one_input(data: bytes) -> None:
    if not data:
        return
    target, payload = data[0] % 4, data[1:]
    if target == 3:
        with contextlib.suppress(Refused):
            scan_awareness(payload, AWARENESS)
        return
    name = DOCS[target]
    try:
        checked = intake.check_update(payload, MAX_UPDATE, schema.root_names(name), LIMITS)
    except TriadError:
        return
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    touched: set[str] = set()
    keep = schema.declare(doc, name, touched.add)
    doc.apply_update(base_update(name))
    try:
        intake.admit(doc, checked, intake.DocumentFacts(), MAX_DOCUMENT, LIMITS)
    except TriadError:
        return
    try:
        intake.apply_update(doc, payload)
    except intake.CrdtFailure:
        # Refused with notes_update_invalid; the server rebuilds its copy from the log.
        rebuilt: pycrdt.Doc[Any] = pycrdt.Doc()
        kept = schema.declare(rebuilt, name, touched.add)
        rebuilt.apply_update(base_update(name))
        check_syncs(rebuilt)
        del kept
        return
    check_syncs(doc)
    # Freeze: the plan reader over every root.
    if name is DocumentName.CLINICIANS:
        schema.read_clinicians(doc)
    else:
        other: pycrdt.Doc[Any] = pycrdt.Doc()
        pair = (doc, other) if name is DocumentName.PLAN else (other, doc)
        schema.read_plan(*pair)
    del keep


def check_syncs(doc: pycrdt.Doc[Any]) -> None:
    """The whole state encodes, and a fresh copy built from it holds exactly the same."""
    fresh: pycrdt.Doc[Any] = pycrdt.Doc()
    fresh.apply_update(doc.get_update())
    assert intake.state_of(fresh) == intake.state_of(doc), "the document does not sync"
    doc.get_update(fresh.get_state())


def replay(paths: list[Path]) -> None:
    for path in paths:
        one_input(path.read_bytes())
        print(f"ok {path.name}", flush=True)


def fuzz(seconds: int, corpus: Path, artifacts: Path) -> None:
    import atheris

    corpus.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(seed_inputs()):
        (corpus / f"seed-{i:03d}").write_bytes(seed)
    args = [
        sys.argv[0],
        str(corpus),
        f"-max_total_time={seconds}",
        f"-artifact_prefix={artifacts}/",
        "-max_len=8192",
        "-rss_limit_mb=2048",
        "-timeout=10",
        "-print_final_stats=1",
    ]
    atheris.instrument_all()  # coverage of the pre-scan and the checks guides the mutations
    atheris.Setup(args, one_input)
    atheris.Fuzz()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--corpus", type=Path, default=None)
    parser.add_argument("--artifacts", type=Path, default=Path("fuzz-artifacts"))
    parser.add_argument("--replay", type=Path, nargs="+", default=None)
    options = parser.parse_args()
    if options.replay:
        replay(options.replay)
        return
    corpus = options.corpus or Path(tempfile.mkdtemp(prefix="triad-fuzz-corpus-"))
    fuzz(options.seconds, corpus, options.artifacts)


if __name__ == "__main__":
    main()
