"""Socket.IO packets from outside, bounded before python-socketio acts on them.

The consult namespace speaks Socket.IO's msgpack serialization (the browser client uses
`socket.io-msgpack-parser`): a packet is one binary WebSocket frame holding a map
`{type, nsp, data?, id?}`, and a notes update travels inside it as a msgpack `bin`. The
default JSON serialization sends every binary event as two frames (a text packet with a
placeholder, then the bytes) and has python-socketio hold the first until the second comes.

msgpack's decoder is C: everything it is handed is bounded first (the frame's size by
Engine.IO's `max_http_buffer_size`; no string or bytes it builds is longer than the frame), it
is told the largest array and map it may build, refuses extension types, and stops at its own
fixed nesting limit. What it
returns is then checked before python-socketio reads it: a map of exactly those keys, a known
packet type, a string namespace, an ack id that is a non-negative 53-bit integer, string map
keys without duplicates, at most `MAX_DEPTH` levels. A frame that fails is refused with
`ValueError`: python-socketio drops it and logs it; the socket goes on. Text frames, what the
JSON serialization would send, are refused the same way.
"""

from __future__ import annotations

from typing import Any, Final

import msgpack
from socketio import msgpack_packet, packet

# Strings and bytes are bounded by the frame (msgpack never builds one longer than its input,
# and Engine.IO bounds the input): their own limits (an SDP, a notes update) are checked with a
# coded answer by the event's payload model and the service. Arrays and maps are bounded here.
MAX_ITEMS: Final = 1024
# Payloads are flat objects; the deepest valid client frame nests 3 levels.
MAX_DEPTH: Final = 16
MAX_ACK_ID: Final = 2**53 - 1
# `options` is socket.io-client's own per-packet note (`{compress}`), which its msgpack parser
# sends along; it is read by nobody here.
_KEYS: Final = frozenset({"type", "nsp", "data", "id", "options"})
_TYPES: Final = frozenset(
    {packet.CONNECT, packet.DISCONNECT, packet.EVENT, packet.ACK, packet.CONNECT_ERROR}
)


class _Refused(ValueError):
    """Raised by the decoder's hooks: the message says why."""


def _no_extensions(code: int, data: bytes) -> Any:
    raise _Refused("a packet carries a msgpack extension type")


def _string_keyed(pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    mapping: dict[str, Any] = {}
    for key, value in pairs:
        if not isinstance(key, str):
            raise _Refused("a map key is not a string")
        if key in mapping:
            raise _Refused("a map repeats a key")
        mapping[key] = value
    return mapping


def _check_depth(data: Any) -> None:
    """At most MAX_DEPTH levels of arrays and maps (iteratively: no recursion to exhaust)."""
    pending: list[tuple[Any, int]] = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, list | dict):
            if depth > MAX_DEPTH:
                raise ValueError(f"a packet nests deeper than {MAX_DEPTH} levels")
            items = value.values() if isinstance(value, dict) else value
            pending.extend((item, depth + 1) for item in items)


def unpack(encoded: Any) -> dict[str, Any]:
    """The packet map of one frame from outside; ValueError for anything else."""
    if not isinstance(encoded, bytes):
        raise ValueError("a packet is one binary frame")
    try:
        decoded = msgpack.unpackb(
            encoded,
            raw=False,
            use_list=True,
            strict_map_key=True,
            object_pairs_hook=_string_keyed,
            ext_hook=_no_extensions,
            max_array_len=MAX_ITEMS,
            max_map_len=MAX_ITEMS,
            max_ext_len=0,
        )
    except _Refused:
        raise
    except Exception as exc:  # msgpack's own: truncated, extra bytes, too deep, bad UTF-8, ...
        raise ValueError(f"not a msgpack packet ({type(exc).__name__})") from None
    if not isinstance(decoded, dict) or not decoded.keys() <= _KEYS:
        raise ValueError("a packet is a map of type, nsp, data, id and options")
    kind, nsp, ack_id = decoded.get("type"), decoded.get("nsp"), decoded.get("id")
    if type(kind) is not int or kind not in _TYPES:
        raise ValueError("a packet's type is not one a client sends")
    if not isinstance(nsp, str) or not nsp.startswith("/"):
        raise ValueError("a packet's namespace is not a path")
    if ack_id is not None and (type(ack_id) is not int or not 0 <= ack_id <= MAX_ACK_ID):
        raise ValueError("a packet's ack id is not a 53-bit count")
    _check_depth(decoded.get("data"))
    return decoded


class BoundedMsgPackPacket(msgpack_packet.MsgPackPacket):  # type: ignore[misc]
    def encode(self) -> bytes:
        """As python-socketio's, without a `data` of nil: the browser's parser takes a
        disconnect packet carrying `data: null` for an invalid one and drops the connection
        (the page then reconnected and never read why it was closed)."""
        packet_map = self._to_dict()
        if packet_map.get("data") is None:
            del packet_map["data"]
        encoded: bytes = msgpack.dumps(packet_map)
        return encoded

    def decode(self, encoded_packet: Any) -> int:
        decoded = unpack(encoded_packet)
        self.packet_type = decoded["type"]
        self.data = decoded.get("data")
        self.id = decoded.get("id")
        self.namespace = decoded["nsp"]
        return 0
