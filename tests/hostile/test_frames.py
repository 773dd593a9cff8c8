"""Hand-made Engine.IO / Socket.IO frames and reserved event names. The server answers a coded
ack where the frame is an event it can read, or closes only that socket (python-socketio's
documented answer to a frame it cannot decode); either way the others are served and nothing
is stored."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.hostile.conftest import Stage, ack_code
from tests.hostile.rawsocket import NAMESPACE, RawSocket

pytestmark = pytest.mark.asyncio(loop_scope="module")
NS = NAMESPACE
MEDIA_STATE = '["media-state",{"audio":true,"video":true}]'


@pytest_asyncio.fixture(loop_scope="module")
async def raw(stage: Stage) -> AsyncIterator[RawSocket]:
    """A raw socket authenticated as the client (waiting in the lobby, not joined)."""
    socket = RawSocket(stage.base_url)
    await socket.open(stage.token("client"))
    yield socket
    await socket.close()


async def still_fine(stage: Stage, before: dict[str, object]) -> None:
    assert await stage.snapshot() == before
    await stage.socket_still_serves()
    await stage.still_serves()


# Frames whose event the server can read: a coded ack (id 7), and the socket stays open.
ANSWERED = [
    ("ack-id-99-digits", f"42{NS},{'9' * 99}{MEDIA_STATE}", "9" * 99, "not_joined"),
    ("event-name-number", f"42{NS},7[123]", "7", "unknown_event"),
    ("event-name-null", f"42{NS},7[null]", "7", "unknown_event"),
    ("event-name-object", f'42{NS},7[{{"a":1}}]', "7", "unknown_event"),
    ("event-name-huge", f'42{NS},7["{"e" * 100_000}"]', "7", "unknown_event"),
    ("event-name-nul", f'42{NS},7["join\\u0000"]', "7", "unknown_event"),
    ("event-name-lone-surrogate", f'42{NS},7["\\ud800"]', "7", "unknown_event"),
    ("event-name-dunder", f'42{NS},7["__init__"]', "7", "unknown_event"),
    ("event-name-on-connect", f'42{NS},7["on_connect"]', "7", "unknown_event"),
    ("event-name-star", f'42{NS},7["*"]', "7", "unknown_event"),
    ("event-name-message", f'42{NS},7["message"]', "7", "unknown_event"),
    ("event-name-connect-error", f'42{NS},7["connect_error"]', "7", "unknown_event"),
    ("reserved-connect", f'42{NS},7["connect"]', "7", "unknown_event"),
    ("reserved-connect-with-auth", f'42{NS},7["connect",{{"token":"x"}}]', "7", "unknown_event"),
    ("reserved-disconnect", f'42{NS},7["disconnect"]', "7", "unknown_event"),
    (
        "reserved-disconnect-reason",
        f'42{NS},7["disconnect","client namespace disconnect"]',
        "7",
        "unknown_event",
    ),
    (
        "media-state-nan",
        f'42{NS},7["media-state",{{"audio":NaN,"video":true}}]',
        "7",
        "validation_failed",
    ),
    ("three-arguments", f'42{NS},7["media-state",{{}},{{}}]', "7", "validation_failed"),
]


@pytest.mark.parametrize(
    ("frame", "ack_id", "code"), [pytest.param(f, a, c, id=i) for i, f, a, c in ANSWERED]
)
async def test_frames_answered_coded(
    stage: Stage, raw: RawSocket, frame: str, ack_id: str, code: str
) -> None:
    before = await stage.snapshot()
    await raw.send(frame)
    assert ack_code(await raw.ack(ack_id)) == code
    assert ack_code(await raw.call("media-state", {"audio": True, "video": True})) == "not_joined"
    await still_fine(stage, before)


# Frames the server cannot decode or act on: nothing is answered; the socket may be closed.
UNREADABLE = [
    ("ack-id-101-digits", f"42{NS},{'9' * 101}{MEDIA_STATE}"),
    ("not-json", f"42{NS},7[garbage"),
    ("empty-array", f"42{NS},7[]"),
    ("object-not-array", f'42{NS},7{{"a":1}}'),
    ("string-not-array", f'42{NS},7"media-state"'),
    ("nested-1000", f'42{NS},7["media-state",' + "[" * 1000 + "]" * 1000 + "]"),
    ("nested-100000", f'42{NS},7["media-state",' + "[" * 100_000 + "]" * 100_000 + "]"),
    ("nested-unclosed", f"42{NS},7" + "[" * 50_000),
    (
        "attachments-9999999999",
        f'459999999999-{NS},7["notes-update",{{"doc":"plan","update":{{"_placeholder":true,"num":0}}}}]',
    ),
    ("attachments-11-digits", f'4599999999999-{NS},7["notes-update",{{}}]'),
    ("binary-without-attachments", f'450-{NS},7["media-state",{{"audio":true,"video":true}}]'),
    ("packet-type-9", f"49{NS},7[]"),
    ("packet-type-letter", f"4x{NS},7[]"),
    ("engineio-type-9", "9"),
    ("engineio-empty", ""),
    ("connect-again", f"40{NS}," + json.dumps({"token": "x"})),
    ("connect-error-from-client", f'44{NS},{{"message":"x"}}'),
    ("ack-for-nothing", f"43{NS},12345[1]"),
    ("other-namespace", f"42/admin,7{MEDIA_STATE}"),
    ("root-namespace", f"427{MEDIA_STATE}"),
]


@pytest.mark.parametrize("frame", [pytest.param(f, id=i) for i, f in UNREADABLE])
async def test_unreadable_frames(stage: Stage, raw: RawSocket, frame: str) -> None:
    before = await stage.snapshot()
    await raw.send(frame)
    # The socket either still answers a valid event, or was closed: never half-alive for the
    # server (the stage's own sockets prove the process and the room go on).
    try:
        ack = await raw.call("media-state", {"audio": True, "video": True})
    except (ConnectionError, TimeoutError):
        assert raw.closed, "a socket that no longer answers must be closed"
    else:
        assert ack_code(ack) == "not_joined"
    await still_fine(stage, before)


async def test_placeholder_pointing_nowhere(stage: Stage, raw: RawSocket) -> None:
    before = await stage.snapshot()
    await raw.send(
        f'451-{NS},7["notes-update",{{"doc":"plan","update":{{"_placeholder":true,"num":99}}}}]'
    )
    await raw.send_bytes(b"\x00\x01")
    try:
        ack = await raw.call("media-state", {"audio": True, "video": True})
    except (ConnectionError, TimeoutError):
        assert raw.closed
    else:
        assert ack_code(ack) == "not_joined"
    await still_fine(stage, before)


async def test_binary_frame_without_a_packet(stage: Stage, raw: RawSocket) -> None:
    before = await stage.snapshot()
    await raw.send_bytes(b"\xff" * 1000)
    try:
        ack = await raw.call("media-state", {"audio": True, "video": True})
    except (ConnectionError, TimeoutError):
        assert raw.closed
    else:
        assert ack_code(ack) == "not_joined"
    await still_fine(stage, before)
