"""`create_app(settings)`: wires the database, Redis, services, REST routes and the web client."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from . import logs
from .api import routes
from .api.context import CLUSTER, METRICS_ACCESS, RATE_LIMITS, SERVICES
from .api.metrics import http_metrics_middleware, sampling
from .api.metrics_access import MetricsAccess
from .api.problems import problem_middleware
from .api.ratelimit import KeyedLimiter, RestLimits
from .cluster.entry import WorkerLoad
from .cluster.node import Membership, membership
from .crypto import KeyRing, development_keyring
from .services import Services, open_services, webhook_dispatcher
from .settings import Settings
from .signaling import asyncapi
from .signaling import server as signaling
from .signaling.deps import SignalingDeps, SocketLimits
from .webhooks.dispatcher import WebhookDispatcher

SETTINGS = web.AppKey("triad.settings", Settings)
SIGNALING = web.AppKey("triad.signaling", SignalingDeps)
WEBHOOKS = web.AppKey("triad.webhooks", WebhookDispatcher)
WEB_DIR = Path(__file__).resolve().parent.parent / "web"
# The embed SDK (web/embed.js built): a classic script and an ES module (docs/embedding.md).
EMBED_SDK_PATHS = frozenset({"/static/embed.js", "/static/embed.mjs"})


def utc_now() -> datetime:
    return datetime.now(UTC)


def package_version() -> str:
    try:
        return version("triad")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def keyring_for(settings: Settings) -> KeyRing:
    if settings.encryption_keys is not None:
        return KeyRing.parse(settings.encryption_keys.get_secret_value())
    return development_keyring(settings.data_dir)


def create_app(settings: Settings, *, clock: Callable[[], datetime] = utc_now) -> web.Application:
    settings.check()
    keyring = keyring_for(settings)
    app = web.Application(
        client_max_size=settings.max_request_bytes,
        middlewares=[
            # Outermost: it counts the status the caller got, problems included.
            http_metrics_middleware,
            logs.request_id_middleware,
            security_headers(settings),
            problem_middleware,
        ],
    )
    app[SETTINGS] = settings
    app[RATE_LIMITS] = rest_limits(settings)
    app[METRICS_ACCESS] = MetricsAccess.of(settings)

    async def services_ctx(app: web.Application) -> AsyncIterator[None]:
        async with (
            open_services(settings, keyring, clock) as services,
            # After the services (it reads the rooms' load), closed before them.
            membership(
                settings, services.redis, lambda: WorkerLoad(*services.rooms.occupancy())
            ) as member,
            # REST calls reach the room on the worker that holds the consult.
            services.relay.clustered(member, services.redis),
            # One worker per node prunes (the deletes are idempotent across nodes).
            services.retention.periodic(settings.retention_prune_interval_seconds)
            if settings.worker_index == 0
            else contextlib.nullcontext(),
            sampling(services.sample_metrics),
        ):
            app[SERVICES] = services
            app[CLUSTER] = member
            app[SIGNALING] = signaling_deps(settings, services, member)
            # Closed first: no attempt is recorded into a closing database.
            dispatcher = app[WEBHOOKS] = webhook_dispatcher(
                settings,
                services.db,
                keyring,
                clock,
                user_agent=f"Triad-Webhooks/{package_version()}",
            )
            if settings.webhook_delivery:
                dispatcher.start()
            try:
                yield
            finally:
                await dispatcher.close()

    app.cleanup_ctx.append(services_ctx)
    routes.setup(app, package_version(), asyncapi=asyncapi.build(version=package_version()))
    signaling.attach(app, settings, lambda: app[SIGNALING])
    _add_web_client(app)
    return app


async def drain_worker(app: web.Application, stop: asyncio.Event) -> None:
    """A worker of several told to stop: drain (`Membership.drain`) for at most
    `TRIAD_DRAIN_SECONDS`, or until `stop` is set again. One process has nothing to drain."""
    member, settings = app[CLUSTER], app[SETTINGS]
    if member is None or settings.drain_seconds <= 0:
        return
    rooms = app[SERVICES].rooms
    await member.drain(lambda: rooms.occupancy()[0], settings.drain_seconds, stop)


def rest_limits(settings: Settings) -> RestLimits:
    return RestLimits(
        platforms=KeyedLimiter(
            "api_key", settings.api_key_requests_per_second, settings.api_key_request_burst
        ),
        participants=KeyedLimiter(
            "join_token", settings.join_token_requests_per_second, settings.join_token_request_burst
        ),
    )


def signaling_deps(
    settings: Settings, services: Services, member: Membership | None = None
) -> SignalingDeps:
    return SignalingDeps(
        access=services.access,
        rooms=services.rooms,
        notes=services.notes,
        limits=SocketLimits(
            events_per_second=settings.socket_events_per_second,
            event_burst=settings.socket_event_burst,
            joins_per_second=settings.socket_joins_per_second,
            join_burst=settings.socket_join_burst,
            join_timeout=settings.socket_join_timeout_seconds,
            max_unjoined_per_participant=settings.socket_max_unjoined_per_participant,
            token_leeway=settings.token_leeway_seconds,
            access_recheck=settings.socket_access_recheck_seconds,
        ),
        access_events=services.access_events,
        placement=member.placement if member is not None else None,
    )


def _add_web_client(app: web.Application) -> None:
    # Only the build output (web/dist, made by scripts/install from web/src and web/public) is
    # served: never web/src, web/node_modules or the npm files.
    dist = WEB_DIR / "dist"
    join_page = dist / "join.html"

    def not_built() -> web.HTTPServiceUnavailable:
        return web.HTTPServiceUnavailable(
            text="The web client is not built: run scripts/install.\n",
            headers={"Cache-Control": "no-store"},
        )

    async def join(_request: web.Request) -> web.FileResponse:
        if not join_page.is_file():
            raise not_built()
        # no-store: the page is tiny, and a cached copy would outlive a fixed bug or a new release.
        return web.FileResponse(
            join_page,
            headers={"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"},
        )

    app.router.add_get("/c/{consult_id}", join, name="join_page")
    if dist.is_dir():
        app.router.add_static("/static/", dist, name="static")
    else:  # a source tree whose client was never built: the API still serves

        async def static(_request: web.Request) -> web.StreamResponse:
            raise not_built()

        app.router.add_get("/static/{path:.*}", static, name="static")


def security_headers(settings: Settings) -> Middleware:
    # Only the listed platform origins may frame the consult room (the embed SDK's host pages).
    ancestors = " ".join(["'self'", *settings.allowed_origins])

    def policy(workers: frozenset[str]) -> str:
        # Several workers: the page's socket may go to any live worker (the registry's origins).
        connect = " ".join(["'self'", *sorted(socket_sources(workers))])
        return (
            "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
            f"connect-src {connect}; object-src 'none'; base-uri 'none'; "
            f"frame-ancestors {ancestors}"
        )

    policies = {frozenset[str](): policy(frozenset())}

    # Production serves over https (checked at start): browsers must never fall back to http.
    hsts = "max-age=31536000; includeSubDomains" if settings.mode == "production" else None

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "no-referrer")
        if hsts:
            headers.setdefault("Strict-Transport-Security", hsts)
        if request.path.startswith("/api/"):
            headers.setdefault("Cache-Control", "no-store")  # responses may carry tokens or PHI
        else:
            member = request.app.get(CLUSTER)
            workers = member.registry.origins if member is not None else frozenset()
            csp = policies.get(workers)
            if csp is None:  # the registry changed: one policy per set of workers, kept
                policies.clear()
                csp = policies[workers] = policy(workers)
            headers.setdefault("Content-Security-Policy", csp)
        if request.path in EMBED_SDK_PATHS:
            # Platform pages load the SDK from their own origin; as an ES module that is a CORS
            # fetch. It is public code fetched without credentials: any origin may read it.
            headers.setdefault("Access-Control-Allow-Origin", "*")
        return response

    return middleware


def socket_sources(origins: frozenset[str]) -> set[str]:
    """CSP sources for a WebSocket to each origin (and the origin itself, for polling)."""
    sources = set()
    for origin in origins:
        sources.add(origin)
        if origin.startswith("https://"):
            sources.add("wss://" + origin.removeprefix("https://"))
        elif origin.startswith("http://"):
            sources.add("ws://" + origin.removeprefix("http://"))
    return sources
