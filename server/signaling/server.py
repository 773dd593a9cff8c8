"""The Socket.IO server on the aiohttp app, with the `/consult` namespace."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import socketio
from aiohttp import web

from ..cluster.entry import origin_of
from ..settings import Settings
from .deps import SignalingDeps
from .frames import BoundedMsgPackPacket
from .namespace import ConsultNamespace
from .sweep import AccessSweep


def allowed_origins(
    settings: Settings, deps: Callable[[], SignalingDeps]
) -> list[str] | Callable[[str], bool]:
    """One process: browsers from its own pages only. Several workers: from the pages of any
    live worker or node too (the join page is served by any; the socket goes to the consult's
    worker), as the registry last listed them."""
    if not settings.clustered:
        return [settings.base_url]
    own = origin_of(settings.base_url)

    def allowed(origin: str) -> bool:
        placement = deps().placement
        return origin == own or (placement is not None and origin in placement.origins)

    return allowed


def attach(app: web.Application, settings: Settings, deps: Callable[[], SignalingDeps]) -> None:
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        # One socket's events are handled in order (an answer before its candidates); sockets
        # still run side by side.
        async_handlers=False,
        # Browsers may only connect from our own pages (the embed frames them, it does not
        # host them); non-browser clients send no Origin.
        cors_allowed_origins=allowed_origins(settings, deps),
        max_http_buffer_size=settings.socket_max_message_bytes,
        # A socket whose network vanished (no close ever arrives) is noticed within interval +
        # timeout: Engine.IO's defaults, 25 s + 20 s, leave the other two looking at a frozen
        # tile for most of a minute.
        ping_interval=settings.socket_ping_interval_seconds,
        ping_timeout=settings.socket_ping_timeout_seconds,
        logger=False,
        engineio_logger=False,
        # msgpack: a binary event is one frame, not a text packet and an attachment
        # (`frames.py` bounds what comes in before python-socketio reads it).
        serializer=BoundedMsgPackPacket,
    )
    namespace = ConsultNamespace(deps)
    sio.register_namespace(namespace)
    sio.attach(app)

    async def close_namespace(_app: web.Application) -> AsyncIterator[None]:
        # After the services are open (an earlier cleanup context): revocations published by
        # any process close this process's sockets.
        unsubscribe = deps().access_events.subscribe(namespace.on_access_event)
        placement = deps().placement
        # Fenced (or drained past its time): the sockets find the consult's worker again.
        unfence = placement.on_leave(namespace.worker_leaving) if placement else lambda: None
        sweep = AccessSweep(deps().limits.access_recheck, namespace.recheck_all)
        sweep.start()
        yield
        # Engine.IO's ping watchdog (started by the first socket) is not the web server's: it
        # would outlive the app and close timed-out sockets, running their disconnect handlers,
        # after the services they use are closed. Stopped while the services are still open.
        await sio.shutdown()
        unfence()
        unsubscribe()
        await sweep.close()
        await namespace.close()

    app.cleanup_ctx.append(close_namespace)
