"""Messages addressed to one worker: a Redis pub/sub channel per worker, which only that worker
reads (`triad:cluster:<deployment>:commands:<worker id>`).

Per worker rather than one channel for all: a message concerns one consult, which lives on one
worker (its placement); with a broadcast every worker would read and decode every message only
for all but one to drop it. The sender looks the owner up (`Placement.holder`) and publishes
there. This module moves bytes only: what they mean, and how they are checked, is the caller's.

Pub/sub delivers at most once and only to a subscriber listening at that moment: a message is
lost when Redis is down or the worker is between subscriptions. Whoever sends must say what
catches a lost one (docs/architecture.md, "Workers and placement")."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import RedisError

from .. import logs
from ..ids import WorkerId
from ..pubsub import ChannelReader, Handler
from .entry import WORKER_ID, ClusterKeys

log = logs.get(__name__)

# A message is a few ids and a kind; anything longer on the channel is not one of ours.
MAX_MESSAGE_BYTES = 1024


def channel(keys: ClusterKeys, worker_id: WorkerId) -> str:
    return keys.prefix + "commands:" + worker_id


class WorkerMailbox:
    """This worker's channel (read on its own task, each message handed to `handler` in order),
    and sending to another worker's."""

    def __init__(self, redis: Redis, keys: ClusterKeys, me: WorkerId, handler: Handler) -> None:
        self._redis = redis
        self._keys = keys
        self.me = me
        self._reader = ChannelReader(
            redis, channel(keys, me), handler, max_bytes=MAX_MESSAGE_BYTES, name="cluster.commands"
        )

    async def start(self, within: float = 5.0) -> None:
        """Subscribe, and return once the subscription is confirmed (or after `within` seconds
        with Redis unreachable: the reader keeps trying, the worker still starts)."""
        await self._reader.start(within)

    async def send(self, worker_id: WorkerId, message: bytes) -> bool:
        """Publish to `worker_id`'s channel; True when a subscriber received it (False: the
        worker is not listening, or Redis failed; the message is lost, and logged)."""
        if len(message) > MAX_MESSAGE_BYTES:
            raise ValueError("a worker message is at most 1 KiB")
        if not WORKER_ID.fullmatch(worker_id):
            raise ValueError("not a worker id")
        try:
            received = await self._redis.publish(channel(self._keys, worker_id), message)
        except RedisError as exc:
            log.error("cluster.command_send_failed", worker=worker_id, **logs.failure(exc))
            return False
        if not received:
            log.warning("cluster.command_unheard", worker=worker_id)
        return bool(received)

    async def close(self) -> None:
        """Stop reading this worker's channel. Safe to call twice."""
        await self._reader.close()
