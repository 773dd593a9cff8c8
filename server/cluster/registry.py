"""The node registry: every worker heartbeats its entry (public URL and load) into Redis with a
TTL of a few seconds; a worker whose entry lapsed is gone.

Listing the live workers is one script: it returns at most `MAX_LISTED` entries of at most
`MAX_ENTRY_BYTES` each, prunes ids whose entry lapsed, and counts each worker's recent
placements (so a burst of joins spreads before the next heartbeat reports the new rooms).

Fencing: a worker that has not renewed its entry for `FENCE_FRACTION` of the TTL stops serving
(its `on_leave` handlers close its rooms without ending them, and it takes no join) before
its entry can lapse and another worker be placed its consults: two workers never both serve
one. Every Redis call here is bounded in time (an unreachable Redis must not hold a beat, a
listing or a placement for redis-py's retries): a listing or a placement by a quarter of the
TTL, a beat by the fence itself (a late answer still renews the entry, so one slow reply does
not fence a worker whose Redis answers); a beat that succeeds again lifts the fence."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from .. import logs
from ..ids import WorkerId
from .entry import (
    MAX_CPU,
    MAX_ENTRY_BYTES,
    MAX_ID_BYTES,
    ClusterKeys,
    WorkerEntry,
    WorkerLoad,
)

log = logs.get(__name__)

# More workers than this in one deployment are not listed (a random subset is).
MAX_LISTED = 256
# A placement counts toward its worker's load this long, until its heartbeat shows the room.
RECENT_PLACEMENT_SECONDS = 5.0
# A worker fences itself when this much of the TTL passed since it last started a beat that
# succeeded: the rest is the margin before its entry can lapse (the entry's TTL counts from
# when Redis received it, later than the start).
FENCE_FRACTION = 0.75

LeaveHandler = Callable[[], Awaitable[None]]

_LIST_LIVE = """
local kind = redis.call('TYPE', KEYS[1]).ok
if kind ~= 'set' then
  if kind ~= 'none' then redis.call('DEL', KEYS[1]) end
  return {}
end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local out = {}
for _, id in ipairs(redis.call('SRANDMEMBER', KEYS[1], tonumber(ARGV[3]))) do
  if #id > tonumber(ARGV[4]) then
    redis.call('SREM', KEYS[1], id)
  else
    local key = ARGV[1] .. id
    local entry_kind = redis.call('TYPE', key).ok
    if entry_kind == 'string' then
      local recent = 0
      local recent_key = ARGV[2] .. id
      if redis.call('TYPE', recent_key).ok == 'zset' then
        redis.call('ZREMRANGEBYSCORE', recent_key, '-inf', now - tonumber(ARGV[6]))
        recent = redis.call('ZCARD', recent_key)
      end
      table.insert(out, id)
      table.insert(out, redis.call('GETRANGE', key, 0, tonumber(ARGV[5])))
      table.insert(out, recent)
    elseif entry_kind == 'none' then
      redis.call('SREM', KEYS[1], id)
    end
  end
end
return out
"""


@dataclass(frozen=True)
class LiveWorker:
    entry: WorkerEntry
    # Consults placed on it in the last few seconds (some not yet in its entry's rooms).
    recent: int

    @property
    def load(self) -> tuple[int, int, float]:
        """What placement compares: rooms (with recent placements), participants, CPU."""
        return (self.entry.rooms + self.recent, self.entry.participants, self.entry.cpu)


@dataclass(frozen=True)
class WorkerAddress:
    """This worker, as its entry names it."""

    worker_id: WorkerId
    node_id: str
    url: str
    base_url: str


class NodeRegistry:
    """This worker's heartbeat, and the registry as it reads it."""

    def __init__(
        self,
        redis: Redis,
        keys: ClusterKeys,
        me: WorkerAddress,
        load: Callable[[], WorkerLoad],
        *,
        interval: float,
        ttl: float,
        recent_placement: float = RECENT_PLACEMENT_SECONDS,
    ) -> None:
        if not 0 < interval * 2 <= ttl:
            raise ValueError("the heartbeat TTL must be at least twice its interval")
        self._redis = redis
        self._keys = keys
        self.me = me
        self._load = load
        self._interval = interval
        self._ttl_ms = int(ttl * 1000)
        self.recent_placement_ms = int(recent_placement * 1000)
        self._list_live = redis.register_script(_LIST_LIVE)
        # Every call to Redis here and in placement gives up after this (redis-py's own
        # retries would hold an unreachable Redis for seconds); a beat, after this or when
        # the fence comes, whichever is later (see `_beat_once`).
        self.call_timeout = ttl / 4
        self._fence_after = ttl * FENCE_FRACTION
        # When the watchdog fences (monotonic), unless a beat renews the entry first.
        self._fence_at = time.monotonic() + self._fence_after
        self._beating: asyncio.Task[None] | None = None
        self._failing = False
        self._cpu_mark = (time.monotonic(), time.process_time())
        self._watchdog: asyncio.TimerHandle | None = None
        self._leave_handlers: list[LeaveHandler] = []
        self._leaving: set[asyncio.Task[None]] = set()
        # Stopped serving: no renewal within the fence time. No join is taken while set.
        self.fenced = False
        # Stopping: the entry says so, and placement puts no new consult here.
        self.draining = False
        # The browser origins of every live worker, as last read (for CORS and CSP).
        self.origins: frozenset[str] = frozenset()

    def on_leave(self, handler: LeaveHandler) -> Callable[[], None]:
        """Call `handler` whenever this worker stops serving its rooms (fenced); returns the
        unsubscribe."""
        self._leave_handlers.append(handler)
        return lambda: self._leave_handlers.remove(handler)

    async def leave(self) -> None:
        """Stop serving every room here, without ending its consult (the handlers close them
        and tell their sockets to find the consult's worker again)."""
        for handler in list(self._leave_handlers):
            try:
                await handler()
            except Exception as exc:  # the others must still run
                log.error("cluster.leave_handler_failed", **logs.failure(exc))

    async def drain(self) -> None:
        """Stop taking new consults: the entry says `draining` from now (written at once)."""
        self.draining = True
        try:
            await self._beat_once()
        except (RedisError, TimeoutError) as exc:  # the next beat writes it
            log.warning("cluster.heartbeat_failed", **logs.failure(exc))

    async def start(self) -> None:
        """Write an entry now (the worker is placeable once it serves), then keep beating on
        a task of its own (one, however often this is called)."""
        if self._watchdog is None:  # counted from now: not yet beaten is as good as lapsed
            self._arm(time.monotonic())
        try:
            await self._beat_once()
        except Exception as exc:  # the loop keeps trying; until then nothing is placed here
            self._failing = True
            log.error("cluster.heartbeat_failed", **logs.failure(exc))
        if self._beating is None:
            self._beating = asyncio.get_running_loop().create_task(self._beat())

    async def close(self) -> None:
        """Stop beating (cancel, then wait), then take the entry out, so this worker's
        consults are placed again at their next join. Safe to call twice."""
        beating, self._beating = self._beating, None
        if beating is None:
            return
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        beating.cancel()
        await asyncio.gather(beating, return_exceptions=True)
        await asyncio.gather(*self._leaving, return_exceptions=True)
        try:
            async with (
                asyncio.timeout(self.call_timeout),
                self._redis.pipeline(transaction=False) as pipe,
            ):
                pipe.delete(self._keys.worker(self.me.worker_id))
                pipe.srem(self._keys.workers, self.me.worker_id)
                await pipe.execute()
        except (RedisError, TimeoutError) as exc:  # it lapses by itself within the TTL
            log.warning("cluster.leave_failed", **logs.failure(exc))

    async def live(self) -> list[LiveWorker]:
        """The workers whose entry has not lapsed, each read bounded and parsed strictly.
        Raises RedisError or TimeoutError when Redis cannot answer in time."""
        async with asyncio.timeout(self.call_timeout):
            raw = await self._list_live(
                keys=[self._keys.workers],
                args=[
                    self._keys.worker_prefix,
                    self._keys.recent_prefix,
                    MAX_LISTED,
                    MAX_ID_BYTES,
                    MAX_ENTRY_BYTES,
                    self.recent_placement_ms,
                ],
            )
        found = []
        for i in range(0, len(raw) - 2, 3):
            worker = self._parse(raw[i], raw[i + 1], raw[i + 2])
            if worker is not None:
                found.append(worker)
        return found

    def _parse(self, raw_id: object, raw_entry: object, recent: object) -> LiveWorker | None:
        try:
            worker_id = raw_id.decode() if isinstance(raw_id, bytes) else ""
            entry = WorkerEntry.decode(raw_entry if isinstance(raw_entry, bytes) else b"")
            if entry.worker_id != worker_id or not isinstance(recent, int) or recent < 0:
                raise ValueError("an entry under another worker's id")
        except (ValueError, TypeError):
            # Not one of ours (forged, truncated, another version): never placed on.
            log.warning("cluster.entry_malformed")
            return None
        return LiveWorker(entry, recent)

    def entry(self) -> WorkerEntry:
        load = self._load()
        now = (time.monotonic(), time.process_time())
        wall, cpu = now[0] - self._cpu_mark[0], now[1] - self._cpu_mark[1]
        self._cpu_mark = now
        return WorkerEntry(
            worker_id=self.me.worker_id,
            node_id=self.me.node_id,
            url=self.me.url,
            base_url=self.me.base_url,
            rooms=load.rooms,
            participants=load.participants,
            # Over a beat of microseconds (the first) clock granularity could say anything.
            cpu=round(min(max(cpu, 0.0) / wall, MAX_CPU), 3) if wall > 0.01 else 0.0,
            draining=self.draining,
        )

    async def _beat_once(self) -> None:
        started = time.monotonic()
        entry = self.entry().encode()
        # A reply that comes before the fence renews the entry in time: wait for it until then.
        # Cut at the call timeout, a beat answered late once fenced the worker: the next beat,
        # an interval later, started at or past the fence (0.5 s beats of a 2 s TTL: a beat
        # begun at 0.5 s, cut at 1.0 s, the next at 1.5 s = 3/4 of the TTL). The watchdog
        # fences on time whatever a beat is waiting for; once fenced, a beat gives up after
        # the call timeout, so one that succeeds lifts the fence soon after Redis is back.
        bound = max(self.call_timeout, self._fence_at - started)
        async with (
            asyncio.timeout(bound),
            self._redis.pipeline(transaction=False) as pipe,
        ):
            pipe.set(self._keys.worker(self.me.worker_id), entry, px=self._ttl_ms)
            pipe.sadd(self._keys.workers, self.me.worker_id)
            await pipe.execute()
        self._arm(started)
        # Not while its rooms are still closing: a room opened meanwhile would close too.
        if self.fenced and not self._leaving:
            self.fenced = False
            log.info("cluster.unfenced", worker=self.me.worker_id)
        live = await self.live()
        self.origins = frozenset(o for w in live for o in w.entry.origins)

    def _arm(self, renewed: float) -> None:
        """The entry was renewed at `renewed` (monotonic): fence unless renewed again in time."""
        if self._watchdog is not None:
            self._watchdog.cancel()
        self._fence_at = renewed + self._fence_after
        loop = asyncio.get_running_loop()
        at = loop.time() + (self._fence_at - time.monotonic())
        self._watchdog = loop.call_at(at, self._fence)

    def _fence(self) -> None:
        self._watchdog = None
        if self.fenced or self._beating is None:
            return
        self.fenced = True
        log.error("cluster.fenced", worker=self.me.worker_id)
        task = asyncio.get_running_loop().create_task(self.leave())
        self._leaving.add(task)
        task.add_done_callback(self._leaving.discard)

    async def _beat(self) -> None:
        due = time.monotonic() + self._interval
        while True:
            await asyncio.sleep(max(due - time.monotonic(), 0.0))
            # Counted from this beat's start, not its end: a slow beat is followed at once,
            # not an interval later with less of the fence's time left.
            due = time.monotonic() + self._interval
            try:
                await self._beat_once()
            except Exception as exc:  # Redis away (or a fault of ours): the beat goes on
                if not self._failing:  # one line per outage, not one per beat
                    log.error("cluster.heartbeat_failed", **logs.failure(exc))
                self._failing = True
                continue
            if self._failing:
                log.info("cluster.heartbeat_resumed")
                self._failing = False
