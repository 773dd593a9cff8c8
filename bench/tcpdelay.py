"""A loopback TCP relay that delays each direction by a one-way delay: the signaling half of an
emulated round trip (`bench/sfu.py --rtt-ms`), beside `tests/media/linkemu.py`'s UDP `Link`
for the media.

Bytes are held for `one_way_s` and then written in order; a new connection's first bytes also
wait one round trip (the TCP handshake's SYN and SYN-ACK that loopback does not pay). No rate
limit, no loss. Binds and connects to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio

HOST = "127.0.0.1"
CHUNK = 64 * 1024


class DelayedTcpRelay:
    def __init__(self, target_port: int, one_way_s: float) -> None:
        if one_way_s < 0:
            raise ValueError("a delay is not negative")
        self.target_port = target_port
        self.one_way_s = one_way_s
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        """Listen on a free port; returns the base URL that reaches the target through it."""
        self._server = await asyncio.start_server(self._accept, HOST, 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://{HOST}:{port}"

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(HOST, self.target_port)
        except OSError:
            client_w.close()
            return
        start = asyncio.get_running_loop().time() + 2 * self.one_way_s  # the handshake
        pumps = [
            asyncio.ensure_future(self._pump(client_r, server_w, start)),
            asyncio.ensure_future(self._pump(server_r, client_w, 0.0)),
        ]
        for task in pumps:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await asyncio.gather(*pumps, return_exceptions=True)
        for writer in (client_w, server_w):
            writer.close()

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, not_before: float
    ) -> None:
        loop = asyncio.get_running_loop()
        held: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def read() -> None:
            try:
                while data := await reader.read(CHUNK):
                    held.put_nowait((max(loop.time() + self.one_way_s, not_before), data))
            except (ConnectionError, OSError):
                pass
            finally:  # the end, in its turn behind the bytes before it
                held.put_nowait((max(loop.time() + self.one_way_s, not_before), b""))

        reading = asyncio.ensure_future(read())
        try:
            while True:
                due, data = await held.get()
                await asyncio.sleep(max(0.0, due - loop.time()))
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            return
        finally:
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
