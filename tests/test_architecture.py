"""The layout's rules, checked: imports run one way, and modules stay small."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVER = Path(__file__).resolve().parent.parent / "server"
MAX_LINES = 500

# package -> packages it must never import (directly or by a relative import).
FORBIDDEN = {
    "server.rooms": ("server.signaling", "server.api", "server.notes", "socketio"),
    "server.rooms.media": (
        "server.rooms.room",
        "server.rooms.registry",
        "server.rooms.ports",
        "server.rooms.occupant",
        "server.consults",
        "server.db",
    ),
    "server.signaling": ("server.api", "server.rooms.media", "aiortc"),
    "server.notes": ("server.signaling", "server.api", "server.rooms", "socketio", "aiortc"),
    "server.auth": ("aiohttp", "socketio", "server.api", "server.signaling", "server.db"),
    "server.db": ("server.api", "server.consults", "server.signaling", "server.rooms"),
    "server.consults": ("aiohttp", "socketio", "server.api", "server.signaling"),
    "server.api": ("server.signaling", "server.rooms.media", "aiortc"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(SERVER.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    package = (
        module_name(path) if path.name == "__init__.py" else module_name(path).rsplit(".", 1)[0]
    )
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


SOURCES = sorted(SERVER.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(SERVER)))
def test_imports_run_one_way(path: Path) -> None:
    name = module_name(path)
    for package, banned in FORBIDDEN.items():
        if name == package or name.startswith(package + "."):
            for target in imports(path):
                for ban in banned:
                    assert target != ban, f"{name} imports {target}"
                    assert not target.startswith(ban + "."), f"{name} imports {target}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(SERVER)))
def test_modules_stay_small(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= MAX_LINES


def test_the_checker_sees_relative_imports() -> None:
    found = imports(SERVER / "consults" / "service.py")
    assert "server.auth.tokens" in found
    assert "server.db.models" in found
