"""Yjs v1 updates and awareness updates written by hand, byte by byte, as a hostile peer would:
what no Yjs library would produce (clocks near 2^64, nesting 30,000 deep, a root that is not
declared, counts past the end) next to ordinary items, for the hostile tests and the fuzz seeds."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# Content refs and info bits of the v1 encoding.
GC, DELETED, JSON, BINARY, STRING, EMBED, FORMAT, TYPE, ANY, DOC, SKIP = range(11)
HAS_ORIGIN, HAS_RIGHT_ORIGIN, HAS_PARENT_SUB = 0x80, 0x40, 0x20
Y_ARRAY, Y_MAP, Y_TEXT = 0, 1, 2


def varuint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def varstring(text: str) -> bytes:
    raw = text.encode("utf-8")
    return varuint(len(raw)) + raw


def any_nested_array(depth: int, leaf: bytes = b"\x7e") -> bytes:
    """`depth` arrays each holding the next (lib0 Any: 117 = array), a null at the bottom."""
    return (b"\x75\x01") * depth + leaf


def any_string(text: str) -> bytes:
    return b"\x77" + varstring(text)


@dataclass
class Struct:
    """One struct: an item (content ref 1-9), a GC (0) or a skip (10)."""

    ref: int
    content: bytes
    origin: tuple[int, int] | None = None
    right_origin: tuple[int, int] | None = None
    parent_root: str | None = None
    parent_id: tuple[int, int] | None = None
    parent_sub: str | None = None

    def encode(self) -> bytes:
        if self.ref in (GC, SKIP):
            return bytes([self.ref]) + self.content
        info = self.ref
        if self.origin is not None:
            info |= HAS_ORIGIN
        if self.right_origin is not None:
            info |= HAS_RIGHT_ORIGIN
        if self.parent_sub is not None:
            info |= HAS_PARENT_SUB
        out = bytearray([info])
        for id_ in (self.origin, self.right_origin):
            if id_ is not None:
                out += varuint(id_[0]) + varuint(id_[1])
        if self.origin is None and self.right_origin is None:
            if self.parent_root is not None:
                out += varuint(1) + varstring(self.parent_root)
            else:
                assert self.parent_id is not None
                out += varuint(0) + varuint(self.parent_id[0]) + varuint(self.parent_id[1])
            if self.parent_sub is not None:
                out += varstring(self.parent_sub)
        return bytes(out + self.content)


def string_item(text: str, **where: object) -> Struct:
    return Struct(STRING, varstring(text), **where)  # type: ignore[arg-type]


def any_item(values: Sequence[bytes], **where: object) -> Struct:
    return Struct(ANY, varuint(len(values)) + b"".join(values), **where)  # type: ignore[arg-type]


def entry(text: str, **where: object) -> Struct:
    """One list entry as a browser writes it (`yarray.push([text])`: a lib0 Any string, one
    clock). A Yjs string item belongs in a Y.Text only (`Refusal.TEXT_OUTSIDE_TEXT`)."""
    return any_item([any_string(text)], **where)


def type_item(type_ref: int, **where: object) -> Struct:
    return Struct(TYPE, varuint(type_ref), **where)  # type: ignore[arg-type]


def json_item(texts: Sequence[str], **where: object) -> Struct:
    body = varuint(len(texts)) + b"".join(varstring(t) for t in texts)
    return Struct(JSON, body, **where)  # type: ignore[arg-type]


@dataclass
class Update:
    """Runs of structs, each `(client, first clock, structs)`, and a delete set."""

    runs: list[tuple[int, int, list[Struct]]] = field(default_factory=list)
    deletes: list[tuple[int, list[tuple[int, int]]]] = field(default_factory=list)

    def encode(self) -> bytes:
        out = bytearray(varuint(len(self.runs)))
        for client, clock, structs in self.runs:
            out += varuint(len(structs)) + varuint(client) + varuint(clock)
            for struct in structs:
                out += struct.encode()
        out += varuint(len(self.deletes))
        for client, ranges in self.deletes:
            out += varuint(client) + varuint(len(ranges))
            for clock, length in ranges:
                out += varuint(clock) + varuint(length)
        return bytes(out)


def update(client: int, clock: int, *structs: Struct) -> bytes:
    return Update([(client, clock, list(structs))]).encode()


def awareness(entries: Iterable[tuple[int, int, object | str]]) -> bytes:
    """An awareness update: `(client id, clock, state)`; a str state is sent as written."""
    items = list(entries)
    out = bytearray(varuint(len(items)))
    for client, clock, state in items:
        text = state if isinstance(state, str) else json.dumps(state)
        out += varuint(client) + varuint(clock) + varstring(text)
    return bytes(out)


MAX_U64 = 2**64 - 1
