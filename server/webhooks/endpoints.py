"""A platform's webhook endpoints: registered with a URL (`urls.check_url`) and the event types
they want, each with its own signing secret (shown once, sealed at rest), rotated with an
overlap during which both secrets sign, deleted (their pending deliveries with them)."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..consults import audit
from ..consults.audit import AuditAction
from ..consults.model import Actor, PlatformCaller
from ..consults.outbox import WebhookEventType
from ..crypto import KeyRing
from ..db.engine import Database
from ..db.models import WebhookDelivery, WebhookEndpoint
from ..db.sealing import SealedColumn
from ..errors import ErrorCode, TriadError
from ..ids import WebhookEndpointId, new_webhook_endpoint_id
from .urls import UrlRefused, check_url

SECRET_PREFIX = "whsec_"  # noqa: S105 (the Standard Webhooks prefix, not a secret)
_SECRET_BYTES = 32


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 256 random bits in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode()


def secret_aad(endpoint_id: str, which: str) -> bytes:
    return f"webhook-endpoint:{endpoint_id}:{which}".encode()


SEALED_COLUMNS = (
    SealedColumn("webhook_endpoints", "secret_sealed", ("id",), lambda i: secret_aad(i, "current")),
    SealedColumn(
        "webhook_endpoints", "previous_secret_sealed", ("id",), lambda i: secret_aad(i, "previous")
    ),
)


@dataclass(frozen=True)
class EndpointView:
    id: WebhookEndpointId
    url: str
    event_types: tuple[WebhookEventType, ...]
    created_at: datetime
    # While set and in the future, the previous secret signs beside the current one.
    previous_secret_until: datetime | None


@dataclass(frozen=True)
class EndpointSecret:
    """An endpoint with its new secret: answered once, never readable again."""

    endpoint: EndpointView
    secret: str = field(repr=False)


@dataclass(frozen=True)
class EndpointRules:
    require_https: bool
    allow_private: bool
    max_per_platform: int

    def __post_init__(self) -> None:
        if self.max_per_platform < 1:
            raise ValueError("a platform must be allowed at least one endpoint")


def view_of(row: WebhookEndpoint) -> EndpointView:
    return EndpointView(
        id=WebhookEndpointId(row.id),
        url=row.url,
        event_types=tuple(WebhookEventType(t) for t in row.event_types),
        created_at=row.created_at,
        previous_secret_until=row.previous_until,
    )


def signing_secrets(keyring: KeyRing, row: WebhookEndpoint, now: datetime) -> list[str]:
    """The secrets that sign a delivery now: the current one, and the previous one while its
    overlap lasts (Standard Webhooks allows several signatures in one header)."""
    found = [keyring.open(row.secret_sealed, secret_aad(row.id, "current")).decode()]
    if row.previous_secret_sealed is not None and row.previous_until and row.previous_until > now:
        found.append(
            keyring.open(row.previous_secret_sealed, secret_aad(row.id, "previous")).decode()
        )
    return found


class WebhookEndpoints:
    def __init__(
        self,
        db: Database,
        keyring: KeyRing,
        clock: Callable[[], datetime],
        rules: EndpointRules,
    ) -> None:
        self._db = db
        self._keyring = keyring
        self._clock = clock
        self._rules = rules

    async def create(
        self, caller: PlatformCaller, url: str, event_types: Sequence[WebhookEventType]
    ) -> EndpointSecret:
        try:
            checked = check_url(
                url,
                require_https=self._rules.require_https,
                allow_private=self._rules.allow_private,
            )
        except UrlRefused as refused:
            raise TriadError(ErrorCode.WEBHOOK_URL_REFUSED, str(refused)) from None
        now = self._clock()
        endpoint_id = new_webhook_endpoint_id()
        secret = new_secret()
        async with self._db.sessions.begin() as session:
            held = await session.scalar(
                select(func.count())
                .select_from(WebhookEndpoint)
                .where(
                    WebhookEndpoint.platform_id == caller.platform_id,
                    WebhookEndpoint.deleted_at.is_(None),
                )
            )
            if (held or 0) >= self._rules.max_per_platform:
                raise TriadError(
                    ErrorCode.WEBHOOK_ENDPOINTS_LIMIT_REACHED,
                    f"a platform holds at most {self._rules.max_per_platform} endpoints",
                )
            row = WebhookEndpoint(
                id=endpoint_id,
                platform_id=caller.platform_id,
                url=checked,
                event_types=[WebhookEventType(t).value for t in dict.fromkeys(event_types)],
                secret_sealed=self._keyring.seal(
                    secret.encode(), secret_aad(endpoint_id, "current")
                ),
                created_at=now,
            )
            session.add(row)
            self._audit(session, caller, AuditAction.WEBHOOK_ENDPOINT_CREATED, endpoint_id)
        return EndpointSecret(view_of(row), secret)

    async def list(self, caller: PlatformCaller) -> list[EndpointView]:
        async with self._db.sessions() as session:
            rows = await session.scalars(
                select(WebhookEndpoint)
                .where(
                    WebhookEndpoint.platform_id == caller.platform_id,
                    WebhookEndpoint.deleted_at.is_(None),
                )
                .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
            )
            return [view_of(row) for row in rows]

    async def get(self, caller: PlatformCaller, endpoint_id: str) -> EndpointView:
        async with self._db.sessions() as session:
            return view_of(await owned(session, caller, endpoint_id))

    async def rotate(
        self, caller: PlatformCaller, endpoint_id: str, overlap: timedelta
    ) -> EndpointSecret:
        """A new secret; the old one signs beside it for `overlap` (0: retired now)."""
        now = self._clock()
        secret = new_secret()
        async with self._db.sessions.begin() as session:
            row = await owned(session, caller, endpoint_id, for_update=True)
            current = self._keyring.open(row.secret_sealed, secret_aad(row.id, "current"))
            row.previous_secret_sealed = self._keyring.seal(current, secret_aad(row.id, "previous"))
            row.previous_until = now + overlap
            row.secret_sealed = self._keyring.seal(secret.encode(), secret_aad(row.id, "current"))
            self._audit(session, caller, AuditAction.WEBHOOK_ENDPOINT_SECRET_ROTATED, row.id)
            return EndpointSecret(view_of(row), secret)

    async def delete(self, caller: PlatformCaller, endpoint_id: str) -> None:
        """Stops its deliveries: those pending are cancelled; the history stays readable to
        nobody (the endpoint is gone from the API) until retention prunes it."""
        now = self._clock()
        async with self._db.sessions.begin() as session:
            row = await owned(session, caller, endpoint_id, for_update=True)
            row.deleted_at = now
            await session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.endpoint_id == row.id, WebhookDelivery.state == "pending")
                .values(state="cancelled", finished_at=now, lease=None, lease_until=None)
            )
            self._audit(session, caller, AuditAction.WEBHOOK_ENDPOINT_DELETED, row.id)

    def _audit(
        self, session: AsyncSession, caller: PlatformCaller, action: AuditAction, endpoint_id: str
    ) -> None:
        audit.record(
            session,
            at=self._clock(),
            actor=Actor("platform", caller.key_id),
            action=action,
            platform_id=caller.platform_id,
            details={"endpoint_id": endpoint_id},
        )


async def owned(
    session: AsyncSession, caller: PlatformCaller, endpoint_id: str, *, for_update: bool = False
) -> WebhookEndpoint:
    """The caller's live endpoint; another platform's, a deleted one and none answer alike."""
    query = select(WebhookEndpoint).where(
        WebhookEndpoint.id == endpoint_id,
        WebhookEndpoint.platform_id == caller.platform_id,
        WebhookEndpoint.deleted_at.is_(None),
    )
    row = await session.scalar(query.with_for_update() if for_update else query)
    if row is None:
        raise TriadError(ErrorCode.WEBHOOK_ENDPOINT_NOT_FOUND, "no such webhook endpoint")
    return row
