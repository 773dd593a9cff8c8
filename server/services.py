"""The long-lived services, opened and closed together by the app and by the command line."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from redis.asyncio import Redis

from .consults.access import ParticipantAccess
from .consults.access_events import (
    AccessEvents,
    LocalAccessEvents,
    RedisAccessEvents,
    channel_for,
)
from .consults.audit import ReadLog
from .consults.brief import BriefBook
from .consults.care import CareFacts
from .consults.checkins import CheckIns
from .consults.consent import ConsentBook
from .consults.lifecycle import ConsultLifecycle
from .consults.platforms import PlatformKeys
from .consults.retention import Retention, RetentionPolicy
from .consults.revocations import TokenRevocations
from .consults.service import ConsultService
from .crypto import KeyRing
from .db.engine import Database
from .ids import ConsultId, ParticipantId
from .notes.service import NotesService
from .rooms.commands import RoomRelay
from .rooms.media import metering
from .rooms.media.config import IceServer, MediaConfig, TurnAccess
from .rooms.media.ice import as_json, client_ice_servers
from .rooms.media.sfu import Sfu
from .rooms.registry import RoomRegistry
from .rooms.settings import RoomSettings
from .settings import Settings
from .webhooks.dispatcher import WebhookDispatcher
from .webhooks.endpoints import EndpointRules, WebhookEndpoints
from .webhooks.history import DeliveryHistory
from .webhooks.policy import DeliveryPolicy


@dataclass(frozen=True)
class Services:
    db: Database
    redis: Redis | None
    consults: ConsultService
    keys: PlatformKeys
    access: ParticipantAccess
    notes: NotesService
    rooms: RoomRegistry
    # What REST calls tell a live room, on whichever worker holds it.
    relay: RoomRelay
    consents: ConsentBook
    briefs: BriefBook
    checkins: CheckIns
    care: CareFacts
    reads: ReadLog
    access_events: AccessEvents
    revocations: TokenRevocations
    webhooks: WebhookEndpoints
    deliveries: DeliveryHistory
    retention: Retention
    # This process's rooms and seats into the gauges, its media tally into the counters
    # (`server/metrics.py`): before each /metrics answer, and every few seconds with workers.
    sample_metrics: Callable[[], None]


@asynccontextmanager
async def open_services(
    settings: Settings, keyring: KeyRing, clock: Callable[[], datetime]
) -> AsyncIterator[Services]:
    db = Database(settings.effective_database_url)
    redis: Redis | None = None
    stack = AsyncExitStack()
    try:
        await db.require_migrated()
        events: AccessEvents
        if settings.redis_url:
            redis = Redis.from_url(settings.redis_url)
            # Revocations reach the sockets of every process (and come from the command line).
            events = redis_events = RedisAccessEvents(redis, channel_for(settings.cluster_name))
            stack.push_async_callback(redis_events.close)
            await redis_events.start()
        else:
            events = LocalAccessEvents()
        revocations = TokenRevocations(db, events, clock)
        keys = PlatformKeys(db, keyring, clock, events)
        checkins = CheckIns(db, keyring, clock, max_per_consult=settings.checkins_max_per_consult)
        care = CareFacts(db, keyring, checkins, clock)
        notes = NotesService(
            db,
            keyring,
            clock,
            max_update_bytes=settings.notes_max_update_bytes,
            max_document_bytes=settings.notes_max_document_bytes,
            snapshot_every=settings.notes_snapshot_every,
        )
        stack.push_async_callback(notes.close)
        media = media_config(settings, lambda pid: participant_ice_servers(settings, pid, clock))
        rooms = RoomRegistry(
            settings=RoomSettings(
                reconnect_grace=settings.reconnect_grace_seconds,
                empty_room_grace=settings.empty_room_grace_seconds,
                overrun_grace=settings.consult_overrun_seconds,
                max_duration=settings.consult_max_seconds,
            ),
            revoker=revocations,
            clock=clock,
            records=ConsultLifecycle(db, keyring, clock),
            care=care,
            plans=SavedPlans(notes),
            media_factory=lambda on_active_speaker: Sfu(media, on_active_speaker),
            ice_servers=lambda pid: as_json(participant_ice_servers(settings, pid, clock)),
        )
        stack.push_async_callback(rooms.close)
        yield Services(
            db=db,
            redis=redis,
            keys=keys,
            consults=ConsultService(
                db,
                keyring,
                public_base_url=settings.base_url,
                token_ttl=timedelta(seconds=settings.join_token_ttl_seconds),
                clock=clock,
                revocations=revocations,
            ),
            access=ParticipantAccess(db, keys, settings.token_leeway_seconds),
            notes=notes,
            rooms=rooms,
            relay=RoomRelay(rooms),
            consents=ConsentBook(db, keyring, clock),
            briefs=BriefBook(db, keyring, clock),
            checkins=checkins,
            care=care,
            reads=ReadLog(db, clock),
            access_events=events,
            revocations=revocations,
            webhooks=WebhookEndpoints(
                db,
                keyring,
                clock,
                EndpointRules(
                    require_https=settings.mode == "production",
                    allow_private=settings.webhook_allow_private_addresses,
                    max_per_platform=settings.webhook_max_endpoints,
                ),
            ),
            deliveries=DeliveryHistory(db, keyring, clock),
            retention=Retention(db, retention_policy(settings), clock),
            sample_metrics=metrics_sampler(rooms),
        )
    finally:
        await stack.aclose()  # rooms first (they save plans), then notes
        if redis is not None:
            await redis.aclose()
        await db.close()


def retention_policy(settings: Settings) -> RetentionPolicy:
    days = settings.audit_retention_days
    return RetentionPolicy(
        idempotency=timedelta(hours=settings.idempotency_retention_hours),
        audit=timedelta(days=days) if days is not None else None,
        webhooks=timedelta(days=settings.webhook_history_days),
    )


def metrics_sampler(rooms: RoomRegistry) -> Callable[[], None]:
    def sample() -> None:
        rooms.sample_metrics()
        metering.flush()

    return sample


class SavedPlans:
    """The notes channel as the rooms' `PlanKeeper`."""

    def __init__(self, notes: NotesService) -> None:
        self._notes = notes

    async def save_plan(self, consult_id: ConsultId) -> str:
        plan = await self._notes.finalize(consult_id)
        await self._notes.unload(consult_id)
        return plan.id

    async def release(self, consult_id: ConsultId) -> None:
        await self._notes.unload(consult_id)


def webhook_dispatcher(
    settings: Settings,
    db: Database,
    keyring: KeyRing,
    clock: Callable[[], datetime],
    *,
    user_agent: str = "Triad-Webhooks",
) -> WebhookDispatcher:
    """The outbox's delivery, run by every worker of the server (not by the command line)."""
    return WebhookDispatcher(
        db,
        keyring,
        clock,
        DeliveryPolicy(
            timeout=settings.webhook_timeout_seconds,
            retry_base=settings.webhook_retry_base_seconds,
            retry_cap=settings.webhook_retry_cap_seconds,
            retry_window=settings.webhook_retry_window_seconds,
            poll=settings.webhook_poll_seconds,
            concurrency=settings.webhook_concurrency,
            require_https=settings.mode == "production",
            allow_private=settings.webhook_allow_private_addresses,
        ),
        user_agent=user_agent,
    )


def participant_ice_servers(
    settings: Settings, participant_id: ParticipantId, clock: Callable[[], datetime]
) -> tuple[IceServer, ...]:
    """A participant's browser's ICE servers, TURN credentials minted now (each join state and
    each offer carries its own)."""
    return client_ice_servers(
        participant_id,
        stun_urls=settings.stun_urls,
        turn_urls=settings.turn_urls,
        turn_secret=settings.turn_secret.get_secret_value() if settings.turn_secret else None,
        ttl_seconds=settings.turn_credential_ttl_seconds,
        now=clock().timestamp(),
    )


def media_config(
    settings: Settings,
    participant_ice: Callable[[ParticipantId], tuple[IceServer, ...]] | None = None,
) -> MediaConfig:
    udp_ports = settings.worker_udp_ports  # this worker's share of the range
    return MediaConfig(
        host_addresses=tuple(settings.ice_host_addresses),
        udp_port_min=udp_ports[0] if udp_ports else None,
        udp_port_max=udp_ports[1] if udp_ports else None,
        # The server's own peer connections use STUN (to learn a public address); TURN is for
        # browsers behind restrictive networks, and for the SFU only with TRIAD_SFU_TURN.
        ice_servers=(IceServer(urls=tuple(settings.stun_urls)),) if settings.stun_urls else (),
        turn=(
            TurnAccess(
                urls=tuple(settings.turn_urls),
                secret=settings.turn_secret.get_secret_value(),
                ttl_seconds=settings.turn_credential_ttl_seconds,
            )
            if settings.sfu_turn and settings.turn_urls and settings.turn_secret
            else None
        ),
        client_ice_servers=participant_ice,
        max_sdp_bytes=settings.max_sdp_bytes,
        max_remote_candidates=settings.ice_max_remote_candidates,
        allow_private_candidates=settings.ice_allow_private_candidates,
    )
