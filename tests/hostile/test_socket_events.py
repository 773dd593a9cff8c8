"""Every client event, hostile: wrong types, missing and extra fields, before `join`, from the
wrong role, from the lobby, and the reserved names `connect`/`disconnect` on a joined socket.
Each is refused with a coded acknowledgement; the room, the others and the tables are as they
were."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.hostile.conftest import Stage, ack_code
from tests.roomclient import RoomClient

pytestmark = pytest.mark.asyncio(loop_scope="module")

VALID: dict[str, Any] = {
    "join": {},
    "leave": {},
    "signal": {"type": "answer", "sdp": "v=0\r\n", "pc": 0},
    "candidate": {"candidate": {"candidate": "", "sdpMid": "0"}, "pc": 0},
    "admit": {"participant_id": "p_nobody"},
    "deny": {"participant_id": "p_nobody"},
    "remove": {"participant_id": "p_nobody"},
    "media-state": {"audio": True, "video": True},
    "media-restart": {"pc": 0},
    "share-start": {},
    "share-stop": {},
    "share-permission": {"client_may_share": True},
    "end": {},
    "notes-sync": {"doc": "plan", "state_vector": b"\x00"},
    "notes-update": {"doc": "plan", "update": b"\x00\x00"},
    "notes-awareness": {"doc": "plan", "update": b"\x00"},
}
EVENTS = list(VALID)


def deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"a": value}
    return value


SHAPES: list[tuple[str, Any]] = [
    ("string", "a string"),
    ("number", 42),
    ("list", [1, 2]),
    ("bool", True),
    ("bytes", b"\x00\x01"),
    ("extra-field", {"__proto__": 1}),
    ("nested-12", deep(12)),
]


@pytest.mark.parametrize("shape", [pytest.param(v, id=i) for i, v in SHAPES])
@pytest.mark.parametrize("event", EVENTS)
async def test_payload_shapes(stage: Stage, event: str, shape: Any) -> None:
    before = await stage.snapshot()
    therapist = stage.sockets["therapist"]
    payload = {**VALID[event], **shape} if isinstance(shape, dict) else shape
    ack = await therapist.call(event, payload, raw=True)
    assert ack_code(ack) == "validation_failed", ack
    assert await stage.snapshot() == before
    await stage.socket_still_serves()


FIELDS: list[tuple[str, str, dict[str, Any], str]] = [
    ("signal-type-number", "signal", {"type": 1}, "/type"),
    ("signal-type-rollback", "signal", {"type": "rollback"}, "/type"),
    ("signal-sdp-number", "signal", {"sdp": 7}, "/sdp"),
    ("signal-sdp-list", "signal", {"sdp": ["v=0"]}, "/sdp"),
    ("signal-sdp-empty", "signal", {"sdp": ""}, "/sdp"),
    ("signal-sdp-bytes", "signal", {"sdp": b"v=0"}, "/sdp"),
    ("signal-pc-string", "signal", {"pc": "0"}, "/pc"),
    ("signal-pc-negative", "signal", {"pc": -1}, "/pc"),
    ("signal-pc-float", "signal", {"pc": 0.5}, "/pc"),
    ("signal-pc-bool", "signal", {"pc": False}, "/pc"),
    ("signal-pc-null", "signal", {"pc": None}, "/pc"),
    ("signal-missing-pc", "signal", {"pc": ...}, "/pc"),
    ("signal-missing-sdp", "signal", {"sdp": ...}, "/sdp"),
    ("signal-missing-type", "signal", {"type": ...}, "/type"),
    ("signal-extra", "signal", {"tracks": []}, "/tracks"),
    (
        "candidate-string",
        "candidate",
        {"candidate": "candidate:1 1 udp 1 1.2.3.4 9 typ host"},
        "/candidate",
    ),
    ("candidate-text-number", "candidate", {"candidate": {"candidate": 5}}, "/candidate/candidate"),
    (
        "candidate-text-3000",
        "candidate",
        {"candidate": {"candidate": "c" * 3000}},
        "/candidate/candidate",
    ),
    (
        "candidate-mid-number",
        "candidate",
        {"candidate": {"candidate": "", "sdpMid": 0}},
        "/candidate/sdpMid",
    ),
    (
        "candidate-index-string",
        "candidate",
        {"candidate": {"candidate": "", "sdpMLineIndex": "0"}},
        "/candidate/sdpMLineIndex",
    ),
    (
        "candidate-index-256",
        "candidate",
        {"candidate": {"candidate": "", "sdpMLineIndex": 256}},
        "/candidate/sdpMLineIndex",
    ),
    (
        "candidate-index-negative",
        "candidate",
        {"candidate": {"candidate": "", "sdpMLineIndex": -1}},
        "/candidate/sdpMLineIndex",
    ),
    ("candidate-missing-text", "candidate", {"candidate": {"sdpMid": "0"}}, "/candidate/candidate"),
    ("candidate-pc-string", "candidate", {"pc": "0"}, "/pc"),
    ("candidate-missing-pc", "candidate", {"pc": ...}, "/pc"),
    ("admit-id-number", "admit", {"participant_id": 1}, "/participant_id"),
    ("admit-id-empty", "admit", {"participant_id": ""}, "/participant_id"),
    ("admit-id-65", "admit", {"participant_id": "p" * 65}, "/participant_id"),
    ("admit-id-null", "admit", {"participant_id": None}, "/participant_id"),
    ("admit-id-list", "admit", {"participant_id": ["p_1"]}, "/participant_id"),
    ("admit-missing-id", "admit", {"participant_id": ...}, "/participant_id"),
    ("deny-id-number", "deny", {"participant_id": 1}, "/participant_id"),
    ("deny-missing-id", "deny", {"participant_id": ...}, "/participant_id"),
    ("remove-id-object", "remove", {"participant_id": {"id": "p"}}, "/participant_id"),
    ("remove-missing-id", "remove", {"participant_id": ...}, "/participant_id"),
    ("media-audio-string", "media-state", {"audio": "true"}, "/audio"),
    ("media-audio-one", "media-state", {"audio": 1}, "/audio"),
    ("media-audio-zero", "media-state", {"audio": 0}, "/audio"),
    ("media-audio-minus-zero", "media-state", {"audio": -0.0}, "/audio"),
    ("media-audio-null", "media-state", {"audio": None}, "/audio"),
    ("media-missing-video", "media-state", {"video": ...}, "/video"),
    ("restart-pc-string", "media-restart", {"pc": "1"}, "/pc"),
    ("restart-pc-negative", "media-restart", {"pc": -5}, "/pc"),
    ("restart-pc-float", "media-restart", {"pc": 1.5}, "/pc"),
    ("restart-missing-pc", "media-restart", {"pc": ...}, "/pc"),
    ("share-start-extra", "share-start", {"participant_id": "p_x"}, "/participant_id"),
    ("share-stop-id-number", "share-stop", {"participant_id": 1}, "/participant_id"),
    ("share-stop-id-empty", "share-stop", {"participant_id": ""}, "/participant_id"),
    ("share-stop-id-65", "share-stop", {"participant_id": "p" * 65}, "/participant_id"),
    ("share-stop-id-list", "share-stop", {"participant_id": ["p_1"]}, "/participant_id"),
    ("share-stop-id-object", "share-stop", {"participant_id": {"id": "p"}}, "/participant_id"),
    ("share-may-string", "share-permission", {"client_may_share": "true"}, "/client_may_share"),
    ("share-may-one", "share-permission", {"client_may_share": 1}, "/client_may_share"),
    ("share-may-null", "share-permission", {"client_may_share": None}, "/client_may_share"),
    ("share-may-missing", "share-permission", {"client_may_share": ...}, "/client_may_share"),
    ("sync-doc-number", "notes-sync", {"doc": 1}, "/doc"),
    ("sync-doc-33", "notes-sync", {"doc": "d" * 33}, "/doc"),
    ("sync-vector-string", "notes-sync", {"state_vector": "AA=="}, "/state_vector"),
    ("sync-vector-list", "notes-sync", {"state_vector": [0]}, "/state_vector"),
    ("sync-missing-vector", "notes-sync", {"state_vector": ...}, "/state_vector"),
    ("update-string", "notes-update", {"update": "AAA="}, "/update"),
    ("update-number", "notes-update", {"update": 0}, "/update"),
    ("update-missing", "notes-update", {"update": ...}, "/update"),
    ("update-doc-null", "notes-update", {"doc": None}, "/doc"),
    ("awareness-17k", "notes-awareness", {"update": b"\x00" * (17 * 1024)}, "/update"),
    ("awareness-string", "notes-awareness", {"update": "x"}, "/update"),
]


@pytest.mark.parametrize(
    ("event", "change", "location"), [pytest.param(e, c, loc, id=i) for i, e, c, loc in FIELDS]
)
async def test_wrong_fields(
    stage: Stage, event: str, change: dict[str, Any], location: str
) -> None:
    payload = {**VALID[event], **change}
    payload = {k: v for k, v in payload.items() if v is not ...}
    before = await stage.snapshot()
    ack = await stage.sockets["therapist"].call(event, payload)
    assert ack_code(ack) == "validation_failed", ack
    assert location in [e["location"] for e in ack["error"]["errors"]], ack
    assert await stage.snapshot() == before
    await stage.socket_still_serves()


@pytest_asyncio.fixture(loop_scope="module")
async def unjoined(stage: Stage) -> AsyncIterator[RoomClient]:
    """A second socket of the psychiatrist, connected but never joined."""
    socket = stage.room_client("psychiatrist")
    await socket.connect()
    yield socket
    await socket.close()


@pytest.mark.parametrize("event", [e for e in EVENTS if e != "join"])
async def test_before_join(stage: Stage, unjoined: RoomClient, event: str) -> None:
    before = await stage.snapshot()
    ack = await unjoined.call(event, VALID[event])
    assert ack_code(ack) == "not_joined", ack
    assert await stage.snapshot() == before
    await stage.socket_still_serves()


LOBBY: list[tuple[str, dict[str, Any], str]] = [
    ("signal", VALID["signal"], "not_admitted"),
    ("candidate", VALID["candidate"], "not_admitted"),
    ("media-restart", VALID["media-restart"], "not_admitted"),
    ("share-start", VALID["share-start"], "not_admitted"),
    ("share-stop", VALID["share-stop"], "not_admitted"),
    ("share-stop", {"participant_id": "THERAPIST"}, "not_admitted"),
    ("share-permission", VALID["share-permission"], "not_admitted"),
    ("notes-sync", VALID["notes-sync"], "not_admitted"),
    ("notes-update", VALID["notes-update"], "not_admitted"),
    ("notes-awareness", VALID["notes-awareness"], "not_admitted"),
    ("notes-sync", {"doc": "clinicians", "state_vector": b"\x00"}, "not_admitted"),
    ("admit", {"participant_id": "SELF"}, "forbidden_role"),
    ("deny", {"participant_id": "THERAPIST"}, "forbidden_role"),
    ("remove", {"participant_id": "THERAPIST"}, "forbidden_role"),
    ("end", {}, "forbidden_role"),
]


@pytest.mark.parametrize(
    ("event", "payload", "code"),
    [pytest.param(e, p, c, id=f"{e}-{i}") for i, (e, p, c) in enumerate(LOBBY)],
)
async def test_the_client_in_the_lobby(
    stage: Stage, event: str, payload: dict[str, Any], code: str
) -> None:
    """The client, not admitted, tries what only admitted people or hosts may do."""
    names = {"SELF": stage.pid("client"), "THERAPIST": stage.pid("therapist")}
    if "participant_id" in payload:
        payload = {"participant_id": names[payload["participant_id"]]}
    before = await stage.snapshot()
    ack = await stage.sockets["client"].call(event, payload)
    assert ack_code(ack) == code, ack
    assert await stage.snapshot() == before
    await stage.socket_still_serves()
    assert not stage.sockets["client"].disconnected


SEMANTIC: list[tuple[str, str, dict[str, Any], str]] = [
    ("admit-unknown", "admit", {"participant_id": "p_nobody"}, "participant_not_found"),
    ("deny-unknown", "deny", {"participant_id": "p_nobody"}, "participant_not_found"),
    ("remove-unknown", "remove", {"participant_id": "p_nobody"}, "participant_not_found"),
    ("restart-unknown-pc", "media-restart", {"pc": 999}, "no_pending_offer"),
    ("restart-huge-pc", "media-restart", {"pc": 2**62}, "no_pending_offer"),
    ("candidate-unknown-pc", "candidate", {"candidate": None, "pc": 999}, "no_pending_offer"),
    ("signal-offer", "signal", {"type": "offer", "sdp": "v=0\r\n", "pc": 0}, "sdp_invalid"),
    (
        "sync-unknown-doc",
        "notes-sync",
        {"doc": "secrets", "state_vector": b"\x00"},
        "notes_document_unknown",
    ),
    (
        "update-unknown-doc",
        "notes-update",
        {"doc": "secrets", "update": b"\x00\x00"},
        "notes_document_unknown",
    ),
    (
        "awareness-unknown-doc",
        "notes-awareness",
        {"doc": "secrets", "update": b"\x00"},
        "notes_document_unknown",
    ),
    (
        "update-garbage",
        "notes-update",
        {"doc": "plan", "update": b"\xff" * 64},
        "notes_update_invalid",
    ),
]


@pytest.mark.parametrize(
    ("event", "payload", "code"), [pytest.param(e, p, c, id=i) for i, e, p, c in SEMANTIC]
)
async def test_well_formed_but_wrong(
    stage: Stage, event: str, payload: dict[str, Any], code: str
) -> None:
    before = await stage.snapshot()
    ack = await stage.sockets["therapist"].call(event, payload)
    assert ack_code(ack) == code, ack
    assert await stage.snapshot() == before
    await stage.socket_still_serves()


UNKNOWN = [
    "no-such-event",
    "join-room",
    "JOIN",
    "",
    "e" * 10_000,
    "__class__",
    "message",
    "on_join",
]


@pytest.mark.parametrize("event", [pytest.param(e, id=e[:20] or "empty") for e in UNKNOWN])
async def test_unknown_events(stage: Stage, event: str) -> None:
    before = await stage.snapshot()
    ack = await stage.sockets["therapist"].call(event, {})
    assert ack_code(ack) == "unknown_event", ack
    assert await stage.snapshot() == before
    await stage.socket_still_serves()


RESERVED: list[tuple[str, tuple[Any, ...]]] = [
    ("disconnect", ()),
    ("disconnect", ("client namespace disconnect",)),
    ("disconnect", ({"reason": "x"},)),
    ("connect", ()),
    ("connect", ({"token": "x"},)),
]


@pytest.mark.parametrize(
    ("event", "args"),
    [pytest.param(e, a, id=f"{e}-{len(a)}-{i}") for i, (e, a) in enumerate(RESERVED)],
)
async def test_reserved_names_on_a_joined_socket(
    stage: Stage, event: str, args: tuple[Any, ...]
) -> None:
    """A joined therapist sends `disconnect`/`connect` as ordinary events: refused, and nobody
    sees them leave (their seat, media and socket are untouched)."""
    therapist, psychiatrist = stage.sockets["therapist"], stage.sockets["psychiatrist"]
    before = await stage.snapshot()
    mark = len(psychiatrist.events)
    ack = await therapist.sio.call(
        event, args[0] if args else None, namespace="/consult", timeout=10
    )
    assert ack_code(ack) == "unknown_event", ack
    await stage.socket_still_serves()  # a later event from the therapist arrives first ...
    seen = psychiatrist.events[mark:]
    assert not [d for n, d in seen if n == "peer-left"], seen  # ... and nobody left
    assert not [
        d for n, d in seen if n == "peer-updated" and d["participant"]["connected"] is False
    ], seen
    assert not therapist.disconnected
    assert await stage.snapshot() == before
