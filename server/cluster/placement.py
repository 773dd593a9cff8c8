"""Where a consult lives: placed on one worker when it is first asked for (the join page's
session call or a socket's `join`), and kept there while that worker's heartbeat holds.

The placement is one Redis key per consult, written by a script that checks and sets in one
step: of any number of workers placing the same consult at once, one choice wins and every
one of them answers with it. A placement is replaced only when the worker it names has no
live entry (its heartbeat lapsed, or the entry is not one of ours). A draining worker keeps
the consults placed on it and is placed no new one; a fenced worker places nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from .. import logs
from ..errors import ErrorCode, TriadError
from ..ids import ConsultId, WorkerId
from .entry import MAX_ENTRY_BYTES, MAX_ID_BYTES, ClusterKeys, WorkerEntry
from .registry import LeaveHandler, LiveWorker, NodeRegistry

log = logs.get(__name__)

# KEYS[1]: the consult's placement. ARGV: worker key prefix, recent-placement key prefix, the
# candidate ('' only to look), a lapsed owner the caller saw and may replace ('' for none),
# the placement's TTL (ms), the consult id, the most bytes of an id and of an entry, and how
# long a recent placement is remembered (ms). Returns {owner, its entry} when the consult is
# placed on a worker with an entry; else {lapsed owner} (or {}) when there is no candidate.
_CLAIM = """
local kind = redis.call('TYPE', KEYS[1]).ok
local owner = ''
if kind == 'string' then
  owner = redis.call('GETRANGE', KEYS[1], 0, tonumber(ARGV[7]))
elseif kind ~= 'none' then
  redis.call('DEL', KEYS[1])
end
if owner ~= '' and #owner <= tonumber(ARGV[7]) and owner ~= ARGV[4] then
  local key = ARGV[1] .. owner
  if redis.call('TYPE', key).ok == 'string' then
    redis.call('PEXPIRE', KEYS[1], ARGV[5])
    return {owner, redis.call('GETRANGE', key, 0, tonumber(ARGV[8]))}
  end
end
if ARGV[3] == '' then
  if #owner > tonumber(ARGV[7]) then return {} end
  return {owner}
end
local key = ARGV[1] .. ARGV[3]
if redis.call('TYPE', key).ok ~= 'string' then return {} end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[5])
local recent = ARGV[2] .. ARGV[3]
if redis.call('TYPE', recent).ok ~= 'zset' then redis.call('DEL', recent) end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZADD', recent, now, ARGV[6])
redis.call('PEXPIRE', recent, ARGV[9])
return {ARGV[3], redis.call('GETRANGE', key, 0, tonumber(ARGV[8]))}
"""


@dataclass
class WrongWorker(TriadError):
    """A socket's `join` reached a worker that does not hold the consult: connect to `owner`."""

    owner: WorkerEntry | None = None


class Placement:
    def __init__(
        self,
        redis: Redis,
        keys: ClusterKeys,
        registry: NodeRegistry,
        *,
        ttl_seconds: float,
        prefer_node: str | None = None,
    ) -> None:
        self._keys = keys
        self._registry = registry
        self._ttl_ms = int(ttl_seconds * 1000)
        self._prefer_node = prefer_node
        self._claim = redis.register_script(_CLAIM)

    @property
    def origins(self) -> frozenset[str]:
        """The browser origins of every live worker and its node's pages."""
        return self._registry.origins

    def on_leave(self, handler: LeaveHandler) -> Callable[[], None]:
        """`handler` runs whenever this worker stops serving its rooms (fenced)."""
        return self._registry.on_leave(handler)

    @property
    def me(self) -> WorkerId:
        return self._registry.me.worker_id

    @property
    def keys(self) -> ClusterKeys:
        return self._keys

    async def holder(self, consult_id: ConsultId) -> WorkerId | None:
        """The live worker the consult is placed on, without placing it (None: not placed, or
        its worker is gone, so no live room holds it). Raises RedisError."""
        found = await self._call(consult_id, candidate="", lapsed=b"")
        return found.worker_id if isinstance(found, WorkerEntry) else None

    async def owner(self, consult_id: ConsultId) -> WorkerEntry:
        """The worker that holds the consult, placing it first when it is not placed (or
        its worker is gone). Raises `placement_unavailable` when Redis cannot answer or no
        worker is live."""
        if self._registry.fenced:  # its view of the registry is not to be trusted now
            raise _unavailable()
        try:
            return await self._owner(consult_id)
        except (RedisError, TimeoutError) as exc:
            log.error("cluster.placement_failed", **logs.failure(exc))
            raise _unavailable() from None

    async def require_here(self, consult_id: ConsultId) -> None:
        """For a socket's `join`: pass when this worker holds the consult, else refuse with
        `wrong_worker` naming the worker that does."""
        owner = await self.owner(consult_id)
        if owner.worker_id != self.me:
            log.info("cluster.wrong_worker", consult_id=consult_id, worker=owner.worker_id)
            raise WrongWorker(
                ErrorCode.WRONG_WORKER,
                "this consult is served by another worker: connect there",
                owner=owner,
            )

    async def _owner(self, consult_id: ConsultId) -> WorkerEntry:
        found = await self._call(consult_id, candidate="", lapsed=b"")
        if isinstance(found, WorkerEntry):
            return found
        lapsed = found
        for _ in range(2):  # a candidate that lapses between the listing and the claim
            candidate = self._choose(await self._registry.live())
            found = await self._call(consult_id, candidate=candidate, lapsed=lapsed)
            if isinstance(found, WorkerEntry):
                if found.worker_id == candidate:  # else another worker's choice won the race
                    log.info("cluster.placed", consult_id=consult_id, worker=candidate)
                return found
            lapsed = found
        raise _unavailable()

    def _choose(self, live: list[LiveWorker]) -> WorkerId:
        serving = [w for w in live if not w.entry.draining]  # a stopping worker takes none
        preferred = [w for w in serving if w.entry.node_id == self._prefer_node]
        candidates = preferred or serving
        if not candidates:
            raise _unavailable()
        best = min(candidates, key=lambda w: (w.load, w.entry.worker_id))
        return best.entry.worker_id

    async def _call(
        self, consult_id: ConsultId, *, candidate: str, lapsed: bytes
    ) -> WorkerEntry | bytes:
        """The owner's entry, or the id (as stored) of a placement whose worker is gone (b''
        for none)."""
        async with asyncio.timeout(self._registry.call_timeout):
            raw = await self._claim(
                keys=[self._keys.placement(consult_id)],
                args=[
                    self._keys.worker_prefix,
                    self._keys.recent_prefix,
                    candidate,
                    lapsed,
                    self._ttl_ms,
                    consult_id,
                    MAX_ID_BYTES,
                    MAX_ENTRY_BYTES,
                    self._registry.recent_placement_ms,
                ],
            )
        if not isinstance(raw, list) or not raw or not isinstance(raw[0], bytes):
            return b""
        owner: bytes = raw[0]
        if len(raw) < 2:
            return owner
        try:
            entry = WorkerEntry.decode(raw[1] if isinstance(raw[1], bytes) else b"")
        except (ValueError, TypeError):
            entry = None
        if entry is None or entry.worker_id.encode() != owner:
            # Placed on an id whose entry is not one of ours: replace it like a lapsed one.
            log.warning("cluster.entry_malformed")
            return owner
        return entry


def _unavailable() -> TriadError:
    return TriadError(
        ErrorCode.PLACEMENT_UNAVAILABLE, "no worker can take this consult right now; try again"
    )
