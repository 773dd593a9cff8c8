"""Wall-clock stamps RTP and RTCP carry, from time.time() (aiortc's clock goes through
datetime, too slow for once per packet)."""

from __future__ import annotations

import time
from typing import Final

NTP_EPOCH_OFFSET: Final = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01


def send_time() -> bytes:
    """abs-send-time now: 6.18 fixed-point seconds of NTP time in 24 bits (the low bits of
    NTP time >> 14)."""
    value = int((time.time() + NTP_EPOCH_OFFSET) * 262144) & 0xFFFFFF
    return value.to_bytes(3, "big")


def middle_32() -> int:
    """The middle 32 bits of NTP time now (RFC 3550 6.4.1: what LSR and DLSR are measured in)."""
    return int((time.time() + NTP_EPOCH_OFFSET) * 65536) & 0xFFFFFFFF
