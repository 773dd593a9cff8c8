"""Reading the lib0 encoding that Yjs updates, state vectors and awareness updates are written in,
with every count and length checked against the bytes that are left, so nothing a peer sends can
make a later decoder allocate, recurse or loop on a number it made up.

Only reading: nothing here builds a value. `Refused` carries a reason (a `Refusal`) and never the
bytes, which may be clinical text.
"""

from __future__ import annotations

from enum import StrEnum

# lib0 writes a varuint as 7 bits a byte, least significant first; 8 bytes hold 56 bits, more
# than any number Yjs writes (JavaScript integers stop at 2^53).
MAX_VARINT_BYTES = 8
MAX_SAFE_INTEGER = 2**53 - 1
_JSON_OPEN = frozenset(b"[{")
_JSON_CLOSE = frozenset(b"]}")


class Refusal(StrEnum):
    TRUNCATED = "truncated"
    VARINT_TOO_LONG = "varint_too_long"
    NUMBER_TOO_LARGE = "number_too_large"
    COUNT_PAST_END = "count_past_end"
    TRAILING_BYTES = "trailing_bytes"
    NOT_UTF8 = "not_utf8"
    STRING_TOO_LONG = "string_too_long"
    TOO_DEEP = "too_deep"
    TOO_MANY_VALUES = "too_many_values"
    TOO_MANY_STRUCTS = "too_many_structs"
    TOO_MANY_CLIENTS = "too_many_clients"
    DUPLICATE_CLIENT = "duplicate_client"
    CLOCK_TOO_LARGE = "clock_too_large"
    EMPTY_STRUCT = "empty_struct"
    UNKNOWN_CONTENT = "unknown_content"
    UNSUPPORTED_TYPE = "unsupported_type"
    UNKNOWN_ROOT = "unknown_root"
    BAD_JSON = "bad_json"
    BAD_REFERENCE = "bad_reference"
    GAP = "gap"
    MISSING_DEPENDENCY = "missing_dependency"
    CYCLE = "cycle"
    TOO_MANY_DELETES = "too_many_deletes"
    DELETE_PAST_STATE = "delete_past_state"
    NOT_AN_OBJECT = "not_an_object"
    SPLITS_CHARACTER = "splits_character"
    TYPES_TOO_DEEP = "types_too_deep"
    ORIGINS_IN_TWO_PARENTS = "origins_in_two_parents"
    PARENT_NOT_A_TYPE = "parent_not_a_type"
    TEXT_OUTSIDE_TEXT = "text_outside_text"


class Refused(ValueError):
    """The bytes are not an acceptable encoding; `reason` says which rule, never what was sent."""

    def __init__(self, reason: Refusal) -> None:
        super().__init__(str(reason))
        self.reason = reason


class Reader:
    """A cursor over bytes. Every read checks the bytes left first."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.end = len(data)

    @property
    def left(self) -> int:
        return self.end - self.pos

    def byte(self) -> int:
        if self.pos >= self.end:
            raise Refused(Refusal.TRUNCATED)
        value = self.data[self.pos]
        self.pos += 1
        return value

    def skip(self, n: int) -> None:
        if n > self.end - self.pos:
            raise Refused(Refusal.TRUNCATED)
        self.pos += n

    def varuint(self, limit: int = MAX_SAFE_INTEGER) -> int:
        data, pos, end = self.data, self.pos, self.end
        if pos < end and data[pos] < 0x80:  # one byte: most lengths and clocks
            self.pos = pos + 1
            if data[pos] > limit:
                raise Refused(Refusal.NUMBER_TOO_LARGE)
            return data[pos]
        value = shift = 0
        for _ in range(MAX_VARINT_BYTES):
            if pos >= end:
                raise Refused(Refusal.TRUNCATED)
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                self.pos = pos
                if value > limit:
                    raise Refused(Refusal.NUMBER_TOO_LARGE)
                return value
            shift += 7
        raise Refused(Refusal.VARINT_TOO_LONG)

    def varint(self) -> None:
        """A signed lib0 varint (6 bits and a sign in the first byte); only its extent matters."""
        data, pos, end = self.data, self.pos, self.end
        for _ in range(MAX_VARINT_BYTES):
            if pos >= end:
                raise Refused(Refusal.TRUNCATED)
            byte = data[pos]
            pos += 1
            if byte < 0x80:
                self.pos = pos
                return
        raise Refused(Refusal.VARINT_TOO_LONG)

    def count(self, min_each: int, limit: int) -> int:
        """A count of things that take at least `min_each` bytes each: it cannot claim more
        than the bytes left can hold, nor more than `limit`."""
        n = self.varuint()
        if n * min_each > self.left:
            raise Refused(Refusal.COUNT_PAST_END)
        if n > limit:
            raise Refused(Refusal.TOO_MANY_VALUES)
        return n

    def raw(self, max_bytes: int) -> bytes:
        """A length-prefixed byte string (lib0 varUint8Array)."""
        n = self.varuint()
        if n > self.left:
            raise Refused(Refusal.COUNT_PAST_END)
        if n > max_bytes:
            raise Refused(Refusal.STRING_TOO_LONG)
        start = self.pos
        self.pos += n
        return self.data[start : self.pos]

    def string(self, max_bytes: int) -> str:
        """A length-prefixed UTF-8 string (lib0 varString), strictly decoded."""
        raw = self.raw(max_bytes)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Refused(Refusal.NOT_UTF8) from None

    def finish(self) -> None:
        if self.pos != self.end:
            raise Refused(Refusal.TRAILING_BYTES)


def json_depth_ok(text: str, max_depth: int) -> bool:
    """Whether JSON text nests arrays and objects at most `max_depth` deep: one pass over the
    bytes, brackets inside strings not counted, before any parser (recursive ones included)
    sees it."""
    if text.count("[") + text.count("{") <= max_depth:
        return True  # cannot nest deeper than it has brackets: the usual, cheap answer
    depth = 0
    in_string = escaped = False
    for ch in text.encode("utf-8"):
        if in_string:
            if escaped:
                escaped = False
            elif ch == 0x5C:  # backslash
                escaped = True
            elif ch == 0x22:  # quote
                in_string = False
        elif ch == 0x22:
            in_string = True
        elif ch in _JSON_OPEN:
            depth += 1
            if depth > max_depth:
                return False
        elif ch in _JSON_CLOSE:
            depth -= 1
    return True


def read_state_vector(data: bytes, *, max_clients: int, max_clock: int) -> dict[int, int]:
    """A Yjs state vector (client -> next clock), bounded."""
    reader = Reader(data)
    state: dict[int, int] = {}
    for _ in range(reader.count(2, max_clients)):
        client = reader.varuint()
        clock = reader.varuint()
        if clock > max_clock:
            raise Refused(Refusal.CLOCK_TOO_LARGE)
        if client in state:
            raise Refused(Refusal.DUPLICATE_CLIENT)
        state[client] = clock
    reader.finish()
    return state
