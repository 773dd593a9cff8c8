"""Generic NACK (RFC 4585 6.2.1), built here because aiortc's `RtcpRtpfbPacket` is not safe
across the sequence number wrap: a list holding 65535 then 0 makes it shift by a negative
count and raise, on the packet path, for every packet until the gap is forgotten."""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from aiortc.rtp import RTCP_RTPFB, RTCP_RTPFB_NACK

_HEADER = struct.Struct("!BBHII")  # V/P/FMT, PT, length in words - 1, sender SSRC, media SSRC
_FCI = struct.Struct("!HH")  # PID, BLP
MAX_ENTRIES = 64  # FCI entries in one NACK: up to 1,088 packets, far under an MTU


def fci_entries(lost: Iterable[int]) -> list[tuple[int, int]]:
    """(PID, BLP) pairs for `lost` (16-bit sequence numbers in sending order, wrap included):
    each PID names a lost packet and bit i of its BLP the packet PID + i + 1."""
    entries: list[tuple[int, int]] = []
    for seq in lost:
        seq &= 0xFFFF
        if entries:
            pid, blp = entries[-1]
            distance = (seq - pid - 1) & 0xFFFF
            if distance < 16:
                entries[-1] = (pid, blp | (1 << distance))
                continue
        entries.append((seq, 0))
    return entries


@dataclass(frozen=True)
class Nack:
    """One generic NACK, as the bytes of an RTCP packet."""

    ssrc: int
    media_ssrc: int
    lost: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.lost:
            raise ValueError("a NACK names at least one packet")
        for value in (self.ssrc, self.media_ssrc):
            if not 0 <= value <= 0xFFFFFFFF:
                raise ValueError("an SSRC is 32 bits")

    def __bytes__(self) -> bytes:
        entries = fci_entries(self.lost)[:MAX_ENTRIES]
        header = _HEADER.pack(
            0x80 | RTCP_RTPFB_NACK, RTCP_RTPFB, 2 + len(entries), self.ssrc, self.media_ssrc
        )
        return header + b"".join(_FCI.pack(pid, blp) for pid, blp in entries)
