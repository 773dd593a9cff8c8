"""Delivery of the outbox: every worker runs a dispatcher; each round it fans new events out
into deliveries (one per subscribed endpoint), claims due deliveries that head their
consult's queue at their endpoint, attempts them, and records each attempt.

Claims are what make one attempt per event at a time across workers and nodes: a claim
is a lease written in its own short transaction (on PostgreSQL the candidate rows are
locked `FOR UPDATE SKIP LOCKED`, so two workers never claim the same row), and a result is
written only under the lease that was claimed. Order per consult: a delivery is claimable
only when no earlier delivery of its consult to its endpoint is still pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from .. import logs, metrics
from ..consults.outbox import open_event
from ..crypto import KeyRing
from ..db.engine import Database
from ..db.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from ..metrics import WebhookOutcome
from . import signing
from .endpoints import signing_secrets
from .history import AttemptError, DeliveryState
from .policy import DeliveryPolicy
from .urls import AddressRefused, UrlRefused, check_url, resolver

log = logs.get(__name__)

# Fan-out runs in one worker at a time (PostgreSQL advisory lock, held by its transaction), so
# the deliveries of one consult's events are written in the order of the events.
_FANOUT_LOCK = 0x7472696164_01  # "triad" 01
_FANOUT_BATCH = 200
_PENDING = DeliveryState.PENDING.value


@dataclass(frozen=True)
class Claim:
    delivery_id: int
    lease: str
    message_id: str
    event_type: str
    created_at: datetime
    data: Mapping[str, Any]
    url: str
    secrets: tuple[str, ...]
    manual: bool


@dataclass(frozen=True)
class Outcome:
    succeeded: bool
    status_code: int | None
    error: AttemptError | None


class WebhookDispatcher:
    def __init__(
        self,
        db: Database,
        keyring: KeyRing,
        clock: Callable[[], datetime],
        policy: DeliveryPolicy,
        *,
        user_agent: str = "Triad-Webhooks",
    ) -> None:
        self._db = db
        self._keyring = keyring
        self._clock = clock
        self._policy = policy
        self._user_agent = user_agent
        self._http: aiohttp.ClientSession | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._closed = False

    def start(self) -> None:
        if self._loop_task is not None or self._closed:
            return
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(resolver=resolver(self._policy.allow_private)),
            timeout=aiohttp.ClientTimeout(total=self._policy.timeout),
            headers={"User-Agent": self._user_agent},
        )
        self._loop_task = asyncio.get_running_loop().create_task(self._run(), name="webhooks")

    async def close(self) -> None:
        """Cancel the loop and the attempts under way, then wait for them. Safe twice. An
        attempt cut short keeps its lease until it lapses; then it is attempted again."""
        self._closed = True
        tasks = [t for t in (self._loop_task, *self._inflight) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loop_task = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.fan_out()
                metrics.set_webhook_outbox_age(await self.oldest_waiting())
                free = self._policy.concurrency - len(self._inflight)
                if free > 0:
                    for claim in await self.claim(free):
                        task = asyncio.get_running_loop().create_task(self._deliver(claim))
                        self._inflight.add(task)
                        task.add_done_callback(self._attempt_done)
            except Exception as exc:  # the database away for a moment: try again next poll
                log.warning("webhooks.round_failed", **logs.failure(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._policy.poll)

    def _attempt_done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        exc = None if task.cancelled() else task.exception()
        if exc is not None:
            log.error("webhooks.attempt_task_failed", **logs.failure(exc))
        self._wake.set()  # the next event of its consult may be due now

    async def oldest_waiting(self) -> float | None:
        """Seconds since the oldest event not yet delivered everywhere it is due was written
        (None: nothing waits): a growing age is an endpoint down or slow."""
        async with self._db.sessions() as session:
            unfanned = await session.scalar(
                select(func.min(WebhookEvent.created_at)).where(WebhookEvent.fanned_out.is_(False))
            )
            pending = await session.scalar(
                select(func.min(WebhookEvent.created_at))
                .join(WebhookDelivery, WebhookDelivery.event_seq == WebhookEvent.seq)
                .where(WebhookDelivery.state == _PENDING)
            )
        oldest = min((t for t in (unfanned, pending) if t is not None), default=None)
        return None if oldest is None else (self._clock() - oldest).total_seconds()

    async def fan_out(self) -> int:
        """Deliveries for events not yet fanned out, one per live endpoint of the event's
        platform that subscribed to its type. Returns the events fanned out."""
        try:
            return await self._fan_out()
        except IntegrityError:
            # Another process fanned the same events out first (SQLite has no advisory lock;
            # the deliveries' unique key refused the copies): nothing of this round stands.
            log.debug("webhooks.fan_out_raced")
            return 0

    async def _fan_out(self) -> int:
        now = self._clock()
        window = timedelta(seconds=self._policy.retry_window)
        async with self._db.sessions.begin() as session:
            postgres = self._db.engine.dialect.name == "postgresql"
            if postgres and not await session.scalar(
                select(func.pg_try_advisory_xact_lock(_FANOUT_LOCK))
            ):
                return 0  # another worker is fanning out
            events = list(
                await session.scalars(
                    select(WebhookEvent)
                    .where(WebhookEvent.fanned_out.is_(False))
                    .order_by(WebhookEvent.seq)
                    .limit(_FANOUT_BATCH)
                )
            )
            if not events:
                return 0
            endpoints = await session.scalars(
                select(WebhookEndpoint).where(
                    WebhookEndpoint.platform_id.in_({e.platform_id for e in events}),
                    WebhookEndpoint.deleted_at.is_(None),
                )
            )
            by_platform: dict[str, list[WebhookEndpoint]] = {}
            for endpoint in endpoints:
                by_platform.setdefault(endpoint.platform_id, []).append(endpoint)
            for event in events:
                event_type = open_event(self._keyring, event).type
                for endpoint in by_platform.get(event.platform_id, ()):
                    if event_type not in endpoint.event_types:
                        continue
                    session.add(
                        WebhookDelivery(
                            event_seq=event.seq,
                            endpoint_id=endpoint.id,
                            consult_id=event.consult_id,
                            state=_PENDING,
                            attempts=0,
                            next_attempt_at=now,
                            give_up_at=event.created_at + window,
                            created_at=now,
                        )
                    )
                event.fanned_out = True
        return len(events)

    async def claim(self, limit: int) -> list[Claim]:
        """Up to `limit` due deliveries, each the earliest pending one of its consult at its
        endpoint and not claimed by anyone, now leased to this worker."""
        now = self._clock()
        lease = secrets.token_hex(8)
        # Aliased: inside the UPDATE below, the table's own name would mean the updated row.
        candidate = aliased(WebhookDelivery, name="candidate")
        earlier = aliased(WebhookDelivery, name="earlier")
        heads_queue = ~exists().where(
            earlier.endpoint_id == candidate.endpoint_id,
            earlier.consult_id == candidate.consult_id,
            earlier.state == _PENDING,
            earlier.event_seq < candidate.event_seq,
        )
        due = (
            select(candidate.id)
            .where(
                candidate.state == _PENDING,
                candidate.next_attempt_at <= now,
                or_(candidate.lease_until.is_(None), candidate.lease_until < now),
                heads_queue,
            )
            .order_by(candidate.next_attempt_at, candidate.id)
            .limit(limit)
        )
        async with self._db.sessions() as session:
            # Mostly nothing is due: a read finds that without taking SQLite's write lock
            # (which the notes log writer wants) every poll.
            if await session.scalar(select(due.exists())) is not True:
                return []
        async with self._db.sessions.begin() as session:
            # One statement: on SQLite it runs under the database's write lock (the driver
            # would run a SELECT apart, outside any transaction), on PostgreSQL the rows it
            # picks are locked, and rows another worker holds are skipped.
            ids = list(
                await session.scalars(
                    update(WebhookDelivery)
                    .where(
                        WebhookDelivery.id.in_(
                            due.with_for_update(skip_locked=True).scalar_subquery()
                        )
                    )
                    .values(lease=lease, lease_until=now + self._policy.lease)
                    .returning(WebhookDelivery.id)
                )
            )
            if not ids:
                return []
            rows = (
                await session.execute(
                    select(WebhookDelivery, WebhookEvent, WebhookEndpoint)
                    .join(WebhookEvent, WebhookEvent.seq == WebhookDelivery.event_seq)
                    .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                    .where(WebhookDelivery.id.in_(ids))
                )
            ).all()
            return [self._claim(lease, now, *row) for row in rows]

    def _claim(
        self,
        lease: str,
        now: datetime,
        delivery: WebhookDelivery,
        event: WebhookEvent,
        endpoint: WebhookEndpoint,
    ) -> Claim:
        opened = open_event(self._keyring, event)
        return Claim(
            delivery_id=delivery.id,
            lease=lease,
            message_id=event.id,
            event_type=opened.type.value,
            created_at=event.created_at,
            data=opened.data,
            url=endpoint.url,
            secrets=tuple(signing_secrets(self._keyring, endpoint, now)),
            manual=delivery.manual,
        )

    async def _deliver(self, claim: Claim) -> None:
        started = time.monotonic()
        outcome = await self.attempt(claim)
        latency_ms = round((time.monotonic() - started) * 1000)
        await self.record(claim, outcome, latency_ms)
        log.info(
            "webhooks.attempted",
            message_id=claim.message_id,
            event_type=claim.event_type,
            succeeded=outcome.succeeded,
            status=outcome.status_code,
            error=outcome.error,
            latency_ms=latency_ms,
        )

    async def attempt(self, claim: Claim) -> Outcome:
        """One POST of the event. The receiver's answer body is never read; a redirect is not
        followed (it would leave the registered URL)."""
        if self._http is None:
            raise RuntimeError("the dispatcher is not started")
        try:
            check_url(
                claim.url,
                require_https=self._policy.require_https,
                allow_private=self._policy.allow_private,
            )
        except UrlRefused:
            return Outcome(False, None, AttemptError.ADDRESS_REFUSED)
        payload = signing.body(claim.event_type, claim.created_at, claim.data)
        headers = signing.headers(claim.message_id, claim.secrets, self._clock(), payload)
        try:
            async with self._http.post(
                claim.url, data=payload.encode(), headers=headers, allow_redirects=False
            ) as response:
                status = response.status
        except TimeoutError:
            return Outcome(False, None, AttemptError.TIMEOUT)
        except aiohttp.ClientConnectorDNSError as exc:
            refused = isinstance(exc.os_error, AddressRefused)
            return Outcome(
                False,
                None,
                AttemptError.ADDRESS_REFUSED if refused else AttemptError.CONNECT_FAILED,
            )
        except (aiohttp.ClientError, OSError):
            return Outcome(False, None, AttemptError.CONNECT_FAILED)
        if 200 <= status < 300:
            return Outcome(True, status, None)
        return Outcome(False, status, AttemptError.HTTP_STATUS)

    async def record(self, claim: Claim, outcome: Outcome, latency_ms: int) -> None:
        """The attempt, and the delivery's next state under the claim's lease (a lease that
        lapsed meanwhile belongs to another attempt: the delivery is left to it)."""
        now = self._clock()
        async with self._db.sessions.begin() as session:
            delivery = await session.scalar(
                select(WebhookDelivery).where(WebhookDelivery.id == claim.delivery_id)
            )
            if delivery is None:
                return
            session.add(
                WebhookAttempt(
                    delivery_id=delivery.id,
                    endpoint_id=delivery.endpoint_id,
                    at=now,
                    outcome=(
                        DeliveryState.SUCCEEDED if outcome.succeeded else DeliveryState.FAILED
                    ).value,
                    status_code=outcome.status_code,
                    latency_ms=latency_ms,
                    error=outcome.error.value if outcome.error else None,
                    manual=claim.manual,
                )
            )
            attempts = delivery.attempts + 1
            values: dict[str, Any] = {
                "attempts": attempts,
                "lease": None,
                "lease_until": None,
                "manual": False,
            }
            if outcome.succeeded:
                values.update(state=DeliveryState.SUCCEEDED.value, finished_at=now)
                counted = WebhookOutcome.DELIVERED
            elif now >= delivery.give_up_at:
                values.update(state=DeliveryState.FAILED.value, finished_at=now)
                counted = WebhookOutcome.ABANDONED
            else:
                values.update(next_attempt_at=now + self._policy.retry_delay(attempts))
                counted = WebhookOutcome.FAILED
            await session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id == claim.delivery_id,
                    WebhookDelivery.lease == claim.lease,
                    WebhookDelivery.state == _PENDING,
                )
                .values(**values)
            )
        metrics.count_webhook_delivery(counted)
