"""REST rate limits: a token bucket per caller (API key, participant), in this process.

A bucket that has been idle long enough to be full again is the same as no bucket, so idle
buckets are dropped (oldest first, on every take) and memory follows the callers active in the
last `burst / rate` seconds; past `max_buckets` the least recently used goes anyway. Only
authenticated callers get a bucket, so a flood of made-up credentials cannot grow the table.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import ErrorCode, TriadError

RETRY_AFTER = "Retry-After"


@dataclass
class RateLimited(TriadError):
    """`rate_limited`, with the whole seconds until one more request would be let through."""

    retry_after: int = 1


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class KeyedLimiter:
    """Token buckets by caller key: `rate` requests a second, `burst` at once."""

    name: str
    rate: float
    burst: int
    max_buckets: int = 10_000
    clock: Callable[[], float] = time.monotonic
    _buckets: OrderedDict[str, _Bucket] = field(default_factory=OrderedDict, repr=False)

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1 or self.max_buckets < 1:
            raise ValueError("a rate limit needs a positive rate, burst and bucket count")

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str) -> None:
        """One request by `key`; raises `RateLimited` when its bucket is empty."""
        now = self.clock()
        self._evict_idle(now)
        bucket = self._buckets.pop(key, None) or _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        self._buckets[key] = bucket  # the most recently used end
        while len(self._buckets) > self.max_buckets:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return
        wait = math.ceil((1 - bucket.tokens) / self.rate)
        raise RateLimited(ErrorCode.RATE_LIMITED, "too many requests: slow down", [], max(1, wait))

    def _evict_idle(self, now: float) -> None:
        full_after = self.burst / self.rate
        while self._buckets:
            oldest = next(iter(self._buckets.values()))
            if now - oldest.at < full_after:
                return
            self._buckets.popitem(last=False)


@dataclass(frozen=True)
class RestLimits:
    """The app's REST limits: one table for API keys, one for participants (join tokens)."""

    platforms: KeyedLimiter
    participants: KeyedLimiter
