"""JSON from outside, bounded before and while it is parsed.

Python's JSON decoder recurses once per nesting level, so a body of `[[[[...` deep enough raises
`RecursionError` (or worse) inside the parser: the nesting is measured first, by a flat scan that
never recurses. While parsing, `NaN`/`Infinity`, numbers past 64 bits, duplicate object keys and
lone surrogates (`"\\ud800"`, which no database or encoder downstream accepts) are refused.
"""

from __future__ import annotations

import json
import math
from typing import Any

# Deep enough for every document Triad accepts (the deepest REST body nests 4 levels).
MAX_DEPTH = 32
INT_MIN = -(2**63)
INT_MAX = 2**63 - 1


class JsonRefused(ValueError):
    """The text is not JSON Triad accepts; the message says why (no content in it)."""


def nesting_depth(text: str | bytes) -> int:
    """The deepest `[`/`{` nesting outside strings, found without recursion or parsing."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def nests_deeper_than(text: str | bytes, limit: int) -> bool:
    """Whether `text` nests deeper than `limit`; without a scan when it has too few brackets to
    (the common case: every Socket.IO text frame passes through here)."""
    if isinstance(text, str):
        openers = text.count("[") + text.count("{")
    else:
        openers = text.count(b"[") + text.count(b"{")
    return openers > limit and nesting_depth(text) > limit


def _constant(name: str) -> Any:
    raise JsonRefused(f"{name} is not a JSON number")


def _int(text: str) -> int:
    if len(text.lstrip("-")) > 19:  # never hand Python a 4,000-digit int to convert
        raise JsonRefused("an integer is out of the 64-bit range")
    value = int(text)
    if not INT_MIN <= value <= INT_MAX:
        raise JsonRefused("an integer is out of the 64-bit range")
    return value


def _float(text: str) -> float:
    if len(text) > 64:
        raise JsonRefused("a number is too long")
    value = float(text)
    if not math.isfinite(value):
        raise JsonRefused("a number is out of range")
    return value


def _check_string(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise JsonRefused("a string holds a lone surrogate") from None
    return value


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise JsonRefused("an object has a duplicate key")
        result[_check_string(key)] = value
    return result


def loads(text: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON from outside; raises `JsonRefused` for anything past the bounds above."""
    if nests_deeper_than(text, max_depth):
        raise JsonRefused(f"the JSON nests deeper than {max_depth} levels")
    if isinstance(text, bytes):
        try:  # UTF-8 only (RFC 8259): json.loads would guess UTF-16 and skip a BOM
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise JsonRefused("the text is not UTF-8") from None
    try:
        data = json.loads(
            text,
            parse_constant=_constant,
            parse_int=_int,
            parse_float=_float,
            object_pairs_hook=_object,
        )
    except JsonRefused:
        raise
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise JsonRefused("the text is not valid JSON") from None
    _check_strings(data)
    return data


def _check_strings(data: Any) -> None:
    """Every string, walked with a stack (the depth is already bounded, but never recurse)."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            _check_string(item)
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
