"""Socket.IO packets from outside, bounded before python-socketio acts on them.

python-socketio decodes a packet's JSON with a recursive parser, believes any attachment count
(ten digits: the socket then swallows every later frame as an "attachment" and keeps them all in
memory; zero: it waits for an attachment it will refuse) and indexes attachments by whatever a
placeholder says (one pointing nowhere raises half-way and leaves the socket deaf for good).
This packet class refuses the first two at decode (the frame is dropped and logged by
python-socketio; the socket goes on) and turns a bad placeholder into `null`, which the event's
payload model then refuses coded.
"""

from __future__ import annotations

from typing import Any

from socketio import packet

from .. import jsonlimits

# Client events carry at most one binary field (a notes update or state vector).
MAX_ATTACHMENTS = 4
# Payloads are flat objects; the deepest valid client frame nests 3 levels.
MAX_DEPTH = 16


class BoundedPacket(packet.Packet):  # type: ignore[misc]
    def decode(self, encoded_packet: Any) -> int:
        if isinstance(encoded_packet, str) and jsonlimits.nests_deeper_than(
            encoded_packet, MAX_DEPTH
        ):
            raise ValueError(f"a packet nests deeper than {MAX_DEPTH} levels")
        count: int = super().decode(encoded_packet)
        if count > MAX_ATTACHMENTS:
            raise ValueError(f"a packet announces more than {MAX_ATTACHMENTS} attachments")
        if self.packet_type in (packet.BINARY_EVENT, packet.BINARY_ACK) and count < 1:
            # It would wait for an attachment that can never be accepted: a deaf socket.
            raise ValueError("a binary packet announces no attachment")
        return count

    @classmethod
    def _reconstruct_binary_internal(cls, data: Any, attachments: list[bytes]) -> Any:
        if isinstance(data, list):
            return [cls._reconstruct_binary_internal(item, attachments) for item in data]
        if isinstance(data, dict):
            if data.get("_placeholder") is True and "num" in data:
                num = data["num"]
                valid = isinstance(num, int) and not isinstance(num, bool)
                return attachments[num] if valid and 0 <= num < len(attachments) else None
            return {k: cls._reconstruct_binary_internal(v, attachments) for k, v in data.items()}
        return data
