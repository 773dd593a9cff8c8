"""Shared types nested across updates, and items whose origins lie in two parents: both need the
parent of items already in the document, which the live copy's parent index (yparents.py) keeps.
Nesting up to `max_type_depth` passes, one level more is refused (and the document still syncs
and freezes), also after a restart rebuilt the copy from the log; an item between two parents is
refused by the checks before yrs sees it (it used to panic yrs, caught by the guard)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pycrdt
import pytest

from server.auth.roles import Role
from server.errors import ErrorCode, TriadError
from server.notes import intake
from server.notes.documents import DocumentName
from server.notes.live import LiveDoc
from server.notes.yparents import Found, ParentIndex, Placement
from server.notes.yupdate import UpdateLimits, check_causality, scan_update
from server.notes.ywire import Refusal, Refused
from tests.notes.conftest import World, write_unchecked_rows
from tests.notes.yencode import (
    DELETED,
    GC,
    Y_ARRAY,
    Y_MAP,
    Y_TEXT,
    Struct,
    Update,
    entry,
    string_item,
    type_item,
    update,
    varuint,
)

CLIENT = DocumentName.CLIENT
ROOTS = frozenset({"questions", "goals"})
C, D = 7, 8  # hostile peers' Yjs client ids
LIMIT = UpdateLimits().max_type_depth


def admitted(
    updates: list[bytes], limits: UpdateLimits | None = None, index: ParentIndex | None = None
) -> Refusal | None:
    """Scan and check each update in turn against one parent index, as the live copy does: the
    first refusal, or None if every one passes."""
    limits = limits or UpdateLimits()
    index = ParentIndex() if index is None else index
    state: dict[int, int] = {}
    for data in updates:
        shape = scan_update(data, ROOTS, limits)
        placement = Placement(index, limits.max_type_depth, non_text_roots=ROOTS)
        try:
            check_causality(shape, state, (), placement)
        except Refused as refused:
            return refused.reason
        placement.commit()
        for run in shape.runs:
            state[run.client] = max(state.get(run.client, 0), run.end)
    return None


def nested_by_parent(levels: int) -> list[bytes]:
    """One Y.Map per update, each inside the one before (named as its parent)."""
    first = update(C, 0, type_item(Y_MAP, parent_root="goals"))
    return [first] + [
        update(C, n, type_item(Y_MAP, parent_id=(C, n - 1), parent_sub="k"))
        for n in range(1, levels)
    ]


def nested_by_origin(levels: int) -> list[bytes]:
    """Each level a Y.Array holding an entry, and the next Y.Array placed right after that
    entry (its parent comes from its origin, never named)."""
    out = [update(C, 0, type_item(Y_ARRAY, parent_root="goals"))]
    clock = 1
    for _ in range(1, levels):
        value = entry("a", parent_id=(C, clock - 1))
        nested = type_item(Y_ARRAY, origin=(C, clock))
        out.append(update(C, clock, value, nested))
        clock += 2
    return out


def nested_by_right_origin(levels: int) -> list[bytes]:
    """As by origin, with the next Y.Array, from another client, placed before the entry (its
    right origin)."""
    out = [update(C, 0, type_item(Y_ARRAY, parent_root="goals"))]
    parent = (C, 0)
    for n in range(1, levels):
        out.append(update(C, n, entry("a", parent_id=parent)))
        out.append(update(D, n - 1, type_item(Y_ARRAY, right_origin=(C, n))))
        parent = (D, n - 1)
    return out


BUILDERS: dict[str, Callable[[int], list[bytes]]] = {
    "named-parent": nested_by_parent,
    "origin": nested_by_origin,
    "right-origin": nested_by_right_origin,
}


@pytest.mark.parametrize("how", list(BUILDERS))
def test_types_nested_up_to_the_limit_pass_and_one_more_is_refused(how: str) -> None:
    build = BUILDERS[how]
    assert admitted(build(LIMIT)) is None
    assert admitted(build(LIMIT + 1)) is Refusal.TYPES_TOO_DEEP
    small = UpdateLimits(max_type_depth=3)
    assert admitted(build(3), small) is None
    assert admitted(build(4), small) is Refusal.TYPES_TOO_DEEP


def test_nesting_within_one_update_counts_the_same() -> None:
    structs = [type_item(Y_MAP, parent_root="goals")] + [
        type_item(Y_MAP, parent_id=(C, n - 1), parent_sub="k") for n in range(1, LIMIT + 1)
    ]
    assert admitted([update(C, 0, *structs[:LIMIT])]) is None
    assert admitted([update(C, 0, *structs)]) is Refusal.TYPES_TOO_DEEP


def test_the_index_keeps_runs_not_clocks() -> None:
    """Entries added one per update, then a map holding a text: one run per stretch of
    clocks with one parent and depth."""
    typing = [update(C, 0, entry("a", parent_root="goals"))] + [
        update(C, n, entry("b", origin=(C, n - 1))) for n in range(1, 500)
    ]
    index = ParentIndex()
    assert admitted(typing, index=index) is None
    assert index.runs == 1
    assert index.find(C, 250) == Found("goals", 0)
    more = update(
        C,
        500,
        type_item(Y_MAP, origin=(C, 499)),
        type_item(Y_TEXT, parent_id=(C, 500), parent_sub="text"),
        string_item("in the text", parent_id=(C, 501)),
    )
    index = ParentIndex()
    assert admitted([*typing, more], index=index) is None
    assert index.runs == 4
    assert index.find(C, 500) == Found("goals", 1)
    assert index.find(C, 501) == Found((C, 500), 2, text=True)
    assert index.find(C, 510) == Found((C, 501), 0)
    # Sibling maps appended one after another, each one clock: one run.
    siblings = [update(D, 0, type_item(Y_MAP, parent_root="goals"))] + [
        update(D, n, type_item(Y_MAP, origin=(D, n - 1))) for n in range(1, 300)
    ]
    index = ParentIndex()
    assert admitted(siblings, index=index) is None
    assert index.runs == 1
    assert index.find(D, 299) == Found("goals", 1)


# Two roots' items, then one item placed between them: its origins lie in two parents. And items
# naming as parent an item that is not a shared type: yrs fails on one with content ("block parent
# must be deleted or shared ref type"), collects one in a deleted type.
TWO_PARENTS: dict[str, tuple[list[bytes], Refusal | None]] = {
    "two-roots": (
        [
            update(C, 0, entry("q", parent_root="questions")),
            update(C, 1, entry("g", parent_root="goals")),
            update(D, 0, entry("x", origin=(C, 0), right_origin=(C, 1))),
        ],
        Refusal.ORIGINS_IN_TWO_PARENTS,
    ),
    "root-and-nested-map": (
        [
            update(
                C,
                0,
                type_item(Y_ARRAY, parent_root="goals"),
                entry("in", parent_id=(C, 0)),
                entry("out", origin=(C, 0)),
            ),
            update(D, 0, entry("x", origin=(C, 1), right_origin=(C, 2))),
        ],
        Refusal.ORIGINS_IN_TWO_PARENTS,
    ),
    "within-one-update": (
        [
            Update(
                [
                    (D, 0, [entry("x", origin=(C, 0), right_origin=(C, 1))]),
                    (
                        C,
                        0,
                        [
                            entry("q", parent_root="questions"),
                            entry("g", parent_root="goals"),
                        ],
                    ),
                ]
            ).encode()
        ],
        Refusal.ORIGINS_IN_TWO_PARENTS,
    ),
    "same-parent": (
        [
            update(C, 0, entry("a", parent_root="goals"), entry("b", origin=(C, 0))),
            update(D, 0, entry("x", origin=(C, 0), right_origin=(C, 1))),
        ],
        None,
    ),
    "next-to-a-gc": (
        [
            update(C, 0, Struct(GC, varuint(1)), entry("g", parent_root="goals")),
            update(D, 0, entry("x", origin=(C, 0), right_origin=(C, 1))),
        ],
        None,
    ),
    "parent-is-a-string": (
        [
            update(C, 0, entry("g", parent_root="goals")),
            update(D, 0, type_item(Y_MAP, parent_id=(C, 0), parent_sub="k")),
        ],
        Refusal.PARENT_NOT_A_TYPE,
    ),
    "in-a-deleted-type": (
        [
            update(C, 0, Struct(DELETED, varuint(1), parent_root="goals")),
            update(D, 0, type_item(Y_MAP, parent_id=(C, 0), parent_sub="k")),
        ],
        None,
    ),
}


# Text content (a string, an embed, a format) anywhere but in a Y.Text. yrs reads a string run in
# a Y.Array by looping forever (the fuzz finding `hang-fuzz-string-in-an-array`).
TEXT_CONTENT: dict[str, tuple[list[bytes], Refusal | None]] = {
    "string-in-a-root-list": (
        [update(C, 0, string_item("g", parent_root="goals"))],
        Refusal.TEXT_OUTSIDE_TEXT,
    ),
    "string-in-a-nested-list": (
        [update(C, 0, type_item(Y_ARRAY, parent_root="goals"), string_item("g", parent_id=(C, 0)))],
        Refusal.TEXT_OUTSIDE_TEXT,
    ),
    "string-as-a-map-field": (
        [
            update(
                C,
                0,
                type_item(Y_MAP, parent_root="goals"),
                string_item("g", parent_id=(C, 0), parent_sub="text"),
            )
        ],
        Refusal.TEXT_OUTSIDE_TEXT,
    ),
    "string-after-an-entry": (
        [
            update(C, 0, entry("a", parent_root="goals")),
            update(D, 0, string_item("g", origin=(C, 0))),
        ],
        Refusal.TEXT_OUTSIDE_TEXT,
    ),
    "embed-in-a-list": (
        [update(C, 0, Struct(5, b"\x02{}", parent_root="questions"))],
        Refusal.TEXT_OUTSIDE_TEXT,
    ),
    "format-in-a-list": (
        [update(C, 0, Struct(6, b"\x01b\x04true", parent_root="questions"))],
        Refusal.TEXT_OUTSIDE_TEXT,
    ),
    "string-in-a-text-in-a-map": (
        [
            update(
                C,
                0,
                type_item(Y_MAP, parent_root="goals"),
                type_item(Y_TEXT, parent_id=(C, 0), parent_sub="text"),
                string_item("g", parent_id=(C, 1)),
                string_item("h", origin=(C, 2)),
            )
        ],
        None,
    ),
    "entries-in-lists-and-maps": (
        [
            update(
                C,
                0,
                type_item(Y_ARRAY, parent_root="goals"),
                entry("g", parent_id=(C, 0)),
                type_item(Y_MAP, origin=(C, 1)),
                entry("h", parent_id=(C, 2), parent_sub="text"),
            )
        ],
        None,
    ),
}


@pytest.mark.parametrize("case", list(TEXT_CONTENT))
def test_text_content_outside_a_text_is_refused(case: str) -> None:
    updates, expected = TEXT_CONTENT[case]
    assert admitted(updates) is expected


def test_a_root_of_unknown_type_is_not_held_to_the_text_rule() -> None:
    """A root the live copy has not declared reads as None: its type is unknown, so the rule
    holds for the declared list roots only (the server declares every root it accepts)."""
    index = ParentIndex()
    data = update(C, 0, string_item("g", parent_root="goals"))
    shape = scan_update(data, ROOTS, UpdateLimits())
    check_causality(shape, {}, (), Placement(index, LIMIT))
    with pytest.raises(Refused) as refused:
        check_causality(shape, {}, (), Placement(index, LIMIT, non_text_roots=ROOTS))
    assert refused.value.reason is Refusal.TEXT_OUTSIDE_TEXT


async def test_the_service_refuses_a_string_in_a_list_and_keeps_the_copy(world: World) -> None:
    """Through the NotesService (roots declared): refused with a code, the live copy kept and
    still readable, an ordinary entry accepted after."""
    first = update(C, 0, entry("Sleep before midnight", parent_root="goals"))
    assert await send(world, Role.CLIENT, CLIENT, first) is None
    live = live_copy(world)
    nested = update(C, 1, type_item(Y_ARRAY, origin=(C, 0)), string_item("steps", parent_id=(C, 1)))
    assert await send(world, Role.CLIENT, CLIENT, nested) is ErrorCode.NOTES_UPDATE_INVALID
    at_root = update(C, 1, string_item("goal", origin=(C, 0)))
    assert await send(world, Role.CLIENT, CLIENT, at_root) is ErrorCode.NOTES_UPDATE_INVALID
    assert live_copy(world) is live
    assert live.usable
    ordinary = update(C, 1, entry("Walk daily", origin=(C, 0)))
    assert await send(world, Role.CLIENT, CLIENT, ordinary) is None
    await world.end()
    saved = await world.notes.finalize(world.consult_id)
    assert saved.content.client_goals == ("Sleep before midnight", "Walk daily")


@pytest.mark.parametrize("case", list(TWO_PARENTS))
def test_an_item_between_two_parents_or_in_one_that_is_not_a_type_is_refused(case: str) -> None:
    updates, expected = TWO_PARENTS[case]
    assert admitted(updates) is expected


async def send(world: World, role: Role, doc: DocumentName, data: bytes) -> ErrorCode | None:
    try:
        await world.notes.apply(world.consult_id, world.ids[role], role, str(doc), data)
    except TriadError as refused:
        return refused.code
    return None


def innermost(doc: pycrdt.Doc[Any], kind: str) -> tuple[Any, int]:
    """The deepest shared type under the client document's `goals` (a chain of Y.Maps, each in
    the one before's `k`, or of Y.Arrays, each the last of the one before) and its depth."""
    node: Any = doc.get("goals", type=pycrdt.Array)
    depth = 0
    while True:
        if kind == "map" and depth >= 1:
            if "k" not in node:
                return node, depth
            node = node["k"]
        else:
            if not len(node):
                return node, depth
            node = node[0] if depth == 0 else node[-1]
        depth += 1


def deeper(kind: str) -> Callable[[pycrdt.Doc[Any]], None]:
    """One more level of real pycrdt types under the innermost one."""

    def change(doc: pycrdt.Doc[Any]) -> None:
        node, depth = innermost(doc, kind)
        fresh: Any = pycrdt.Map() if kind == "map" else pycrdt.Array()
        if kind == "map" and depth >= 1:
            node["k"] = fresh
        else:
            node.append(fresh)

    return change


async def nest(world: World, kind: str, levels: int) -> list[ErrorCode | None]:
    peer = world.peers[Role.CLIENT]
    answers = []
    for _ in range(levels):
        answers.append(await send(world, Role.CLIENT, CLIENT, peer.edit(CLIENT, deeper(kind))))
    return answers


def live_copy(world: World) -> LiveDoc:
    return world.notes._consults[world.consult_id].docs[CLIENT]


async def synced_depth(world: World, kind: str) -> int:
    """How deep the document a browser syncs from scratch nests; that browser's copy becomes the
    client's (dropping what the server refused)."""
    reply = await world.notes.sync(world.consult_id, Role.CLIENT, str(CLIENT), b"\x00")
    copy: pycrdt.Doc[Any] = pycrdt.Doc()
    copy.apply_update(reply.update)
    world.peers[Role.CLIENT].docs[CLIENT] = copy
    return innermost(copy, kind)[1]


@pytest.mark.parametrize("kind", ["map", "array"])
async def test_nesting_through_the_service_stops_at_the_limit_and_the_document_freezes(
    world: World, kind: str
) -> None:
    assert await nest(world, kind, LIMIT) == [None] * LIMIT
    live = live_copy(world)
    assert await nest(world, kind, 1) == [ErrorCode.NOTES_UPDATE_INVALID]
    assert live_copy(world) is live  # refused by the checks, not by the guard: no rebuild
    assert await synced_depth(world, kind) == LIMIT
    await world.end()
    saved = await world.notes.finalize(world.consult_id)
    assert saved.consult_id == world.consult_id


@pytest.mark.parametrize("snapshot_every", [5, 500])
async def test_a_restart_keeps_the_depth_known(world: World, snapshot_every: int) -> None:
    await world.restart(snapshot_every=snapshot_every)
    assert await nest(world, "map", LIMIT - 1) == [None] * (LIMIT - 1)
    await world.restart(snapshot_every=snapshot_every)
    assert await nest(world, "map", 2) == [None, ErrorCode.NOTES_UPDATE_INVALID]
    assert await synced_depth(world, "map") == LIMIT
    await world.restart(snapshot_every=snapshot_every)
    assert await nest(world, "map", 1) == [ErrorCode.NOTES_UPDATE_INVALID]
    assert await synced_depth(world, "map") == LIMIT


async def test_the_refusal_names_the_check(world: World) -> None:
    await nest(world, "map", LIMIT)
    peer = world.peers[Role.CLIENT]
    with pytest.raises(TriadError) as refused:
        await world.notes.apply(
            world.consult_id,
            world.ids[Role.CLIENT],
            Role.CLIENT,
            str(CLIENT),
            peer.edit(CLIENT, deeper("map")),
        )
    assert str(Refusal.TYPES_TOO_DEEP) in str(refused.value)


POISON: dict[str, tuple[list[bytes], dict[int, int]]] = {
    # Rows acknowledged before the rules; what the rebuilt copy keeps of the hostile clients.
    "too-deep": (nested_by_parent(LIMIT + 8), {C: LIMIT}),
    "two-parents": (TWO_PARENTS["two-roots"][0], {C: 2}),
    "parent-is-a-string": (TWO_PARENTS["parent-is-a-string"][0], {C: 1}),
}


@pytest.mark.parametrize("poison", list(POISON))
async def test_rows_logged_before_the_rules_are_skipped_on_rebuild(
    world: World, poison: str
) -> None:
    rows, kept = POISON[poison]
    peer = world.peers[Role.CLIENT]
    first = peer.edit(CLIENT, lambda doc: doc.get("questions", type=pycrdt.Array).append("Keep"))
    assert await send(world, Role.CLIENT, CLIENT, first) is None
    await write_unchecked_rows(world, list(rows), sections=("client_goals",))
    await world.restart()
    reply = await world.notes.sync(world.consult_id, Role.CLIENT, str(CLIENT), b"\x00")
    copy: pycrdt.Doc[Any] = pycrdt.Doc()
    copy.apply_update(reply.update)
    state = intake.state_of(copy)
    assert {client: state.get(client, 0) for client in (C, D)} == {C: 0, D: 0} | kept
    assert copy.get("questions", type=pycrdt.Array).to_py()[-1] == "Keep"
    await world.end()
    saved = await world.notes.finalize(world.consult_id)
    assert "Keep" in saved.content.client_questions
