"""RTP read and written in place: the fields the forwarding path needs, no packet objects.

Every function takes the plaintext packet (after SRTP) as `bytes` and returns plain ints or
tuples, or None when the packet does not hold together: a publisher's bytes are hostile, and a
short or inconsistent header is dropped, never parsed past its end.

RFC 3550 5.1 (fixed header, CSRCs, extension, padding), RFC 8285 (one- and two-byte header
extensions), RFC 7741 4.2-4.3 (VP8 payload descriptor and header), RFC 4588 4 (RTX).
"""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

HEADER: Final = struct.Struct("!BBHII")  # V/P/X/CC, M/PT, sequence, timestamp, SSRC
SEQ_TS_SSRC: Final = struct.Struct("!HII")
U16: Final = struct.Struct("!H")
ONE_BYTE_PROFILE: Final = 0xBEDE
MIN_HEADER: Final = 12


class RtpView(NamedTuple):
    """Where the parts of one packet lie: offsets into the packet it was read from."""

    payload_type: int
    marker: bool
    sequence: int
    timestamp: int
    ssrc: int
    extensions_start: int  # first byte of the extension elements; == extensions_end if none
    extensions_end: int
    one_byte_extensions: bool
    payload_start: int
    payload_end: int  # padding excluded


def read(packet: bytes) -> RtpView | None:
    """The header of an RTP packet, or None when it is malformed."""
    size = len(packet)
    if size < MIN_HEADER:
        return None
    first, second, sequence, timestamp, ssrc = HEADER.unpack_from(packet)
    if first >> 6 != 2:
        return None
    offset = MIN_HEADER + 4 * (first & 0x0F)
    ext_start = ext_end = offset
    one_byte = False
    if first & 0x10:
        if offset + 4 > size:
            return None
        profile, words = struct.unpack_from("!HH", packet, offset)
        ext_start = offset + 4
        ext_end = ext_start + 4 * words
        one_byte = profile == ONE_BYTE_PROFILE
        offset = ext_end
    if offset > size:
        return None
    end = size
    if first & 0x20:
        padding = packet[-1]
        if padding == 0 or offset + padding > size:
            return None
        end = size - padding
    return RtpView(
        second & 0x7F,
        bool(second & 0x80),
        sequence,
        timestamp,
        ssrc,
        ext_start,
        ext_end,
        one_byte,
        offset,
        end,
    )


def find_extension(packet: bytes, view: RtpView, ext_id: int) -> tuple[int, int] | None:
    """(offset, length) of header extension `ext_id`'s value, or None (RFC 8285)."""
    position = view.extensions_start
    end = view.extensions_end
    if view.one_byte_extensions:
        while position < end:
            byte = packet[position]
            if byte == 0:  # padding between elements
                position += 1
                continue
            element_id = byte >> 4
            if element_id == 15:
                return None
            length = (byte & 0x0F) + 1
            if position + 1 + length > end:
                return None
            if element_id == ext_id:
                return position + 1, length
            position += 1 + length
        return None
    while position + 1 < end:  # two-byte elements (profile 0x100X)
        element_id = packet[position]
        if element_id == 0:
            position += 1
            continue
        length = packet[position + 1]
        if position + 2 + length > end:
            return None
        if element_id == ext_id:
            return position + 2, length
        position += 2 + length
    return None


def audio_level(packet: bytes, view: RtpView, ext_id: int) -> int | None:
    """The RFC 6464 level (0 loudest .. 127 silence), or None when the packet has none."""
    found = find_extension(packet, view, ext_id)
    if found is None:
        return None
    return packet[found[0]] & 0x7F


class Vp8View(NamedTuple):
    """The parts of a VP8 payload descriptor the forwarder rewrites or decides on."""

    frame_start: bool  # S bit with partition index 0: the first packet of a frame
    keyframe: bool  # the first packet of a key frame
    picture_id_offset: int  # absolute offset into the packet, 0 when absent
    picture_id_bits: int  # 0, 7 or 15
    picture_id: int
    temporal_layer: int  # TID, 0 when the descriptor carries none


def read_vp8(packet: bytes, start: int, end: int) -> Vp8View | None:
    """The VP8 payload descriptor of one packet (RFC 7741 4.2), or None when malformed."""
    if start >= end:
        return None
    first = packet[start]
    position = start + 1
    picture_offset = 0
    picture_bits = 0
    picture_id = 0
    temporal_layer = 0
    if first & 0x80:  # X: extension byte follows
        if position >= end:
            return None
        ext = packet[position]
        position += 1
        if ext & 0x80:  # I: picture id
            if position >= end:
                return None
            picture_offset = position
            if packet[position] & 0x80:  # M: 15 bits
                if position + 2 > end:
                    return None
                picture_bits = 15
                picture_id = U16.unpack_from(packet, position)[0] & 0x7FFF
                position += 2
            else:
                picture_bits = 7
                picture_id = packet[position] & 0x7F
                position += 1
        if ext & 0x40:  # L: TL0PICIDX
            position += 1
        if ext & 0x30:  # T or K: TID/Y/KEYIDX
            if position >= end:
                return None
            if ext & 0x20:
                temporal_layer = packet[position] >> 6
            position += 1
    if position > end:
        return None
    frame_start = bool(first & 0x10) and (first & 0x07) == 0
    # VP8 payload header (RFC 7741 4.3): P bit is 0 on a key frame, in the first packet only.
    keyframe = frame_start and position < end and not packet[position] & 0x01
    return Vp8View(frame_start, keyframe, picture_offset, picture_bits, picture_id, temporal_layer)


def unwrap_rtx(packet: bytes, view: RtpView) -> int | None:
    """The original sequence number an RTX packet carries (RFC 4588 4), None for padding."""
    if view.payload_end - view.payload_start < 2:
        return None
    return int(U16.unpack_from(packet, view.payload_start)[0])


def one_byte_extension_block(elements: list[tuple[int, bytes]]) -> bytes:
    """A one-byte-header extension block (profile, length, elements, padding to 32 bits)."""
    body = bytearray()
    for element_id, value in elements:
        if not 1 <= element_id <= 14 or not 1 <= len(value) <= 16:
            raise ValueError("one-byte extension ids are 1-14 and values 1-16 bytes")
        body.append(element_id << 4 | (len(value) - 1))
        body += value
    while len(body) % 4:
        body.append(0)
    return struct.pack("!HH", ONE_BYTE_PROFILE, len(body) // 4) + bytes(body)


def element_at(block: bytes, ext_id: int) -> int:
    """Offset (from a packet's start, after a 12-byte header) of extension `ext_id`'s value in
    a one-byte-header extension `block`, or 0."""
    if not ext_id or not block:
        return 0
    position = 4
    while position < len(block):
        byte = block[position]
        if byte == 0:
            position += 1
            continue
        if byte >> 4 == ext_id:
            return 12 + position + 1
        position += 2 + (byte & 0x0F)
    return 0


def seq_newer(a: int, b: int) -> bool:
    """True when 16-bit sequence number `a` comes after `b` (RFC 1982 serial arithmetic)."""
    return a != b and (a - b) & 0xFFFF < 0x8000


def seq_delta(a: int, b: int) -> int:
    """Signed distance from `b` to `a` in 16-bit sequence space."""
    delta = (a - b) & 0xFFFF
    return delta - 0x10000 if delta >= 0x8000 else delta
