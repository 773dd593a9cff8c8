"""Notes channel benchmark: K concurrent consults, each with two clinicians typing into the plan
(single keystrokes at human speed, and bursts) and the client reading; prints the fan-out latency
(median, p99: from a writer handing its update to the server until a reader holds it) and the
updates per second sustained, on SQLite and on PostgreSQL.

In-process: the writers call NotesService.apply as signaling does, and the fan-out (what
signaling does once apply returns, i.e. once the update is durable) hands the bytes to the other
participants' queues; each reader applies them to its own pycrdt document. At the end every copy
is checked against the server's. Loopback only; bounded in time.

    .venv/bin/python bench/notes.py                       # SQLite, K = 1 10 50 100
    .venv/bin/python bench/notes.py --pg postgresql+asyncpg://postgres@127.0.0.1:5432/postgres
    .venv/bin/python bench/notes.py --k 100 --seconds 20 --backend postgres
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import psutil
import pycrdt
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server import logs
from server.auth.roles import Role
from server.consults.model import Actor, ConsultSpec, ParticipantSpec
from server.consults.platforms import PlatformKeys
from server.consults.service import ConsultService
from server.crypto import KeyRing
from server.db import migrate
from server.db.engine import Database
from server.ids import ConsultId, ParticipantId
from server.notes.service import NotesService

KEY = "bench:" + base64.b64encode(secrets.token_bytes(32)).decode()
KEYSTROKE_MEAN_S = 0.2  # about 5 characters a second per writer
BURST_EVERY_S = 4.0  # now and then a burst: fast typing or a paste split into updates
BURST_LEN = 20
BURST_GAP_S = 0.01


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Participant:
    role: Role
    pid: ParticipantId
    doc: pycrdt.Doc[Any] = field(default_factory=pycrdt.Doc)
    inbox: asyncio.Queue[tuple[float, bytes]] = field(default_factory=asyncio.Queue)


@dataclass
class Consult:
    cid: ConsultId
    people: dict[Role, Participant]


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    applied: int = 0
    errors: int = 0


async def make_consults(db: Database, k: int) -> list[Consult]:
    keyring = KeyRing.parse(KEY)
    keys = PlatformKeys(db, keyring, now)
    created = await keys.create(f"bench-{secrets.token_hex(3)}", Actor("operator", "bench"))
    caller = await keys.authenticate(created.secret)
    service = ConsultService(
        db,
        keyring,
        public_base_url="http://127.0.0.1:8080",
        token_ttl=timedelta(hours=1),
        clock=now,
    )
    spec = ConsultSpec(
        participants=(
            ParticipantSpec(Role.CLIENT, "Client"),
            ParticipantSpec(Role.THERAPIST, "Therapist"),
            ParticipantSpec(Role.PSYCHIATRIST, "Psychiatrist"),
        )
    )
    consults = []
    for _ in range(k):
        view = (await service.create(caller, spec)).consult
        people = {p.role: Participant(p.role, p.id) for p in view.participants}
        consults.append(Consult(view.id, people))
    return consults


async def writer(
    notes: NotesService, consult: Consult, me: Participant, until: float, stats: Stats, seed: int
) -> None:
    rng = random.Random(seed)
    text = me.doc.get("summary", type=pycrdt.Text)
    next_burst = time.monotonic() + rng.uniform(0, BURST_EVERY_S)
    while time.monotonic() < until:
        count, gap = 1, rng.expovariate(1 / KEYSTROKE_MEAN_S)
        if time.monotonic() >= next_burst:
            count, gap = BURST_LEN, BURST_GAP_S
            next_burst = time.monotonic() + BURST_EVERY_S
        for _ in range(count):
            before = me.doc.get_state()
            text.insert(rng.randint(0, len(text)), rng.choice("abcdefghij "))
            update = me.doc.get_update(before)
            sent = time.perf_counter()
            try:
                await notes.apply(consult.cid, me.pid, me.role, "plan", update)
            except Exception as exc:
                stats.errors += 1
                print("apply failed:", type(exc).__name__, file=sys.stderr)
                continue
            stats.applied += 1
            # Signaling's fan-out, once apply has returned (the update is durable).
            for other in consult.people.values():
                if other is not me:
                    other.inbox.put_nowait((sent, update))
            await asyncio.sleep(gap)


async def reader(me: Participant, stats: Stats, measure: bool) -> None:
    while True:
        sent, update = await me.inbox.get()
        me.doc.apply_update(update)
        if measure:
            stats.latencies.append(time.perf_counter() - sent)
        me.inbox.task_done()


async def run_one(url: str, k: int, seconds: float) -> dict[str, Any]:
    db = Database(url)
    consults = await make_consults(db, k)
    notes = NotesService(
        db, KeyRing.parse(KEY), now, max_update_bytes=64 * 1024, snapshot_every=500
    )
    stats = Stats()
    # Joining: every participant syncs the plan first (as the browser does on join), which also
    # loads the consult's documents on the server; the timed part is the typing after it.
    for c in consults:
        for p in c.people.values():
            reply = await notes.sync(c.cid, p.role, "plan", p.doc.get_state())
            p.doc.apply_update(reply.update)
    proc = psutil.Process()
    cpu_before = proc.cpu_times()
    started = time.monotonic()
    until = started + seconds
    readers = [
        asyncio.create_task(reader(p, stats, measure=p.role == Role.CLIENT))
        for c in consults
        for p in c.people.values()
    ]
    writers = [
        writer(notes, c, c.people[role], until, stats, seed=i * 2 + j)
        for i, c in enumerate(consults)
        for j, role in enumerate((Role.THERAPIST, Role.PSYCHIATRIST))
    ]
    await asyncio.gather(*writers)
    for c in consults:
        for p in c.people.values():
            await p.inbox.join()
    elapsed = time.monotonic() - started
    cpu = proc.cpu_times()
    for task in readers:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    # Every copy converged on the server's.
    for c in consults:
        reply = await notes.sync(c.cid, Role.CLIENT, "plan", b"\x00")
        server = pycrdt.Doc()
        server.apply_update(reply.update)
        expected = str(server.get("summary", type=pycrdt.Text))
        for p in c.people.values():
            if str(p.doc.get("summary", type=pycrdt.Text)) != expected:
                raise SystemExit(f"consult {c.cid}: {p.role}'s copy diverged")
    await notes.close()
    await db.close()
    lat = sorted(stats.latencies)
    return {
        "k": k,
        "updates": stats.applied,
        "errors": stats.errors,
        "per_s": stats.applied / elapsed,
        "median_ms": statistics.median(lat) * 1000 if lat else float("nan"),
        "p99_ms": lat[int(len(lat) * 0.99) - 1] * 1000 if lat else float("nan"),
        "max_ms": lat[-1] * 1000 if lat else float("nan"),
        "cpu": (cpu.user + cpu.system - cpu_before.user - cpu_before.system) / elapsed,
    }


async def sqlite_database(directory: Path) -> str:
    url = f"sqlite+aiosqlite:///{directory / 'bench.db'}"
    db = Database(url)
    await migrate.upgrade(db.engine)
    await db.close()
    return url


async def pg_admin(admin_url: str, statement: str) -> None:
    url = make_url(admin_url)
    conn = await asyncpg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        database=url.database or "postgres",
    )
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def arguments(
    description: str,
    default_backend: str,
    extra: Callable[[argparse.ArgumentParser], object] | None = None,
) -> argparse.Namespace:
    """The command line both notes benches share (`extra` adds a bench's own options)."""
    parser = argparse.ArgumentParser(description=description)
    if extra is not None:
        extra(parser)
    parser.add_argument("--k", type=int, nargs="+", default=[1, 10, 50, 100])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument(
        "--backend", choices=["sqlite", "postgres", "both"], default=default_backend
    )
    parser.add_argument(
        "--pg",
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres",
        help="an admin URL on loopback; a bench database is created there and dropped",
    )
    args = parser.parse_args()
    logs.configure("warning", "console")
    if args.seconds > 120:
        raise SystemExit("--seconds is capped at 120")
    args.backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    print(f"load average before: {os.getloadavg()[0]:.2f} (other work on the machine skews tails)")
    return args


@asynccontextmanager
async def bench_database(backend: str, pg_admin_url: str, directory: Path) -> AsyncIterator[str]:
    """A migrated database for one run: a SQLite file in `directory`, or a PostgreSQL
    database created on the admin URL and dropped afterwards. Yields its URL."""
    if backend == "sqlite":
        yield await sqlite_database(directory)
        return
    name = f"triad_bench_{secrets.token_hex(4)}"
    await pg_admin(pg_admin_url, f'CREATE DATABASE "{name}"')
    try:
        url = make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)
        db = Database(url)
        await migrate.upgrade(db.engine)
        await db.close()
        yield url
    finally:
        await pg_admin(pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def main() -> None:
    args = arguments(__doc__.split("\n\n")[0], "both")
    print(
        f"notes bench: {args.seconds:.0f} s per run, python {sys.version.split()[0]}, "
        f"{psutil.cpu_count()} cores"
    )
    print(
        f"{'backend':9} {'K':>4} {'updates':>8} {'upd/s':>8} {'median ms':>10} "
        f"{'p99 ms':>8} {'max ms':>8} {'cpu':>5} {'errors':>6}"
    )
    for backend in args.backends:
        for k in args.k:
            with tempfile.TemporaryDirectory() as tmp:
                async with bench_database(backend, args.pg, Path(tmp)) as url:
                    result = await run_one(url, k, args.seconds)
            print(
                f"{backend:9} {result['k']:>4} {result['updates']:>8} {result['per_s']:>8.0f} "
                f"{result['median_ms']:>10.2f} {result['p99_ms']:>8.2f} {result['max_ms']:>8.1f} "
                f"{result['cpu']:>5.2f} {result['errors']:>6}",
                flush=True,
            )


if __name__ == "__main__":
    asyncio.run(main())
