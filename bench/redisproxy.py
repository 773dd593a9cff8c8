"""A TCP proxy on loopback between Triad's workers and Redis that counts the commands they
send, by name (other clients of the same Redis, such as tests running beside the bench, are
not counted, as they would be in INFO's totals).

Commands are RESP arrays of bulk strings, the only form redis-py sends; the counter reads
them as they pass and forwards every byte unchanged either way."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from urllib.parse import urlsplit


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
    def __init__(self, target_url: str) -> None:
        parts = urlsplit(target_url)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self._path = parts.path
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self.counts: Counter[str] = Counter()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}{self._path}"

    def total(self) -> int:
        return sum(self.counts.values())

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls, target_url: str) -> AsyncIterator[RedisCommandProxy]:
        proxy = cls(target_url)
        proxy._server = await asyncio.start_server(proxy._serve, "127.0.0.1", 0)
        try:
            yield proxy
        finally:
            proxy._server.close()
            for pipe in list(proxy._pipes):
                pipe.cancel()
            await asyncio.gather(*proxy._pipes, return_exceptions=True)
            await proxy._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        commands = CommandReader(self.counts)
        for source, sink, seen in (
            (reader, up_writer, commands.feed),
            (up_reader, writer, None),
        ):
            task = asyncio.get_running_loop().create_task(self._pipe(source, sink, seen))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter, seen: object) -> None:
        try:
            while data := await source.read(65536):
                if callable(seen):
                    seen(data)
                sink.write(data)
                await sink.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            sink.close()
