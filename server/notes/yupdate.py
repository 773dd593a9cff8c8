"""The pre-scan of a Yjs v1 update, in Python, before pycrdt (yrs, Rust) decodes a byte of it.

yrs decodes nested `Any` values and JSON recursively, trusts lengths and clocks, and keeps an
update it cannot integrate yet as "pending": a hand-made update nested 15,000 deep overflows the
process stack (SIGSEGV), clocks near 2^64 overflow its arithmetic, and an item that leaves a gap
in a client's clocks stays pending for good, after which the document can no longer be encoded
(every sync and the plan freeze fail). So each update is read here first, iteratively (an
explicit stack, never recursion), and refused unless:

- every varuint fits in 8 bytes and every count and length fits in the bytes that are left;
- `Any`, JSON, embed and format values nest at most `max_depth` deep, strings and buffers and the
  numbers of structs, values, clients and deleted ranges stay within the limits;
- every clock, and every clock plus length, is at most `max_clock` (yrs keeps clocks in 32 bits);
- an item names as its parent only a root the document declares (docs/notes.md), holds only
  content Yjs' text, arrays and maps use (no XML types, no subdocuments), and is not empty;
- against the server's state vector (`check_causality`): no client's structs start past what
  the server has of it, everything an item refers to (origin, right origin, parent) exists in the
  document or earlier in the update's integration order (no cycle), and the delete set names
  only clocks that will exist. Together: nothing the update holds can stay pending.

The spec read: Yjs `src/utils/encoding.js` (readClientsStructRefs, integrateStructs),
`UpdateDecoderV1`, `readItemContent`, lib0 `decoding.js` (readAny, varuint); yrs `update.rs`.
"""

from __future__ import annotations

import heapq
import json
import re
from collections.abc import Collection
from dataclasses import dataclass, field

from .yparents import Kind, Parent, Placement
from .ywire import Reader, Refusal, Refused, json_depth_ok

# Content refs of the v1 encoding (the low 5 bits of a struct's info byte).
_GC, _DELETED, _JSON, _BINARY, _STRING, _EMBED, _FORMAT, _TYPE, _ANY, _DOC, _SKIP = range(11)
_HAS_ORIGIN, _HAS_RIGHT_ORIGIN, _HAS_PARENT_SUB = 0x80, 0x40, 0x20
# Y.Array, Y.Map, Y.Text: the shared types the notes use. XML types and subdocuments are refused.
_ALLOWED_TYPE_REFS = frozenset({0, 1, 2})
_TEXT_TYPE_REF = 2
_KINDS = {
    _DELETED: Kind.DELETED,
    _STRING: Kind.TEXT_CONTENT,
    _EMBED: Kind.TEXT_CONTENT,
    _FORMAT: Kind.TEXT_CONTENT,
}
# lib0 Any tags: 117 array and 118 object nest; the rest are leaves.
_ANY_ARRAY, _ANY_OBJECT = 117, 118
_ANY_FIXED = {127: 0, 126: 0, 124: 4, 123: 8, 122: 8, 121: 0, 120: 0}
_ANY_INT, _ANY_STRING, _ANY_BYTES = 125, 119, 116
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
# Bytes one more struct in the document's encoded state can cost (an info byte, two ids of two
# varuints, a length): an update can split an existing item at its origins and at each end of a
# deleted range, and a map entry deletes the value it replaces.
STRUCT_OVERHEAD = 64


@dataclass(frozen=True)
class UpdateLimits:
    """Bounds for one update. The defaults are far above what a person typing produces (the
    update size limit binds first) and far below what breaks the decoder."""

    max_depth: int = 64
    max_clients: int = 1024
    max_structs: int = 65_536
    max_values: int = 65_536
    max_delete_ranges: int = 65_536
    max_string_bytes: int = 4 * 1024 * 1024
    max_clock: int = 2**31 - 1
    # How deep Y.Array/Y.Map/Y.Text may nest in the document, across updates (a root's children
    # are at 1; the notes use 2: a Y.Map in a list, a Y.Text in it). Checked against the live
    # copy's parent index (yparents.py).
    max_type_depth: int = 32

    def __post_init__(self) -> None:
        for name in (
            "max_depth",
            "max_type_depth",
            "max_clients",
            "max_structs",
            "max_values",
            "max_delete_ranges",
            "max_string_bytes",
            "max_clock",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")
        if self.max_depth > 1000:
            raise ValueError("max_depth above 1000 is where recursive decoders start to fail")
        if self.max_clock > 2**32 - 1:
            raise ValueError("yrs keeps clocks in 32 bits")


@dataclass(frozen=True)
class ItemRef:
    """One struct to integrate: its first clock, its length and the ids it needs to exist first
    that belong to other clients (Yjs integrates same-client structs in clock order)."""

    clock: int
    length: int
    needs: tuple[tuple[int, int], ...]
    # Where it goes (for the parent index): its origins, or the parent it names, and its kind.
    origin: tuple[int, int] | None = None
    right: tuple[int, int] | None = None
    parent: Parent = None
    kind: Kind = Kind.GC


@dataclass
class ClientRun:
    client: int
    start: int
    end: int  # the clock after the last struct that will be integrated (trailing skips excluded)
    items: list[ItemRef] = field(default_factory=list)


@dataclass(frozen=True)
class UpdateShape:
    """What the scan learnt: enough to check causality and to bound the growth of the document."""

    runs: tuple[ClientRun, ...]
    deletes: tuple[tuple[int, int, int], ...]  # (client, clock, end)
    roots: frozenset[str]
    structs: int
    size: int
    # Clocks that fall inside a character (the second UTF-16 unit of one past U+FFFF) of the
    # update's strings, and the clocks at which applying it splits an existing struct: yrs breaks
    # a string split inside a character (its encoding then loses clocks: unsyncable).
    inside: frozenset[tuple[int, int]] = frozenset()
    splits: tuple[tuple[int, int], ...] = ()

    @property
    def growth_bound(self) -> int:
        """At most how many bytes applying this update can add to the document's encoded state:
        its own bytes plus, per struct and per deleted range, the splits it can cause."""
        return self.size + STRUCT_OVERHEAD * 3 * (self.structs + len(self.deletes))


def scan_update(data: bytes, roots: frozenset[str] | None, limits: UpdateLimits) -> UpdateShape:
    """Read the whole update; `Refused` at the first rule broken. Linear in its size. `roots`:
    the root names an item may name as its parent (None: any, for rows logged before the rule)."""
    reader = Reader(data)
    scan = _Scan(limits, roots)
    runs: list[ClientRun] = []
    seen: set[int] = set()
    structs = 0
    for _ in range(reader.count(3, limits.max_clients)):
        count = reader.varuint()
        if count == 0:
            raise Refused(Refusal.EMPTY_STRUCT)  # yrs unwraps a client's first struct
        if count * 2 > reader.left:
            raise Refused(Refusal.COUNT_PAST_END)
        structs += count
        if structs > limits.max_structs:
            raise Refused(Refusal.TOO_MANY_STRUCTS)
        client = reader.varuint()
        if client in seen:
            raise Refused(Refusal.DUPLICATE_CLIENT)
        seen.add(client)
        clock = reader.varuint()
        run = ClientRun(client, clock, clock)
        skipped = False
        for _ in range(count):
            if clock > limits.max_clock:
                raise Refused(Refusal.CLOCK_TOO_LARGE)
            info = reader.byte()
            ref = info & 0x1F
            if ref in (_GC, _SKIP):
                length = reader.varuint(limits.max_clock)
                if ref == _SKIP:
                    skipped = True
                elif skipped:
                    raise Refused(Refusal.GAP)  # a struct after a skip: Yjs keeps it pending
                item = ItemRef(clock, length, ())
            else:
                if skipped:
                    raise Refused(Refusal.GAP)
                item = _item(reader, info, ref, client, clock, scan)
                length = item.length
            if length < 1:
                raise Refused(Refusal.EMPTY_STRUCT)
            if clock + length > limits.max_clock:
                raise Refused(Refusal.CLOCK_TOO_LARGE)
            if ref != _SKIP:
                run.items.append(item)
                run.end = clock + length
            clock += length
        runs.append(run)
    deletes = _delete_set(reader, limits)
    reader.finish()
    for client, start, end in deletes:
        scan.splits += ((client, start), (client, end))
    return UpdateShape(
        tuple(runs),
        deletes,
        frozenset(scan.named),
        structs,
        len(data),
        frozenset(scan.inside),
        tuple(scan.splits),
    )


class _Scan:
    """What the scan gathers over the whole update, and the values it counts against the
    limits."""

    __slots__ = ("inside", "limits", "named", "roots", "splits", "values")

    def __init__(self, limits: UpdateLimits, roots: frozenset[str] | None) -> None:
        self.limits = limits
        self.roots = roots
        self.values = 0
        self.named: set[str] = set()
        self.inside: set[tuple[int, int]] = set()
        self.splits: list[tuple[int, int]] = []

    def take(self, n: int) -> None:
        self.values += n
        if self.values > self.limits.max_values:
            raise Refused(Refusal.TOO_MANY_VALUES)


def _id(reader: Reader, limits: UpdateLimits) -> tuple[int, int]:
    client = reader.varuint()
    clock = reader.varuint()
    if clock > limits.max_clock:
        raise Refused(Refusal.CLOCK_TOO_LARGE)
    return client, clock


def _item(
    reader: Reader,
    info: int,
    ref: int,
    client: int,
    clock: int,
    scan: _Scan,
) -> ItemRef:
    """One item's header and content: the ids it needs, its length in clocks, where it goes."""
    limits = scan.limits
    refs: list[tuple[int, int]] = []
    origin = right = None
    parent: Parent = None
    if info & _HAS_ORIGIN:
        origin = _id(reader, limits)
        refs.append(origin)
        scan.splits.append((origin[0], origin[1] + 1))  # it goes right after the origin
    if info & _HAS_RIGHT_ORIGIN:
        right = _id(reader, limits)
        refs.append(right)
        scan.splits.append(right)
    if not info & (_HAS_ORIGIN | _HAS_RIGHT_ORIGIN):
        if reader.varuint() == 1:
            parent = reader.string(limits.max_string_bytes)
            if scan.roots is not None and parent not in scan.roots:
                raise Refused(Refusal.UNKNOWN_ROOT)
            scan.named.add(parent)
        else:
            parent = _id(reader, limits)
            refs.append(parent)
        if info & _HAS_PARENT_SUB:
            reader.string(limits.max_string_bytes)
    needs = []
    for ref_client, ref_clock in refs:
        if ref_client == client:
            # Yjs does not wait for its own client's structs: they must already be behind it.
            if ref_clock >= clock:
                raise Refused(Refusal.BAD_REFERENCE)
        else:
            needs.append((ref_client, ref_clock))
    if ref == _TYPE:
        type_ref = reader.varuint()
        if type_ref not in _ALLOWED_TYPE_REFS:
            raise Refused(Refusal.UNSUPPORTED_TYPE)
        kind = Kind.TEXT if type_ref == _TEXT_TYPE_REF else Kind.TYPE
        return ItemRef(clock, 1, tuple(needs), origin, right, parent, kind)
    length = _content(reader, ref, scan, client, clock)
    kind = _KINDS.get(ref, Kind.CONTENT)
    return ItemRef(clock, length, tuple(needs), origin, right, parent, kind)


def _content(reader: Reader, ref: int, scan: _Scan, client: int, clock: int) -> int:
    """The length in clocks of one item's content (not a shared type's: `_item` reads those)."""
    limits = scan.limits
    budget = scan
    if ref == _DELETED:
        return reader.varuint(limits.max_clock)
    if ref == _STRING:
        text = reader.string(limits.max_string_bytes)
        if text.isascii():
            return len(text)
        # Yjs counts UTF-16 units: a character past U+FFFF is two, and no split may fall between.
        for before, match in enumerate(_ASTRAL.finditer(text)):
            scan.inside.add((client, clock + match.start() + before + 1))
        return len(text.encode("utf-16-le")) // 2
    if ref == _ANY:
        n = reader.count(1, limits.max_values)
        budget.take(n)
        for _ in range(n):
            _any(reader, budget)
        return n
    if ref == _JSON:
        n = reader.count(1, limits.max_values)
        budget.take(n)
        for _ in range(n):
            text = reader.string(limits.max_string_bytes)
            if text != "undefined":
                _json(text, limits.max_depth)
        return n
    if ref == _BINARY:
        reader.raw(limits.max_string_bytes)
        return 1
    if ref == _EMBED:
        _json(reader.string(limits.max_string_bytes), limits.max_depth)
        return 1
    if ref == _FORMAT:
        reader.string(limits.max_string_bytes)
        _json(reader.string(limits.max_string_bytes), limits.max_depth)
        return 1
    if ref == _DOC:
        raise Refused(Refusal.UNSUPPORTED_TYPE)
    raise Refused(Refusal.UNKNOWN_CONTENT)


def _any(reader: Reader, budget: _Scan) -> None:
    """One lib0 Any value. Arrays and objects are followed with an explicit stack holding, per
    open container, how many values it still has and whether it is an object (whose values each
    follow a key)."""
    limits = budget.limits
    left = [1]  # the outermost frame holds the one value asked for
    objects = [False]
    while left:
        if left[-1] == 0:
            left.pop()
            objects.pop()
            continue
        left[-1] -= 1
        if objects[-1]:
            reader.string(limits.max_string_bytes)  # the key
        tag = reader.byte()
        if tag in _ANY_FIXED:
            reader.skip(_ANY_FIXED[tag])
        elif tag == _ANY_INT:
            reader.varint()
        elif tag == _ANY_STRING:
            reader.string(limits.max_string_bytes)
        elif tag == _ANY_BYTES:
            reader.raw(limits.max_string_bytes)
        elif tag in (_ANY_ARRAY, _ANY_OBJECT):
            if len(left) > limits.max_depth:
                raise Refused(Refusal.TOO_DEEP)
            n = reader.count(1 if tag == _ANY_ARRAY else 2, limits.max_values)
            budget.take(n)
            left.append(n)
            objects.append(tag == _ANY_OBJECT)
        else:
            raise Refused(Refusal.UNKNOWN_CONTENT)


def _json(text: str, max_depth: int) -> None:
    if not json_depth_ok(text, max_depth):
        raise Refused(Refusal.TOO_DEEP)
    try:
        json.loads(text, parse_constant=_no_constant)
    except ValueError:
        raise Refused(Refusal.BAD_JSON) from None


def _no_constant(name: str) -> None:
    raise ValueError(name)  # NaN and Infinity are not JSON: JavaScript's JSON.parse refuses them


def _delete_set(reader: Reader, limits: UpdateLimits) -> tuple[tuple[int, int, int], ...]:
    ranges: list[tuple[int, int, int]] = []
    for _ in range(reader.count(2, limits.max_clients)):
        client = reader.varuint()
        n = reader.count(2, limits.max_delete_ranges)
        if len(ranges) + n > limits.max_delete_ranges:
            raise Refused(Refusal.TOO_MANY_DELETES)
        for _ in range(n):
            clock = reader.varuint(limits.max_clock)
            length = reader.varuint(limits.max_clock)
            if length < 1:
                raise Refused(Refusal.EMPTY_STRUCT)
            if clock + length > limits.max_clock:
                raise Refused(Refusal.CLOCK_TOO_LARGE)
            ranges.append((client, clock, clock + length))
    return tuple(ranges)


def check_causality(
    shape: UpdateShape,
    state: dict[int, int],
    inside: Collection[tuple[int, int]] = frozenset(),
    placement: Placement | None = None,
) -> None:
    """Refuse an update that would leave anything pending on a document whose state vector is
    `state`: a client's structs starting past the server's clock for it (a gap), an item needing
    an id that neither exists nor comes in the update, a cycle of such needs, or a deleted range
    past what will exist. Simulates Yjs' integration order with a queue of clients ready to go on
    and, per client, the clients waiting for its clock to pass a point: O(n log n). Also refuse
    one that splits a string inside a character (`inside`: the document's such clocks). With a
    `placement`, each item is placed in its parent as it integrates (refused if its origins lie in
    two parents or it nests shared types too deep); `placement.commit()` once applied."""
    clocks = dict(state)
    final = dict(state)
    position: dict[int, int] = {}
    splits = list(shape.splits)
    for run in shape.runs:
        known = state.get(run.client, 0)
        if run.items and run.start > known:
            raise Refused(Refusal.GAP)
        if run.start < known < run.end:
            splits.append((run.client, known))  # yrs integrates only the part it lacks
        final[run.client] = max(known, run.end)
        # Structs the server has whole are skipped by Yjs: they need nothing.
        index = 0
        while index < len(run.items) and run.items[index].clock + run.items[index].length <= known:
            index += 1
        position[run.client] = index
    runs = {run.client: run for run in shape.runs}
    waiting: dict[int, list[tuple[int, int]]] = {}
    ready = list(runs)
    while ready:
        client = ready.pop()
        run = runs[client]
        index = position[client]
        blocked = False
        while index < len(run.items) and not blocked:
            item = run.items[index]
            for need_client, need_clock in item.needs:
                if need_clock < clocks.get(need_client, 0):
                    continue
                if need_clock >= final.get(need_client, 0):
                    raise Refused(Refusal.MISSING_DEPENDENCY)
                heapq.heappush(waiting.setdefault(need_client, []), (need_clock, client))
                blocked = True
                break
            else:
                index += 1
                end = item.clock + item.length
                if placement is not None:
                    _place(placement, client, item, clocks.get(client, 0), end)
                clocks[client] = max(clocks.get(client, 0), end)
        position[client] = index
        queue = waiting.get(client)
        while queue and queue[0][0] < clocks.get(client, 0):
            ready.append(heapq.heappop(queue)[1])
    if any(position[run.client] < len(run.items) for run in shape.runs):
        raise Refused(Refusal.CYCLE)
    for client, _clock, end in shape.deletes:
        if end > final.get(client, 0):
            raise Refused(Refusal.DELETE_PAST_STATE)
    for point in splits:
        if point in inside or point in shape.inside:
            raise Refused(Refusal.SPLITS_CHARACTER)


def _place(placement: Placement, client: int, item: ItemRef, known: int, end: int) -> None:
    if item.clock < known and item.kind is not Kind.GC:
        # Yjs integrates only the part it lacks, after the part it has: same parent.
        origin = (client, known - 1)
        placement.place(client, known, end, origin, item.right, None, item.kind)
    else:
        placement.place(client, item.clock, end, item.origin, item.right, item.parent, item.kind)
