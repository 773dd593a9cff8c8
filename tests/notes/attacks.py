"""The hostile tester's Yjs updates from issue 11, rebuilt by hand: each a named sequence of
updates one participant sends in order. Before the pre-scan they crashed the server (SIGSEGV:
deep nesting, clocks near 2^64) or left a document that never synced or froze again."""

from __future__ import annotations

from tests.notes.yencode import (
    GC,
    MAX_U64,
    Struct,
    Update,
    any_item,
    any_nested_array,
    entry,
    update,
    varuint,
)

C = 48_611  # the attacker's Yjs client id


def _deep(depth: int) -> bytes:
    return update(C, 0, any_item([any_nested_array(depth)], parent_root="questions"))


def _deep_object(depth: int) -> bytes:
    return update(C, 0, any_item([b"\x76\x01\x01k" * depth + b"\x7e"], parent_root="questions"))


ORDINARY = update(C, 0, entry("Is it safe with coffee?", parent_root="questions"))

# name -> the updates in order, each to the client's own document
ATTACKS: dict[str, list[bytes]] = {
    "nested-array-15000": [_deep(15_000)],
    "nested-array-30000": [_deep(30_000)],
    "nested-object-15000": [_deep_object(15_000)],
    # 76 bytes in all: an item at clock 2^64-1, then an ordinary item of the same client at 0.
    "clock-max-then-item-at-zero": [
        update(C, MAX_U64, entry("x" * 20, parent_root="questions")),
        update(C, 0, entry("y" * 20, parent_root="questions")),  # ordinary
    ],
    # Four small updates walking the clocks to 2^64-1 before an item at clock 0.
    "four-clock-updates": [
        update(C, MAX_U64 - 1, Struct(GC, varuint(1))),
        update(C, MAX_U64, entry("a", parent_root="questions")),
        Update(deletes=[(C, [(MAX_U64 - 2, 2)])]).encode(),
        update(C, 0, entry("b", parent_root="questions")),  # ordinary
    ],
    # An ordinary item, then a GC range past 2^32 (yrs divides by zero encoding it), then more.
    "gc-past-2pow32": [
        ORDINARY,
        update(C, 1, Struct(GC, varuint(2**32))),
        update(C, 1 + 2**32, entry("z", origin=(C, 0))),
    ],
    # A gap: clock 5 first (yrs keeps it pending), then the ordinary item at 0.
    "gap-then-item": [
        update(C, 5, entry("later", parent_root="questions")),
        ORDINARY,
    ],
    "origin-at-2pow64-1": [
        update(C, 0, entry("a", origin=(C + 1, MAX_U64))),
        ORDINARY,
    ],
    "unknown-root": [update(C, 0, entry("a", parent_root="__proto__")), ORDINARY],
}

# The steps that are ordinary on their own: the server applies them.
ORDINARY_STEPS = frozenset(
    {
        ORDINARY,
        update(C, 0, entry("y" * 20, parent_root="questions")),
        update(C, 0, entry("b", parent_root="questions")),
    }
)

# The ones that crashed the process outright: what the socket tests send to a server subprocess.
CRASHERS = (
    "nested-array-15000",
    "nested-array-30000",
    "clock-max-then-item-at-zero",
    "four-clock-updates",
    "gc-past-2pow32",
)
