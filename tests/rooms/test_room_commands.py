"""`RoomCommand`, the message a REST call's worker sends the worker holding a consult's room:
what it encodes decodes to itself, and nothing else on the channel decodes (bounded before it
is parsed, every field checked, no clinical text can ride along)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.cluster.commands import MAX_MESSAGE_BYTES
from server.ids import ConsultId
from server.rooms.commands import MalformedCommand, RoomCommand, RoomCommandKind

CONSULT = ConsultId("c_2xYk9Qm4TfR7")


@pytest.mark.parametrize("kind", list(RoomCommandKind), ids=str)
def test_a_command_decodes_to_itself(kind: RoomCommandKind) -> None:
    command = RoomCommand(kind, CONSULT)
    raw = command.encode()
    assert RoomCommand.decode(raw) == command
    assert json.loads(raw) == {"kind": str(kind), "consult_id": CONSULT}  # an id and a kind


def _json(body: object) -> bytes:
    return json.dumps(body).encode()


HOSTILE = {
    "empty": b"",
    "not-json": b"care_changed c_1",
    "invalid-utf8": b"\xff\xfe\x00",
    "json-null": b"null",
    "json-list": _json(["care_changed", CONSULT]),
    "json-string": _json("care_changed"),
    "oversized": _json({"kind": "care_changed", "consult_id": CONSULT, "x": "a" * 2000}),
    "just-over-the-limit": b" " * (MAX_MESSAGE_BYTES - 40)
    + _json({"kind": "care_changed", "consult_id": CONSULT}),
    "unknown-kind": _json({"kind": "drop_tables", "consult_id": CONSULT}),
    "kind-not-a-string": _json({"kind": 1, "consult_id": CONSULT}),
    "kind-a-list": _json({"kind": ["care_changed"], "consult_id": CONSULT}),
    "no-kind": _json({"consult_id": CONSULT}),
    "no-consult": _json({"kind": "care_changed"}),
    "consult-a-number": _json({"kind": "care_changed", "consult_id": 12}),
    "consult-an-object": _json({"kind": "care_changed", "consult_id": {"$ne": ""}}),
    "consult-empty": _json({"kind": "care_changed", "consult_id": ""}),
    "consult-too-long": _json({"kind": "care_changed", "consult_id": "c" * 65}),
    "consult-with-a-key-separator": _json({"kind": "care_changed", "consult_id": "c_1:*"}),
    "consult-with-a-newline": _json({"kind": "care_changed", "consult_id": "c_1\nfake log"}),
    # Clinical text has no field to ride in.
    "extra-field": _json({"kind": "safety_flag", "consult_id": CONSULT, "answer": 3}),
    "brief-text": _json({"kind": "brief_updated", "consult_id": CONSULT, "brief": "history"}),
    "end-naming-who": _json({"kind": "ended", "consult_id": CONSULT, "actor_type": "platform"}),
    "kind-with-a-case": _json({"kind": "ENDED", "consult_id": CONSULT}),
    "deep-nesting": b"[" * 500 + b"]" * 500,
}


@pytest.mark.parametrize("raw", HOSTILE.values(), ids=HOSTILE.keys())
def test_anything_else_is_refused_with_a_value_error(raw: bytes) -> None:
    with pytest.raises(MalformedCommand):
        RoomCommand.decode(raw)


@pytest.mark.parametrize("raw", [None, "care_changed", 3, bytearray(b"{}")], ids=repr)
def test_only_bytes_are_decoded(raw: object) -> None:
    with pytest.raises(MalformedCommand):
        RoomCommand.decode(raw)  # type: ignore[arg-type]


def test_a_command_is_checked_when_made_too() -> None:
    with pytest.raises(ValueError, match="kind"):
        RoomCommand("care_changed", CONSULT)  # type: ignore[arg-type]  # not the enum
    with pytest.raises(ValueError, match="consult_id"):
        RoomCommand(RoomCommandKind.SAFETY_FLAG, ConsultId("c 1"))
    with pytest.raises(ValueError, match="consult_id"):
        RoomCommand(RoomCommandKind.ENDED, None)  # type: ignore[arg-type]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=80),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)
_NEAR = st.dictionaries(
    st.sampled_from(["kind", "consult_id", "actor_type", "brief", ""]),
    _JSON | st.sampled_from([*map(str, RoomCommandKind), CONSULT]),
)


# Deterministic, and nothing timed (a loaded machine must not fail it).
@settings(
    max_examples=400,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(raw=st.binary(max_size=2 * MAX_MESSAGE_BYTES) | _NEAR.map(_json))
def test_whatever_arrives_is_refused_or_a_command_that_encodes_the_same(raw: bytes) -> None:
    try:
        command = RoomCommand.decode(raw)
    except MalformedCommand:
        return
    assert isinstance(command.kind, RoomCommandKind)
    assert RoomCommand.decode(command.encode()) == command
    assert json.loads(raw) == json.loads(command.encode())  # nothing else rode along
