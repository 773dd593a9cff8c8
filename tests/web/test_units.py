"""The browser client's pure functions under Node's own test runner (`web/test/*.test.mjs`,
with the real Yjs from web/node_modules): the text diff the notes bindings send, where a caret
moves under another person's edit, and the connection-quality rating."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.databases import services_required

WEB = Path(__file__).resolve().parents[2] / "web"


def test_web_unit_tests_pass() -> None:
    node = shutil.which("node")
    if node is None or not (WEB / "node_modules" / "yjs").is_dir():
        reason = "Node.js and web/node_modules are needed (scripts/install)"
        if services_required():
            pytest.fail(reason)
        pytest.skip(reason)
    tests = sorted(str(p.relative_to(WEB)) for p in (WEB / "test").glob("*.test.mjs"))
    assert tests, "no web unit tests found"
    run = subprocess.run(
        [node, "--test", *tests], cwd=WEB, capture_output=True, text=True, timeout=50
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "# fail 0" in run.stdout, run.stdout[-2000:]
