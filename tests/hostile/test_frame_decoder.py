"""The packet class alone (`server/signaling/frames.py`), on the frames `test_frames.py` sends
to a live socket."""

from __future__ import annotations

import msgpack
import pytest

from server.signaling import frames
from tests.hostile.test_frames import IGNORED, NS, UNREADABLE_BYTES, event


@pytest.mark.parametrize(
    "frame", [pytest.param(f, id=i) for i, f in UNREADABLE_BYTES if i not in IGNORED]
)
def test_the_decoder_refuses_with_a_value_error(frame: bytes) -> None:
    """A ValueError (what python-socketio drops and logs), never another exception."""
    with pytest.raises(ValueError, match=r"."):
        frames.BoundedMsgPackPacket(encoded_packet=frame)


def test_the_decoder_reads_what_the_client_sends() -> None:
    update = bytes(range(256)) * 4
    frame = event(["notes-update", {"doc": "plan", "update": update}], 41)
    packet = frames.BoundedMsgPackPacket(encoded_packet=frame)
    assert (packet.packet_type, packet.namespace, packet.id) == (2, NS, 41)
    assert packet.data == ["notes-update", {"doc": "plan", "update": update}]


def test_a_lone_surrogate_never_reaches_a_payload() -> None:
    """msgpack strings are UTF-8: a lone surrogate can only come as its invalid encoding
    (ED A0 80), and the frame carrying it is refused whole (the live socket's case is
    `invalid-utf8` in test_frames.py)."""
    sdp = b"v=0\r\ns=\xed\xa0\x80\r\n"
    payload = (
        b"\x83"
        + msgpack.packb("type")
        + msgpack.packb("answer")
        + msgpack.packb("sdp")
        + bytes([0xA0 | len(sdp)])
        + sdp
        + msgpack.packb("pc")
        + msgpack.packb(0)
    )
    head = msgpack.packb({"type": 2, "nsp": NS, "id": 7, "data": None})[:-1]
    frame = head + b"\x92" + msgpack.packb("signal") + payload
    with pytest.raises(ValueError, match="not a msgpack packet"):
        frames.BoundedMsgPackPacket(encoded_packet=frame)
    good = frame.replace(b"\xed\xa0\x80", b"abc")
    assert frames.BoundedMsgPackPacket(encoded_packet=good).data[1]["sdp"] == "v=0\r\ns=abc\r\n"


def test_a_packet_without_data_goes_out_without_a_data_key() -> None:
    """The browser's parser (socket.io-msgpack-parser) refuses a disconnect packet whose data
    is nil and drops the connection: `web/test/signaling.test.mjs` shows both sides."""
    disconnect = frames.BoundedMsgPackPacket(packet_type=1, namespace=NS)
    assert msgpack.unpackb(disconnect.encode()) == {"type": 1, "nsp": NS}
    event = frames.BoundedMsgPackPacket(packet_type=2, namespace=NS, data=["error", {"code": "x"}])
    assert msgpack.unpackb(event.encode()) == {
        "type": 2,
        "nsp": NS,
        "data": ["error", {"code": "x"}],
    }
