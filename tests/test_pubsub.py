"""The channel reader shared by the access events and the worker mailbox, on real Redis behind a
proxy the test breaks: a reader that cannot subscribe still lets its process start, and after
losing its connection it subscribes again by itself and hears what is published from then on.

The reader's client makes no retries of its own: redis-py's default ones reconnect a dropped
pub/sub connection silently, and the reader's own loop is what is left after an outage longer
than they last, the case tested here."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from server.cluster.entry import ClusterKeys
from server.pubsub import ChannelReader
from tests.redisproxy import RedisProxy
from tests.waiting import wait_for


@pytest.fixture
async def behind(redis_url: str) -> AsyncIterator[tuple[RedisProxy, Redis]]:
    """A proxy in front of Redis, and a client through it that does not retry."""
    async with RedisProxy.running(redis_url, record=False) as proxy:
        client = Redis.from_url(proxy.url, retry=Retry(NoBackoff(), 0))
        try:
            yield proxy, client
        finally:
            await client.aclose()


def logged(stream: io.StringIO, event: str) -> list[dict[str, object]]:
    lines = (json.loads(line) for line in stream.getvalue().splitlines())
    return [line for line in lines if line.get("event") == event]


async def test_the_reader_subscribes_again_after_losing_redis(
    redis: Redis,
    keys: ClusterKeys,
    behind: tuple[RedisProxy, Redis],
    log_stream: io.StringIO,
) -> None:
    proxy, client = behind
    got: list[bytes] = []

    async def handler(message: bytes) -> None:
        got.append(message)

    channel = keys.prefix + "pubsub-test"
    reader = ChannelReader(client, channel, handler, max_bytes=64, name="test")
    proxy.cut()  # Redis unreachable at start: no answer, nothing refused
    try:
        await reader.start(within=0.5)
        assert [line["reader"] for line in logged(log_stream, "pubsub.not_subscribed")] == ["test"]

        proxy.restore()  # the held connection is closed: the reader's first loss
        await wait_for(lambda: logged(log_stream, "pubsub.subscription_lost"), 5, "a loss")
        await heard(redis, channel, got, b"first")

        proxy.restore()  # a live subscription dropped: the second loss
        await wait_for(
            lambda: len(logged(log_stream, "pubsub.subscription_lost")) == 2, 5, "a second loss"
        )
        await heard(redis, channel, got, b"second")
        lost = logged(log_stream, "pubsub.subscription_lost")
        assert [line["reader"] for line in lost] == ["test", "test"]
    finally:
        await reader.close()
        await reader.close()  # safe twice


async def heard(redis: Redis, channel: str, got: list[bytes], message: bytes) -> None:
    """Publish `message` until the reader has it: one published while it is between
    subscriptions is lost (pub/sub delivers only to whoever listens at that moment)."""

    async def arrived() -> bool:
        if message in got:
            return True
        await redis.publish(channel, message)
        return False

    await wait_for(arrived, 10, f"{message!r} at the resubscribed reader")
