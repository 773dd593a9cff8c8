"""What is deleted when it has served its purpose: idempotency keys once no retry can come,
webhook events (with their deliveries and attempts) once delivered or failed and past their
history's retention, and, where the deployment sets a retention, audit events past it.

Deletes run in bounded batches, each its own transaction, so a prune never holds a long lock
on a busy table. They are idempotent: several workers (or `triad prune` beside a server) may
prune at once and simply find less to delete.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Table, delete, select, tuple_

from .. import logs
from ..db.engine import Database
from ..db.models import (
    AuditEvent,
    Base,
    IdempotencyKey,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEvent,
)

log = logs.get(__name__)

MAX_BATCH = 100_000


@dataclass(frozen=True)
class RetentionPolicy:
    """How long each kind of row is kept; `audit` None keeps audit events for ever."""

    idempotency: timedelta
    audit: timedelta | None = None
    webhooks: timedelta = timedelta(days=30)
    batch: int = 1000

    def __post_init__(self) -> None:
        if self.idempotency <= timedelta(0):
            raise ValueError("idempotency keys must be kept for some time")
        if self.webhooks <= timedelta(0):
            raise ValueError("webhook history must be kept for some time")
        if self.audit is not None and self.audit <= timedelta(0):
            raise ValueError("an audit retention must be positive (or None: for ever)")
        if not 1 <= self.batch <= MAX_BATCH:
            raise ValueError(f"a batch is 1 to {MAX_BATCH} rows")


@dataclass(frozen=True)
class Pruned:
    idempotency_keys: int = 0
    audit_events: int = 0
    webhook_events: int = 0


class Retention:
    def __init__(
        self, db: Database, policy: RetentionPolicy, clock: Callable[[], datetime]
    ) -> None:
        self._db = db
        self._policy = policy
        self._clock = clock

    @property
    def policy(self) -> RetentionPolicy:
        return self._policy

    async def prune(self) -> Pruned:
        """Delete what is past its retention, as of now."""
        now = self._clock()
        keys = await self._delete(
            Base.metadata.tables[IdempotencyKey.__tablename__],
            IdempotencyKey.created_at < now - self._policy.idempotency,
        )
        events = 0
        if self._policy.audit is not None:
            events = await self._delete(
                Base.metadata.tables[AuditEvent.__tablename__],
                AuditEvent.at < now - self._policy.audit,
            )
        return Pruned(keys, events, await self._prune_webhooks(now - self._policy.webhooks))

    async def _prune_webhooks(self, before: datetime) -> int:
        """Events written before `before` that no delivery still waits on, with their
        deliveries and attempts (children first: the keys refer upwards)."""
        pending = (
            select(WebhookDelivery.id)
            .where(
                WebhookDelivery.event_seq == WebhookEvent.seq, WebhookDelivery.state == "pending"
            )
            .exists()
        )
        done = select(WebhookEvent.seq).where(
            WebhookEvent.created_at < before, WebhookEvent.fanned_out.is_(True), ~pending
        )
        deliveries = select(WebhookDelivery.id).where(WebhookDelivery.event_seq.in_(done))
        await self._delete(_table(WebhookAttempt), WebhookAttempt.delivery_id.in_(deliveries))
        await self._delete(_table(WebhookDelivery), WebhookDelivery.event_seq.in_(done))
        return await self._delete(_table(WebhookEvent), WebhookEvent.seq.in_(done))

    async def _delete(self, table: Table, expired: ColumnElement[bool]) -> int:
        """Every row of `table` that is `expired`, a batch per transaction."""
        key = list(table.primary_key.columns)
        total = 0
        while True:
            batch = select(*key).where(expired).order_by(*key).limit(self._policy.batch)
            target = key[0].in_(batch) if len(key) == 1 else tuple_(*key).in_(batch)
            async with self._db.engine.begin() as conn:
                deleted = (await conn.execute(delete(table).where(target))).rowcount
            total += deleted
            if deleted < self._policy.batch:
                return total

    @contextlib.asynccontextmanager
    async def periodic(self, every: float) -> AsyncIterator[None]:
        """Prune every `every` seconds while the context is open (the server's task)."""
        task = asyncio.get_running_loop().create_task(self._run(every), name="retention")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, every: float) -> None:
        # Started at a random point of the first interval: the nodes of a deployment (and a
        # restarted worker) do not all prune at once.
        await asyncio.sleep(random.uniform(0, every))  # noqa: S311 (not a secret)
        while True:
            try:
                pruned = await self.prune()
            except Exception as exc:  # the next round tries again; the server goes on
                log.error("retention.prune_failed", error=type(exc).__name__)
            else:
                if pruned != Pruned():
                    log.info(
                        "retention.pruned",
                        idempotency_keys=pruned.idempotency_keys,
                        audit_events=pruned.audit_events,
                        webhook_events=pruned.webhook_events,
                    )
            await asyncio.sleep(every)


def _table(model: type[Base]) -> Table:
    return Base.metadata.tables[model.__tablename__]
