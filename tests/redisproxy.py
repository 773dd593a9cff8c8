"""A TCP proxy on loopback in front of Redis, for the tests and benches that must see or
disturb what a worker sends it; every byte is forwarded unchanged unless the test says so.

- `cut` / `restore`: a network partition. While cut, every byte either way is dropped and new
  connections are held open without reaching Redis (nothing is refused, nothing answers);
  `restore` closes what was held, so clients connect afresh, and forwards again.
- `delay_next`: hold one request a while (Redis answering late once, as on a loaded machine).
- `count` / `sent`: the requests that reached Redis (kept only with `record=True`).
- `received`: the bytes Redis sent back (Redis 7.0's CLIENT INFO does not count them).
- `observe`: a factory called once per client connection, returning what is fed every chunk
  that client sends (a reader of RESP commands, in the bench)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

Observer = Callable[[bytes], None]


class RedisProxy:
    def __init__(
        self,
        target_url: str,
        *,
        record: bool = True,
        observe: Callable[[], Observer] | None = None,
    ) -> None:
        parts = urlsplit(target_url)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self._path = parts.path
        self._record = record
        self._observe = observe
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.cut_now = False
        # (what the request contains, how long it is held), for the next such request only.
        self._delay: tuple[bytes, float] | None = None
        self.sent: list[bytes] = []  # every chunk a client sent that reached Redis, in order
        self.received = 0  # bytes from Redis to the clients

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}{self._path}"

    @classmethod
    @contextlib.asynccontextmanager
    async def running(
        cls,
        target_url: str,
        *,
        record: bool = True,
        observe: Callable[[], Observer] | None = None,
    ) -> AsyncIterator[RedisProxy]:
        proxy = cls(target_url, record=record, observe=observe)
        proxy._server = await asyncio.start_server(proxy._accept, "127.0.0.1", 0)
        try:
            yield proxy
        finally:
            proxy._server.close()
            proxy._close_all()
            for task in list(proxy._tasks):
                task.cancel()
            await asyncio.gather(*proxy._tasks, return_exceptions=True)
            await proxy._server.wait_closed()

    def cut(self) -> None:
        self.cut_now = True

    def restore(self) -> None:
        self.cut_now = False
        self._close_all()

    def delay_next(self, containing: bytes, seconds: float) -> None:
        """Hold the next request that contains `containing` for `seconds` before it goes on to
        Redis (its client waits that much longer for the answer); later ones pass at once."""
        self._delay = (containing, seconds)

    def count(self, containing: bytes) -> int:
        """How many requests that contain `containing` reached Redis."""
        return sum(containing in chunk for chunk in self.sent)

    def _close_all(self) -> None:
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            if self.cut_now:  # held: read and drop until restored (which closes it)
                while await reader.read(65536):
                    pass
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self._target)
            except OSError:
                return
            self._writers.add(up_writer)
            observer = self._observe() if self._observe is not None else None
            await asyncio.gather(
                self._pipe(reader, up_writer, upstream=True, observer=observer),
                self._pipe(up_reader, writer, upstream=False),
                return_exceptions=True,
            )
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        upstream: bool,
        observer: Observer | None = None,
    ) -> None:
        try:
            while chunk := await reader.read(65536):
                if upstream and self._delay is not None and self._delay[0] in chunk:
                    seconds, self._delay = self._delay[1], None
                    await asyncio.sleep(seconds)
                if self.cut_now:  # cut: the bytes are lost on the way
                    continue
                if not upstream:
                    self.received += len(chunk)
                else:
                    if self._record:
                        self.sent.append(chunk)
                    if observer is not None:
                        observer(chunk)
                writer.write(chunk)
                await writer.drain()
        finally:
            writer.close()
