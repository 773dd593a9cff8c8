"""The loopback proxy between Triad's workers and Redis (`tests/redisproxy.py`), counting the
commands they send, by name (other clients of the same Redis, such as tests running beside the
bench, are not counted, as they would be in INFO's totals).

Commands are RESP arrays of bulk strings, the only form redis-py sends; the counter reads
them as they pass and forwards every byte unchanged either way."""

from __future__ import annotations

import contextlib
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.redisproxy import RedisProxy


class CommandReader:
    """Reads RESP commands off one client's byte stream, fed in arbitrary pieces."""

    def __init__(self, counts: Counter[str]) -> None:
        self._counts = counts
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self._buffer += data
        while (used := self._one()) > 0:
            del self._buffer[:used]

    def _one(self) -> int:
        """Count the first whole command in the buffer; return its length (0: not whole)."""
        buf = self._buffer
        end = buf.find(b"\r\n")
        if end < 0:
            return 0
        if buf[:1] != b"*":  # an inline command (redis-cli), one line
            self._counts[bytes(buf[:end]).split(b" ", 1)[0].decode(errors="replace").upper()] += 1
            return end + 2
        items, at, name = int(buf[1:end]), end + 2, ""
        for index in range(items):
            end = buf.find(b"\r\n", at)
            if end < 0:
                return 0
            length = int(buf[at + 1 : end])
            start, at = end + 2, end + 2 + length + 2
            if at > len(buf):
                return 0
            if index == 0:
                name = bytes(buf[start : start + length]).decode(errors="replace").upper()
        self._counts[name] += 1
        return at


class RedisCommandProxy:
    """`tests/redisproxy.py`'s proxy with a `CommandReader` on each client's stream."""

    def __init__(self, proxy: RedisProxy, counts: Counter[str]) -> None:
        self._proxy = proxy
        self.counts = counts

    @property
    def url(self) -> str:
        return self._proxy.url

    def total(self) -> int:
        return sum(self.counts.values())

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls, target_url: str) -> AsyncIterator[RedisCommandProxy]:
        counts: Counter[str] = Counter()
        observe = lambda: CommandReader(counts).feed  # noqa: E731 (one reader per client)
        async with RedisProxy.running(target_url, record=False, observe=observe) as proxy:
            yield cls(proxy, counts)
