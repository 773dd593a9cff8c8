"""Which shared type each item of a live document sits in, and how deep each shared type nests.

An update encodes an item's parent only when the item has neither origin nor right origin;
otherwise Yjs takes the parent of its origin (else of its right origin). So nothing in one update
says how deep a new Y.Array/Y.Map sits, nor whether an item's two origins lie in the same parent:
a writer could nest types one level per small update until `str()` of the document overflows
pycrdt's stack or a receiving browser's, an item whose origins lie in two parents makes yrs
panic, and one naming as parent an item with content makes it fail. This index answers all
three, kept with the live copy: per client, runs of clocks -> parent (a root name or the id of
the type item), and for each type item its depth (1 under a root) and whether it is a Y.Text.
Splits of an item never change its parent, so runs keyed by clock ranges stay valid; contiguous
items of one parent, depth and kind share a run. A lookup is a binary search.

The last kind lets the index refuse text content (a string, an embed, a format) anywhere but in
a Y.Text: yrs reads a string run inside a Y.Array by looping on it forever (a fuzz finding: one
47-byte update to a client's goal list, then `Array.get`, and the server's event loop hangs).
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from dataclasses import dataclass, field
from enum import IntEnum
from typing import NamedTuple

from .ywire import Refusal, Refused

# A root name, the id of the type item the item sits in, or None: none that holds (Yjs turns an
# item next to a garbage-collected one, or in a deleted type, into a GC).
Parent = str | tuple[int, int] | None
# What `depth` holds besides a shared type's depth (1 and up): an item with content, or one that
# holds nothing (a GC, deleted content, an item collected as it integrates). yrs takes the latter
# as a parent (the new item is collected) and refuses the former with an error.
CONTENT, EMPTY = 0, -1


class Kind(IntEnum):
    """What an item holds, as far as placing it goes."""

    GC = 0
    DELETED = 1
    CONTENT = 2  # values any shared type may hold (lib0 Any, JSON, binary)
    TYPE = 3  # a Y.Array or a Y.Map
    TEXT = 4  # a Y.Text
    TEXT_CONTENT = 5  # a string, an embed or a format: only a Y.Text may hold it


def _clocks() -> array[int]:
    return array("q")


@dataclass
class _ClientRuns:
    """One client's runs, in clock order: compact arrays, one entry per stretch of clocks whose
    items share a parent and a depth (a run of sibling shared types too: each is one clock)."""

    starts: array[int] = field(default_factory=_clocks)
    ends: array[int] = field(default_factory=_clocks)
    parents: list[Parent] = field(default_factory=list)
    depths: array[int] = field(default_factory=_clocks)  # a type's depth, CONTENT or EMPTY
    texts: array[int] = field(default_factory=lambda: array("b"))  # 1: the type is a Y.Text

    @property
    def end(self) -> int:
        return self.ends[-1] if self.ends else 0

    def add(self, start: int, end: int, parent: Parent, depth: int, text: bool) -> None:
        if (
            self.ends
            and self.ends[-1] == start
            and self.depths[-1] == depth
            and self.texts[-1] == text
            and self.parents[-1] == parent
        ):
            self.ends[-1] = end
            return
        self.starts.append(start)
        self.ends.append(end)
        self.parents.append(parent)
        self.depths.append(depth)
        self.texts.append(text)

    def find(self, clock: int) -> Found:
        at = bisect_right(self.starts, clock) - 1
        if at < 0 or clock >= self.ends[at]:
            return NOWHERE
        return Found(self.parents[at], self.depths[at], bool(self.texts[at]))


class Found(NamedTuple):
    """Where the item holding an id sits, and what it is: a shared type's depth (a Y.Text's
    with `text`), else CONTENT or EMPTY."""

    parent: Parent
    depth: int
    text: bool = False


NOWHERE = Found(None, EMPTY)


class ParentIndex:
    """Per client, runs of clocks -> (parent, depth if a shared type). Items arrive in clock
    order per client (the causality check refuses gaps), so every addition is an append."""

    __slots__ = ("_clients",)

    def __init__(self) -> None:
        self._clients: dict[int, _ClientRuns] = {}

    def end(self, client: int) -> int:
        runs = self._clients.get(client)
        return runs.end if runs else 0

    def find(self, client: int, clock: int) -> Found:
        """The parent of the item holding this id and, if it is a shared type, its depth (else
        CONTENT or EMPTY) and whether it is a Y.Text."""
        runs = self._clients.get(client)
        return runs.find(clock) if runs else NOWHERE

    def add(
        self, client: int, start: int, end: int, parent: Parent, depth: int, text: bool = False
    ) -> None:
        self._clients.setdefault(client, _ClientRuns()).add(start, end, parent, depth, text)

    @property
    def runs(self) -> int:
        return sum(len(runs.starts) for runs in self._clients.values())

    def absorb(self, other: ParentIndex) -> None:
        for client, runs in other._clients.items():
            for start, end, parent, depth, text in zip(
                runs.starts, runs.ends, runs.parents, runs.depths, runs.texts, strict=True
            ):
                self.add(client, start, end, parent, depth, bool(text))


class Placement:
    """One update's items placed on top of an index, in Yjs' integration order; `commit` once
    the update is applied. Refuses an item whose origins lie in two parents, a shared type
    nested deeper than `max_type_depth`, and text content outside a Y.Text (`non_text_roots`: the
    document's roots known to be a Y.Array or a Y.Map; a root not among them is not checked)."""

    __slots__ = ("added", "index", "max_type_depth", "non_text_roots")

    def __init__(
        self,
        index: ParentIndex,
        max_type_depth: int,
        non_text_roots: frozenset[str] = frozenset(),
    ) -> None:
        self.index = index
        self.max_type_depth = max_type_depth
        self.non_text_roots = non_text_roots
        self.added = ParentIndex()

    def find(self, client: int, clock: int) -> Found:
        if clock < self.index.end(client):
            return self.index.find(client, clock)
        return self.added.find(client, clock)

    def place(
        self,
        client: int,
        start: int,
        end: int,
        origin: tuple[int, int] | None,
        right: tuple[int, int] | None,
        explicit: Parent,
        kind: Kind,
    ) -> None:
        """Record the item holding clocks [start, end) of `client`."""
        parent: Parent
        if kind is Kind.GC:
            parent = None
        elif origin is not None or right is not None:
            left_parent = self.find(*origin).parent if origin is not None else None
            right_parent = self.find(*right).parent if right is not None else None
            if (origin is not None and left_parent is None) or (
                right is not None and right_parent is None
            ):
                parent = None  # next to a garbage-collected item: Yjs collects this one too
            elif origin is not None and right is not None and left_parent != right_parent:
                raise Refused(Refusal.ORIGINS_IN_TWO_PARENTS)
            else:
                parent = left_parent if origin is not None else right_parent
        else:
            parent = explicit
        parent_depth = 0
        in_text = False
        if isinstance(parent, tuple):
            _, parent_depth, in_text = self.find(*parent)
            if parent_depth == CONTENT:
                raise Refused(Refusal.PARENT_NOT_A_TYPE)  # yrs fails on it, half-applied
            if parent_depth == EMPTY:
                parent = None  # a deleted type: Yjs collects what goes in it
        elif isinstance(parent, str):
            in_text = parent not in self.non_text_roots
        if kind is Kind.TEXT_CONTENT and parent is not None and not in_text:
            raise Refused(Refusal.TEXT_OUTSIDE_TEXT)
        depth = EMPTY if parent is None or kind is Kind.DELETED else CONTENT
        if kind in (Kind.TYPE, Kind.TEXT) and parent is not None:
            depth = parent_depth + 1
            if depth > self.max_type_depth:
                raise Refused(Refusal.TYPES_TOO_DEEP)
        self.added.add(client, start, end, parent, depth, kind is Kind.TEXT)

    def commit(self) -> None:
        self.index.absorb(self.added)
        self.added = ParentIndex()
