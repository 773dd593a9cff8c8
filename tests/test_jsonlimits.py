"""The bounded JSON reader: nesting measured without recursion (brackets inside strings do not
count), and the values no consumer downstream accepts refused while parsing."""

from __future__ import annotations

import pytest

from server import jsonlimits


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("1", 0),
        ("[]", 1),
        ('{"a": [1, {"b": []}]}', 4),
        ('["[[[[[[", "{{{{"]', 1),
        ('["\\"[[[[", 1]', 1),
        ('["\\\\", [[]]]', 3),
        ("[" * 100_000, 100_000),
    ],
)
def test_nesting_depth(text: str, depth: int) -> None:
    assert jsonlimits.nesting_depth(text) == depth
    assert jsonlimits.nesting_depth(text.encode()) == depth
    assert jsonlimits.nests_deeper_than(text, depth) is False
    assert jsonlimits.nests_deeper_than(text, depth - 1) is True


@pytest.mark.parametrize(
    "text",
    [
        "[" * 33 + "]" * 33,
        "NaN",
        "[Infinity]",
        "1e400",
        str(2**63),
        str(-(2**63) - 1),
        "9" * 5000,
        '{"a": 1, "a": 2}',
        '"\\ud800"',
        '{"\\udc00": 1}',
        '[["\\udbff"]]',
        b'\xef\xbb\xbf{"a": 1}',
        b"\xff",
        "[1,",
    ],
)
def test_refused(text: str | bytes) -> None:
    with pytest.raises(jsonlimits.JsonRefused):
        jsonlimits.loads(text)


def test_accepted_at_the_bounds() -> None:
    text = "[" * 32 + str(2**63 - 1) + "]" * 32
    assert jsonlimits.loads(text) is not None
    assert jsonlimits.loads(str(-(2**63))) == -(2**63)
    assert jsonlimits.loads('{"name": "Zo\\u00eb \\ud83d\\ude00"}') == {"name": "Zoë 😀"}
