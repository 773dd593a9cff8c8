"""What each command-line verb does. `__main__` only parses arguments and calls these."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from multiprocessing.synchronize import Event

from aiohttp import web

from . import eventloop, gcpolicy, logs
from .api.context import SERVICES
from .app import create_app, drain_worker, keyring_for, utc_now
from .auth.roles import Role
from .consults.model import Actor, ConsultSpec, ParticipantSpec, PlatformCaller
from .consults.retention import Pruned, Retention
from .crypto import generate_key_spec
from .db import migrate as migrations
from .db.engine import Database
from .errors import ConfigError, ErrorCode, TriadError
from .ids import ConsultId, KeyId
from .ops import keys as key_rotation
from .ops.checks import Checker, CheckResult
from .ops.sealed import SEALED_COLUMNS
from .rooms.media.turncheck import TurnCheck, check_turn
from .services import Services, open_services, retention_policy
from .settings import Settings
from .supervisor import Supervisor

DEMO_PLATFORM = "Triad demo"
DEMO_PEOPLE = (
    ParticipantSpec(Role.CLIENT, "Alex Rivera"),
    ParticipantSpec(Role.THERAPIST, "Sam Okafor, LCSW"),
    ParticipantSpec(Role.PSYCHIATRIST, "Dr. Priya Nair"),
)
OPERATOR = Actor("operator", "cli")


@dataclass(frozen=True)
class DemoLinks:
    consult_id: ConsultId
    links: dict[Role, str]


async def migrate(settings: Settings) -> str:
    if settings.mode == "production" and settings.encryption_keys is None:
        # Migrations seal existing rows (0005): a generated development key would seal them
        # with a key the production server does not hold.
        raise ConfigError(
            "TRIAD_ENCRYPTION_KEYS is not set: migrating seals existing rows with it "
            "(generate one with `triad keygen`)"
        )
    db = Database(settings.effective_database_url)
    path = db.sqlite_path()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        await migrations.upgrade(db.engine, keyring_for(settings))
    finally:
        await db.close()
    return migrations.head()


@asynccontextmanager
async def services(settings: Settings) -> AsyncIterator[Services]:
    async with open_services(settings, keyring_for(settings), utc_now) as opened:
        yield opened


async def create_api_key(settings: Settings, platform_name: str) -> tuple[str, str, str]:
    async with services(settings) as s:
        created = await s.keys.create(platform_name, OPERATOR)
    return created.platform_id, created.key_id, created.secret


async def revoke_api_key(settings: Settings, key_id: str) -> bool:
    async with services(settings) as s:
        return await s.keys.revoke(KeyId(key_id), OPERATOR)


async def create_demo(s: Services) -> DemoLinks:
    created_key = await s.keys.create(DEMO_PLATFORM, OPERATOR)
    caller = PlatformCaller(created_key.platform_id, created_key.key_id, created_key.secret)
    created = await s.consults.create(caller, ConsultSpec(participants=DEMO_PEOPLE))
    links = {p.role: created.tokens[p.id].join_url for p in created.consult.participants}
    return DemoLinks(created.consult.id, links)


def print_demo(demo: DemoLinks) -> None:
    print(f"\nDemo consult {demo.consult_id} is ready. Open each link in its own browser window:")
    for role, link in demo.links.items():
        print(f"  {role:<13} {link}")
    print()


async def demo(settings: Settings) -> DemoLinks:
    async with services(settings) as s:
        return await create_demo(s)


async def mint_token(settings: Settings, consult_id: str, role: Role, ttl: int | None) -> str:
    """An operator mints a link with the consult's platform key (unsealed from the database)."""
    async with services(settings) as s:
        key_id, participant_id = await s.consults.operator_lookup(ConsultId(consult_id), role)
        key = await s.keys.signing_key(key_id)
        if key is None:
            raise TriadError(ErrorCode.API_KEY_INVALID, "the consult's platform has no live key")
        caller = PlatformCaller(key.platform_id, key.key_id, key.secret)
        token = await s.consults.mint_token(
            caller,
            ConsultId(consult_id),
            participant_id,
            timedelta(seconds=ttl) if ttl else None,
            actor=OPERATOR,
        )
    return token.join_url


def keygen() -> str:
    return generate_key_spec("k1")


def run_serve(settings: Settings, *, with_demo: bool) -> int:
    """`serve`: one process on the event loop `TRIAD_EVENT_LOOP` names, or with more than one
    worker a supervisor of that many such processes. Returns the exit status."""
    settings.check()  # before any worker starts: a missing service is named once
    if settings.workers > 1:
        logs.configure(settings.log_level, settings.log_format)
        return Supervisor(settings, run_worker, with_demo=with_demo).run()
    serve_one(settings, with_demo=with_demo)
    return 0


def serve_one(settings: Settings, *, with_demo: bool, ready: Event | None = None) -> None:
    with asyncio.Runner(loop_factory=eventloop.loop_factory(settings.event_loop)) as runner:
        runner.run(serve(settings, with_demo=with_demo, ready=ready))


def run_worker(settings: Settings, ready: Event, with_demo: bool) -> None:
    """One worker process of `triad serve --workers N` (started by the supervisor)."""
    try:
        serve_one(settings, with_demo=with_demo, ready=ready)
    except ConfigError as exc:
        print(f"triad: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


async def serve(settings: Settings, *, with_demo: bool, ready: Event | None = None) -> None:
    logs.configure(settings.log_level, settings.log_format)
    log = logs.get(__name__)
    app = create_app(settings)
    runner = web.AppRunner(app, access_log_class=logs.AccessLogger)
    await runner.setup()  # opens the database and refuses an unmigrated one
    watch: asyncio.Task[None] | None = None
    try:
        port = settings.worker_port
        site = web.TCPSite(runner, settings.host, port)
        await site.start()
        log.info(
            "listening",
            host=settings.host,
            port=port,
            worker=settings.worker_id if settings.clustered else None,
            event_loop=eventloop.running_loop_name(),
        )
        print(f"Triad is running on http://{settings.host}:{port} (Ctrl+C stops it)", flush=True)
        if with_demo:
            print_demo(await create_demo(app[SERVICES]))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        gcpolicy.settle(settings.gc_young_threshold)
        if ready is not None:
            ready.set()
            watch = loop.create_task(_stop_when_orphaned(stop))
        await stop.wait()
        stop.clear()  # a second signal cuts the drain short
        await drain_worker(app, stop)
        log.info("stopping")
    finally:
        if watch is not None:
            watch.cancel()
        await runner.cleanup()


async def _stop_when_orphaned(stop: asyncio.Event) -> None:
    """A worker outlives its supervisor only by accident (it was killed): stop too."""
    parent = os.getppid()
    # Polled: nothing signals a process that its parent died (short of Linux's prctl).
    while os.getppid() == parent:  # noqa: ASYNC110
        await asyncio.sleep(1.0)
    logs.get(__name__).error("parent_vanished")
    stop.set()


async def check_all(settings: Settings) -> list[CheckResult]:
    """`triad check`: every check of `server/ops/checks.py`, in order."""
    return await Checker(settings).run()


async def check_turn_server(settings: Settings) -> list[TurnCheck]:
    """`triad check turn`: a TURN Allocate at every TRIAD_TURN_URLS entry with a credential
    minted from TRIAD_TURN_SECRET. ConfigError when either is not set."""
    if not settings.turn_urls or settings.turn_secret is None:
        raise ConfigError("`triad check turn` needs TRIAD_TURN_URLS and TRIAD_TURN_SECRET")
    return await check_turn(
        settings.turn_urls,
        settings.turn_secret.get_secret_value(),
        settings.turn_credential_ttl_seconds,
    )


@asynccontextmanager
async def migrated_database(settings: Settings) -> AsyncIterator[Database]:
    db = Database(settings.effective_database_url)
    try:
        await db.require_migrated()
        yield db
    finally:
        await db.close()


@dataclass(frozen=True)
class KeysOutcome:
    census: list[key_rotation.ColumnCensus]
    active_kid: str
    report: key_rotation.RotationReport | None = None

    @property
    def done(self) -> bool:
        """Nothing is left under another key (the proof `triad keys` exits 0 on)."""
        return not any(column.not_under(self.active_kid) for column in self.census)


async def keys_status(settings: Settings) -> KeysOutcome:
    ring = keyring_for(settings)
    async with migrated_database(settings) as db:
        found = await key_rotation.census(db, ring, SEALED_COLUMNS)
    return KeysOutcome(found, ring.active_kid)


async def keys_rotate(
    settings: Settings,
    limits: key_rotation.RotationLimits,
    progress: Callable[[str], None],
) -> KeysOutcome:
    """`triad keys rotate`: re-seal under the active key, then count what is under each key."""
    ring = keyring_for(settings)
    async with migrated_database(settings) as db:
        report = await key_rotation.rotate(db, ring, SEALED_COLUMNS, limits, progress)
        found = await key_rotation.census(db, ring, SEALED_COLUMNS)
    return KeysOutcome(found, ring.active_kid, report)


async def prune(settings: Settings) -> Pruned:
    """`triad prune`: what the server's retention task deletes, once, now."""
    async with migrated_database(settings) as db:
        return await Retention(db, retention_policy(settings), utc_now).prune()
