"""A TCP proxy on loopback that counts the bytes the server sends back, to show how much a
client read from Redis (Redis 7.0's CLIENT INFO does not count them)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit


class CountingProxy:
    def __init__(self, target_url: str) -> None:
        parts = urlsplit(target_url)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self._path = parts.path
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self.received = 0  # bytes from the server to the client

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}{self._path}"

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls, target_url: str) -> AsyncIterator[CountingProxy]:
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
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        pipes = [
            asyncio.create_task(self._pipe(reader, upstream_writer, count=False)),
            asyncio.create_task(self._pipe(upstream_reader, writer, count=True)),
        ]
        self._pipes.update(pipes)
        await asyncio.gather(*pipes, return_exceptions=True)
        self._pipes.difference_update(pipes)
        for w in (writer, upstream_writer):
            w.close()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, count: bool
    ) -> None:
        while chunk := await reader.read(65536):
            if count:
                self.received += len(chunk)
            writer.write(chunk)
            await writer.drain()
        writer.close()
