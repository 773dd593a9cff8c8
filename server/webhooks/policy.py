"""How deliveries are attempted: each attempt's deadline, the backoff between attempts, how
long an event is retried, and how many attempts run at once."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class DeliveryPolicy:
    timeout: float
    retry_base: float
    retry_cap: float
    retry_window: float
    poll: float
    concurrency: int
    # Endpoint addresses (urls.py): https required, private addresses allowed.
    require_https: bool
    allow_private: bool

    def __post_init__(self) -> None:
        for name in ("timeout", "retry_base", "retry_cap", "retry_window", "poll"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.retry_cap < self.retry_base:
            raise ValueError("retry_cap must be at least retry_base")
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")

    @property
    def lease(self) -> timedelta:
        """How long a claim holds a delivery: the attempt's deadline and a margin to record
        it. A worker that died mid-attempt frees its claims when they lapse; one that records
        after its lease lapsed changes nothing (the delivery was claimed again)."""
        return timedelta(seconds=self.timeout + 5)

    def retry_delay(self, failed_attempts: int, rng: random.Random | None = None) -> timedelta:
        """Exponential backoff from `retry_base`, doubling per failed attempt up to
        `retry_cap`, with "equal jitter": half the step fixed, half random, so receivers
        coming back are not hit by every sender at once."""
        step = min(self.retry_cap, self.retry_base * 2 ** min(max(failed_attempts - 1, 0), 60))
        pick = (rng or random).uniform(0, step / 2)
        return timedelta(seconds=step / 2 + pick)
