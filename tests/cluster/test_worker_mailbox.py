"""A worker's own channel on real Redis: a message to a worker reaches its handler and no other
worker's, in order; what is not one worker's message is refused before it is sent, or dropped
when read, and the reader goes on."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from server.cluster.commands import MAX_MESSAGE_BYTES, WorkerMailbox, channel
from server.cluster.entry import ClusterKeys
from server.ids import WorkerId
from tests.waiting import wait_for


class Inbox:
    def __init__(self, fail_on: bytes | None = None) -> None:
        self.got: list[bytes] = []
        self.fail_on = fail_on

    async def __call__(self, message: bytes) -> None:
        self.got.append(message)
        if message == self.fail_on:
            raise RuntimeError("a handler that fails")


async def test_messages_reach_only_the_worker_addressed(redis: Redis, keys: ClusterKeys) -> None:
    inboxes = {WorkerId("node-a-0"): Inbox(fail_on=b"boom"), WorkerId("node-a-1"): Inbox()}
    boxes = [WorkerMailbox(redis, keys, me, inbox) for me, inbox in inboxes.items()]
    try:
        for box in boxes:
            await box.start()
        first, second = boxes
        # Oversized on the wire (not through `send`), and a failing handler: the reader goes on.
        huge = b"x" * (MAX_MESSAGE_BYTES + 1)
        assert await redis.publish(channel(keys, first.me), huge) == 1
        assert await first.send(first.me, b"boom") is True
        for n in range(3):
            assert await second.send(first.me, f"m{n}".encode()) is True
        await wait_for(lambda: len(inboxes[first.me].got) == 4, 10, "four messages")
        assert inboxes[first.me].got == [b"boom", b"m0", b"m1", b"m2"]
        assert inboxes[second.me].got == []
        # Nobody listens there: the message is lost, and the sender knows.
        assert await first.send(WorkerId("node-b-0"), b"m") is False
        with pytest.raises(ValueError, match="1 KiB"):
            await first.send(second.me, huge)
        with pytest.raises(ValueError, match="worker id"):
            await first.send(WorkerId("node-a-0:*"), b"m")
    finally:
        await asyncio.gather(*(box.close() for box in boxes))
        await boxes[0].close()  # safe twice
