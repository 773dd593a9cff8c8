"""The REST rate limiter on its own: budgets per key, Retry-After, and memory bounded by
dropping idle buckets and, past the bound, the least recently used."""

from __future__ import annotations

import time

import pytest

from server.api.ratelimit import KeyedLimiter, RateLimited


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_limiter_refuses_past_the_burst_and_says_when() -> None:
    clock = FakeClock()
    limiter = KeyedLimiter("test", rate=0.5, burst=3, clock=clock)
    for _ in range(3):
        limiter.take("k")
    with pytest.raises(RateLimited) as refusal:
        limiter.take("k")
    assert refusal.value.retry_after == 2
    limiter.take("other")  # its own bucket
    clock.now += 2
    limiter.take("k")


def test_limiter_drops_idle_buckets_and_stays_bounded() -> None:
    clock = FakeClock()
    limiter = KeyedLimiter("test", rate=10, burst=5, max_buckets=100, clock=clock)
    for i in range(1000):
        limiter.take(f"k{i}")
    assert len(limiter) == 100  # least recently used beyond the bound
    clock.now += 0.6  # long enough for every bucket to be full again
    limiter.take("fresh")
    assert len(limiter) == 1


def test_limiter_flood_is_bounded_in_time() -> None:
    limiter = KeyedLimiter("test", rate=1, burst=1, max_buckets=10_000)
    started = time.monotonic()
    refused_count = 0
    for i in range(50_000):  # 5,000 callers, ten requests each
        try:
            limiter.take(f"k{i % 5_000}")
        except RateLimited:
            refused_count += 1
    assert len(limiter) <= 10_000
    assert refused_count > 0
    assert time.monotonic() - started < 30  # generous: a bound, not a benchmark
