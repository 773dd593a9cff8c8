"""One Redis pub/sub channel, read on a task of its own: each message's bytes are handed, in
order, to a handler; after a Redis failure the subscription is made again a second later.

Shared by the channels that cross processes (access events, a worker's mailbox): what their
bytes mean, and how they are checked, is theirs. Pub/sub delivers at most once and only to a
subscriber listening at that moment; each user says what catches a message lost meanwhile."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from . import logs

log = logs.get(__name__)

RETRY_SECONDS = 1.0

Handler = Callable[[bytes], Awaitable[None]]


class ChannelReader:
    """Subscribes to `channel` and calls `handler` with each message of at most `max_bytes`
    (longer or non-bytes ones are not ours: logged as malformed and dropped). `name` labels
    its log lines (`reader=`)."""

    def __init__(
        self, redis: Redis, channel: str, handler: Handler, *, max_bytes: int, name: str
    ) -> None:
        self._redis = redis
        self.channel = channel
        self._handler = handler
        self._max_bytes = max_bytes
        self._name = name
        self._reader: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def start(self, within: float = 5.0) -> None:
        """Subscribe, and return once the subscription is confirmed (or after `within` seconds
        with Redis unreachable: the reader keeps trying, the process still starts)."""
        if self._reader is None:
            self._reader = asyncio.get_running_loop().create_task(self._read())
        try:
            async with asyncio.timeout(within):
                await self._subscribed.wait()
        except TimeoutError:
            log.error("pubsub.not_subscribed", reader=self._name)

    async def close(self) -> None:
        """Cancel the reader, then wait for it. Safe to call twice."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def _read(self) -> None:
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=False, timeout=5)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        self._subscribed.set()
                    elif message["type"] == "message":
                        await self._received(message["data"])
            except RedisError as exc:
                log.error("pubsub.subscription_lost", reader=self._name, **logs.failure(exc))
                await asyncio.sleep(RETRY_SECONDS)
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _received(self, data: object) -> None:
        if not isinstance(data, bytes) or len(data) > self._max_bytes:
            log.warning("pubsub.malformed", reader=self._name)
            return
        try:
            await self._handler(data)
        except Exception as exc:  # one failing message must not stop the reader
            log.error("pubsub.handler_failed", reader=self._name, **logs.failure(exc))
