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
    "server.rooms.media": ("server.consults", "server.db"),
    "server.signaling": ("server.api", "server.rooms.media", "aiortc"),
    "server.notes": ("server.signaling", "server.api", "server.rooms", "socketio", "aiortc"),
    "server.auth": ("aiohttp", "socketio", "server.api", "server.signaling", "server.db"),
    "server.db": ("server.api", "server.consults", "server.signaling", "server.rooms"),
    "server.consults": ("aiohttp", "socketio", "server.api", "server.signaling"),
    "server.api": ("server.signaling", "server.rooms.media", "aiortc"),
    # Endpoints and delivery: above the persisted rules, below the edges; no room or socket.
    "server.webhooks": (
        "server.api",
        "server.signaling",
        "server.rooms",
        "server.notes",
        "server.cluster",
        "socketio",
    ),
    # Operator commands' work (checks, key rotation): below the command line, beside the app.
    "server.ops": ("server.api", "server.signaling", "server.app", "server.commands"),
    # Where workers and consults live: Redis and settings only, no room, socket or database.
    "server.cluster": (
        "server.api",
        "server.signaling",
        "server.rooms",
        "server.notes",
        "server.consults",
        "server.db",
        "aiohttp",
        "socketio",
    ),
}


# The bottom layers every layer may import: they import nothing of Triad's above them.
BOTTOM = {
    "server.metrics": ("server.errors",),
    "server.errors": (),
    "server.ids": (),
}


# import -> the one package whose modules may import it. The media plane alone speaks WebRTC:
# the room above it sees a participant's media session only through `RoomMedia`.
ONLY_IN = {
    "aiortc": "server.rooms.media",
    "aioice": "server.rooms.media",
    "av": "server.rooms.media",
}
# The media plane imports nothing of the room around it (it is handed what it needs: an
# `MediaSink` per connection, a listener for the active speaker).
SELF_CONTAINED = ("server.rooms.media", "server.rooms")


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


def inside(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(SERVER)))
def test_webrtc_stays_in_the_media_plane(path: Path) -> None:
    name = module_name(path)
    for target in imports(path):
        for library, owner in ONLY_IN.items():
            if inside(target, library):
                assert inside(name, owner), f"{name} imports {target}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(SERVER)))
def test_the_media_plane_imports_nothing_of_the_room(path: Path) -> None:
    package, around = SELF_CONTAINED
    if inside(module_name(path), package):
        for target in imports(path):
            assert not inside(target, around) or inside(target, package), target


@pytest.mark.parametrize("module", sorted(BOTTOM))
def test_the_bottom_layer_imports_nothing_above_it(module: str) -> None:
    path = SERVER.parent / (module.replace(".", "/") + ".py")
    for target in imports(path):
        if inside(target, "server"):
            assert any(inside(target, allowed) for allowed in BOTTOM[module]), target


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(SERVER)))
def test_modules_stay_small(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= MAX_LINES


def test_the_checker_sees_relative_imports() -> None:
    found = imports(SERVER / "consults" / "service.py")
    assert "server.auth.tokens" in found
    assert "server.db.models" in found
    media = imports(SERVER / "rooms" / "media" / "session.py")
    assert "server.rooms.media.peer" in media
    assert not any(inside(name, "server.rooms") for name in imports(SERVER / "ids.py"))
    assert any(
        inside(name, "server.rooms.media") for name in imports(SERVER / "rooms" / "ports.py")
    )
