"""The pre-scan of Yjs updates and awareness updates on its own: hostile bytes written by hand
(tests/notes/yencode.py) are refused with the rule they break, and what pycrdt makes passes."""

from __future__ import annotations

from typing import Any

import pycrdt
import pytest

from server.notes.yawareness import AwarenessLimits, AwarenessOwners, scan_awareness
from server.notes.yupdate import UpdateLimits, check_causality, scan_update
from server.notes.ywire import Refusal, Refused, json_depth_ok, read_state_vector
from tests.notes.yencode import (
    GC,
    MAX_U64,
    SKIP,
    Struct,
    Update,
    any_item,
    any_nested_array,
    awareness,
    json_item,
    string_item,
    type_item,
    update,
    varstring,
    varuint,
)

LIMITS = UpdateLimits()
ROOTS = frozenset({"questions", "goals"})
C = 7  # a hostile peer's Yjs client id


def refusal(data: bytes, state: dict[int, int] | None = None) -> Refusal | None:
    """The rule `data` breaks (scan, then causality against `state`), or None if accepted."""
    try:
        check_causality(scan_update(data, ROOTS, LIMITS), state or {})
    except Refused as refused:
        return refused.reason
    return None


def nested_object(depth: int) -> bytes:
    return b"\x76\x01\x01k" * depth + b"\x7e"  # {"k": {"k": ... null}}


HOSTILE: dict[str, tuple[bytes, Refusal]] = {
    "empty": (b"", Refusal.TRUNCATED),
    "truncated-header": (b"\x01\x01", Refusal.COUNT_PAST_END),
    "truncated-item": (
        update(C, 0, string_item("hello", parent_root="questions"))[:-3],
        Refusal.COUNT_PAST_END,
    ),
    "varint-over-8-bytes": (b"\x01\x01" + b"\xff" * 9 + b"\x01", Refusal.VARINT_TOO_LONG),
    "varint-2^64-1": (b"\x01\x01" + varuint(MAX_U64), Refusal.VARINT_TOO_LONG),
    "client-count-huge": (varuint(2**40) + b"\x00", Refusal.COUNT_PAST_END),
    "struct-count-huge": (b"\x01" + varuint(2**50) + b"\x07\x00", Refusal.COUNT_PAST_END),
    "string-length-past-end": (
        b"\x01\x01\x07\x00\x04\x01" + varstring("questions") + varuint(2**40) + b"ab",
        Refusal.COUNT_PAST_END,
    ),
    "any-count-past-end": (
        b"\x01\x01\x07\x00\x08\x01" + varstring("questions") + varuint(1_000_000) + b"\x7e",
        Refusal.COUNT_PAST_END,
    ),
    "trailing-bytes": (
        update(C, 0, string_item("a", parent_root="questions")) + b"\x00",
        Refusal.TRAILING_BYTES,
    ),
    "unknown-root": (update(C, 0, string_item("a", parent_root="evil")), Refusal.UNKNOWN_ROOT),
    "unknown-content-ref": (
        update(C, 0, Struct(11, b"", parent_root="questions")),
        Refusal.UNKNOWN_CONTENT,
    ),
    "xml-type": (update(C, 0, type_item(3, parent_root="questions")), Refusal.UNSUPPORTED_TYPE),
    "subdocument": (
        update(C, 0, Struct(9, varstring("g") + b"\x7e", parent_root="questions")),
        Refusal.UNSUPPORTED_TYPE,
    ),
    "empty-string-item": (
        update(C, 0, string_item("", parent_root="questions")),
        Refusal.EMPTY_STRUCT,
    ),
    "empty-any-item": (update(C, 0, any_item([], parent_root="questions")), Refusal.EMPTY_STRUCT),
    "not-utf8": (
        update(C, 0, Struct(4, b"\x02\xc3\x28", parent_root="questions")),
        Refusal.NOT_UTF8,
    ),
    "any-unknown-tag": (
        update(C, 0, any_item([b"\x10"], parent_root="questions")),
        Refusal.UNKNOWN_CONTENT,
    ),
    "json-not-json": (
        update(C, 0, json_item(["{nope"], parent_root="questions")),
        Refusal.BAD_JSON,
    ),
    "json-nan": (update(C, 0, json_item(["NaN"], parent_root="questions")), Refusal.BAD_JSON),
    "json-deep": (
        update(C, 0, json_item(["[" * 100 + "]" * 100], parent_root="questions")),
        Refusal.TOO_DEEP,
    ),
    "origin-forward-same-client": (
        Update(
            [(C, 0, [string_item("ab", origin=(C, 5)), string_item("cd", parent_root="questions")])]
        ).encode(),
        Refusal.BAD_REFERENCE,
    ),
    "struct-after-skip": (
        Update(
            [
                (
                    C,
                    0,
                    [
                        string_item("ab", parent_root="questions"),
                        Struct(SKIP, varuint(3)),
                        string_item("c", origin=(C, 1)),
                    ],
                )
            ]
        ).encode(),
        Refusal.GAP,
    ),
    "duplicate-client": (
        Update(
            [
                (C, 0, [string_item("a", parent_root="questions")]),
                (C, 1, [string_item("b", origin=(C, 0))]),
            ]
        ).encode(),
        Refusal.DUPLICATE_CLIENT,
    ),
    "delete-zero-length": (Update(deletes=[(C, [(0, 0)])]).encode(), Refusal.EMPTY_STRUCT),
    "delete-past-state": (Update(deletes=[(C, [(0, 5)])]).encode(), Refusal.DELETE_PAST_STATE),
    "gap-first-clock": (update(C, 5, string_item("a", parent_root="questions")), Refusal.GAP),
    "missing-origin": (update(C, 0, string_item("a", origin=(99, 3))), Refusal.MISSING_DEPENDENCY),
    "missing-parent": (
        update(C, 0, string_item("a", parent_id=(99, 0))),
        Refusal.MISSING_DEPENDENCY,
    ),
    "cycle": (
        Update(
            [(C, 0, [string_item("a", origin=(8, 0))]), (8, 0, [string_item("b", origin=(C, 0))])]
        ).encode(),
        Refusal.CYCLE,
    ),
    "gc-huge-length": (update(C, 0, Struct(GC, varuint(2**40))), Refusal.NUMBER_TOO_LARGE),
    "million-tiny-deletes": (
        varuint(0) + varuint(1) + varuint(C) + varuint(1_000_000) + b"\x00\x01" * 100,
        Refusal.COUNT_PAST_END,
    ),
}


@pytest.mark.parametrize(("data", "reason"), list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_update_is_refused(data: bytes, reason: Refusal) -> None:
    assert refusal(data) is reason


@pytest.mark.parametrize("depth", [100, 1_000, 15_000, 30_000])
@pytest.mark.parametrize("kind", ["array", "object"])
def test_deep_any_nesting_is_refused_at_the_limit(depth: int, kind: str) -> None:
    values = any_nested_array(depth) if kind == "array" else nested_object(depth)
    assert refusal(update(C, 0, any_item([values], parent_root="questions"))) is Refusal.TOO_DEEP


def test_nesting_up_to_the_limit_passes() -> None:
    assert refusal(update(C, 0, any_item([any_nested_array(64)], parent_root="questions"))) is None
    too_deep = update(C, 0, any_item([any_nested_array(65)], parent_root="questions"))
    assert refusal(too_deep) is Refusal.TOO_DEEP


@pytest.mark.parametrize(
    "clock",
    [MAX_U64, 2**63, 2**53, 2**32 + 5, 2**31],
    ids=["2^64-1", "2^63", "2^53", "2^32+5", "2^31"],
)
def test_clocks_near_the_top_are_refused_then_ordinary_items_still_pass(clock: int) -> None:
    huge = update(C, clock, string_item("x", parent_root="questions"))
    assert refusal(huge) in (
        Refusal.VARINT_TOO_LONG,
        Refusal.NUMBER_TOO_LARGE,
        Refusal.CLOCK_TOO_LARGE,
    )
    # The 76-byte attack sends an ordinary item of the same client next: it passes on its own.
    assert refusal(update(C, 0, string_item("ok", parent_root="questions"))) is None


@pytest.mark.parametrize("ref", ["origin", "right-origin", "parent", "delete"])
def test_references_to_clocks_near_2_64_are_refused(ref: str) -> None:
    far = (C + 1, MAX_U64)
    struct = {
        "origin": string_item("a", origin=far),
        "right-origin": string_item("a", right_origin=far),
        "parent": string_item("a", parent_id=far),
    }.get(ref)
    data = update(C, 0, struct) if struct else Update(deletes=[(C, [(MAX_U64 - 1, 1)])]).encode()
    assert refusal(data) is not None


def test_a_million_tiny_items_are_bounded() -> None:
    one = string_item("a", parent_root="questions").encode()
    many = varuint(1) + varuint(1_000_000) + varuint(C) + varuint(0) + one * 1000 + b"\x00"
    assert refusal(many) is Refusal.COUNT_PAST_END
    limits = UpdateLimits(max_structs=100)
    hundred_one = Update([(C, 0, [string_item("a", parent_root="questions")] * 101)]).encode()
    with pytest.raises(Refused) as refused:
        scan_update(hundred_one, ROOTS, limits)
    assert refused.value.reason is Refusal.TOO_MANY_STRUCTS
    values = update(C, 0, any_item([b"\x7e"] * 1000, parent_root="questions"))
    with pytest.raises(Refused) as refused:
        scan_update(values, ROOTS, UpdateLimits(max_values=999))
    assert refused.value.reason is Refusal.TOO_MANY_VALUES


def test_causality_against_the_server_state() -> None:
    second = update(C, 1, string_item("b", origin=(C, 0)))
    assert refusal(second) is Refusal.GAP  # the server has nothing of C yet
    assert refusal(second, {C: 1}) is None
    assert refusal(second, {C: 2}) is None  # already known: Yjs ignores it
    across = Update(
        [(C, 0, [string_item("a", origin=(8, 0))]), (8, 0, [string_item("b", parent_root="goals")])]
    ).encode()
    assert refusal(across) is None  # the other client's item comes first in Yjs' order


def test_a_split_inside_a_character_is_refused() -> None:
    emoji = update(C, 0, string_item("a😀b", parent_root="questions"))  # clocks a=0, 😀=1-2, b=3
    shape = scan_update(emoji, ROOTS, LIMITS)
    assert shape.inside == {(C, 2)}
    inside = set(shape.inside)
    check_causality(shape, {})
    for splitting in (
        update(8, 0, string_item("x", origin=(C, 1))),  # after the first half
        update(8, 0, string_item("x", right_origin=(C, 2))),
        Update(deletes=[(C, [(2, 2)])]).encode(),
        Update(deletes=[(C, [(0, 2)])]).encode(),
    ):
        with pytest.raises(Refused) as refused:
            check_causality(scan_update(splitting, ROOTS, LIMITS), {C: 4}, inside)
        assert refused.value.reason is Refusal.SPLITS_CHARACTER
    whole = Update(deletes=[(C, [(1, 2)])]).encode()
    check_causality(scan_update(whole, ROOTS, LIMITS), {C: 4}, inside)


def test_what_pycrdt_makes_passes() -> None:
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    questions = doc.get("questions", type=pycrdt.Array)
    goals = doc.get("goals", type=pycrdt.Array)
    state: dict[int, int] = {}
    for step in range(20):
        before = doc.get_state()
        with doc.transaction():
            questions.append(f"question {step} ✓ 😀")
            goals.append(
                pycrdt.Map({"text": pycrdt.Text("sleep"), "n": step, "x": [1, {"y": None}]})
            )
            if step % 3 == 0:
                del questions[0]
        data = doc.get_update(before)
        check_causality(scan_update(data, ROOTS, LIMITS), state)
        state = read_state_vector(doc.get_state(), max_clients=10, max_clock=LIMITS.max_clock)


def test_limits_validate() -> None:
    with pytest.raises(ValueError, match="positive"):
        UpdateLimits(max_depth=0)
    with pytest.raises(ValueError, match="1000"):
        UpdateLimits(max_depth=5000)
    with pytest.raises(ValueError, match="32 bits"):
        UpdateLimits(max_clock=2**40)
    with pytest.raises(ValueError, match="positive"):
        AwarenessLimits(max_entries=0)


def test_json_depth_check_ignores_brackets_in_strings() -> None:
    assert json_depth_ok('{"a": "[[[[[[[[[["}', 2)
    assert not json_depth_ok("[[[1]]]", 2)
    assert json_depth_ok('"\\"[[[[["', 1)


# --- awareness ---

AWARE = AwarenessLimits()

HOSTILE_AWARENESS: dict[str, tuple[bytes, Refusal]] = {
    "empty": (b"", Refusal.TRUNCATED),
    "truncated": (awareness([(1, 1, {"user": {}})])[:-2], Refusal.COUNT_PAST_END),
    "count-huge": (varuint(2**40) + b"\x01\x01\x00", Refusal.COUNT_PAST_END),
    "too-many-entries": (awareness([(i, 1, None) for i in range(20)]), Refusal.TOO_MANY_VALUES),
    "varint-2^64-1": (varuint(1) + varuint(MAX_U64) + b"\x00\x02{}", Refusal.VARINT_TOO_LONG),
    "clock-2^64-1": (
        varuint(1) + varuint(3) + varuint(MAX_U64) + b"\x02{}",
        Refusal.VARINT_TOO_LONG,
    ),
    "state-length-past-end": (
        varuint(1) + b"\x01\x01" + varuint(2**30) + b"{}",
        Refusal.COUNT_PAST_END,
    ),
    "state-too-long": (awareness([(1, 1, {"a": "x" * 10_000})]), Refusal.STRING_TOO_LONG),
    "not-json": (awareness([(1, 1, "{nope")]), Refusal.BAD_JSON),
    "nan": (awareness([(1, 1, '{"a": NaN}')]), Refusal.BAD_JSON),
    "not-an-object": (awareness([(1, 1, "[1, 2]")]), Refusal.NOT_AN_OBJECT),
    "nested-100": (awareness([(1, 1, '{"a":' + "[" * 100 + "]" * 100 + "}")]), Refusal.TOO_DEEP),
    "nested-15000": (awareness([(1, 1, "[" * 3000 + "]" * 3000)]), Refusal.TOO_DEEP),
    "duplicate-client": (awareness([(1, 1, None), (1, 2, None)]), Refusal.DUPLICATE_CLIENT),
    "trailing": (awareness([(1, 1, None)]) + b"\x00", Refusal.TRAILING_BYTES),
}


@pytest.mark.parametrize(
    ("data", "reason"), list(HOSTILE_AWARENESS.values()), ids=list(HOSTILE_AWARENESS)
)
def test_hostile_awareness_is_refused(data: bytes, reason: Refusal) -> None:
    with pytest.raises(Refused) as refused:
        scan_awareness(data, AWARE)
    assert refused.value.reason is reason


def test_awareness_of_a_browser_passes() -> None:
    state = {"user": {"name": "Sam", "participant_id": "p_1"}, "section": "summary"}
    assert scan_awareness(awareness([(3_000_000_000, 12, state)]), AWARE) == (3_000_000_000,)
    assert scan_awareness(awareness([(5, 13, None)]), AWARE) == (5,)


def test_awareness_client_ids_belong_to_whoever_used_them_first() -> None:
    owners = AwarenessOwners(per_participant=2)
    assert owners.claim("p_therapist", (1, 2))
    assert not owners.claim("p_client", (2,))
    assert not owners.claim("p_client", (9, 1))  # all or nothing
    assert owners.claim("p_client", (9,))
    assert owners.claim("p_therapist", (3,))  # a third tab lets the oldest id go
    assert owners.claim("p_client", (1,))
    assert not owners.claim("p_therapist", (9,))
