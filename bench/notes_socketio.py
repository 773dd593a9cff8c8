"""Notes channel through the real server: the same typing load as `bench/notes.py`, but every
update goes over Socket.IO to a `triad serve` process and the fan-out comes back over Socket.IO.

K consults (auto-admit, the client's consent given, so nobody waits in a lobby); in each the
therapist and the psychiatrist type into the plan's `summary` and the client reads. Latency is
from a writer emitting `notes-update` until the client's socket has received it (both ends in
this process, one clock): signaling, validation, the durable log commit, the acknowledgement
path and the fan-out. With `--batch-ms N` each typist coalesces its keystrokes into one update
per N ms, as the browser client does (50 ms); `key p99` then adds the wait in the batch (from
the keystroke until the reader has it). The server runs in its own process (it has one core to
itself on a 2-core machine); the clients share this one, and their CPU is printed so a saturated
client side shows; `cli lag99` is how late the clients' own loop ran a 5 ms timer (p99), a
wait every latency here includes at the reader's end.
With `--workers 1 2` each row runs `triad serve --workers N` (PostgreSQL and Redis), each
consult's sockets on the worker its session call names; `srv cpu` is then each worker's, and
`redis/join` and `redis/upd` count the commands the workers sent Redis (through a counting
proxy, `redisproxy.py`) per socket joined and per update, the latter less the heartbeats' rate
measured idle right after; the commands seen while typing are listed by name. `--gc-young`
sets the server's TRIAD_GC_YOUNG_THRESHOLD per row (CPython's default is 700).
`--client light` drives the same frames from `lightsocket.py` instead of python-socketio's
client: the load generator shares the server's two cores, and its own loop's delays are
in every latency measured.
Loopback only; bounded in time; every copy is checked against the server's at the end.

    .venv/bin/python bench/notes_socketio.py                     # SQLite, K = 1 10 50 100
    .venv/bin/python bench/notes_socketio.py --backend postgres --k 100
    .venv/bin/python bench/notes_socketio.py --k 100 --batch-ms 50      # as browsers send
    .venv/bin/python bench/notes_socketio.py --backend postgres --k 50 100 200 --workers 1 2
    .venv/bin/python bench/notes_socketio.py --k 100 --batch-ms 50 --client socketio light
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pycrdt
import socketio
from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import notes as inprocess  # the in-process bench: its load shape, keys and database helpers
from lightsocket import LightSocketClient
from redisproxy import RedisCommandProxy

from server import gcpolicy
from server.auth.roles import Role
from server.consults.consent import CONSENT_WORDING, ConsentBook, ConsentScope
from server.consults.model import Actor, ConsultSpec, JoinIdentity, ParticipantSpec
from server.consults.platforms import PlatformKeys
from server.consults.service import ConsultService
from server.crypto import KeyRing
from server.db.engine import Database
from server.ids import TokenId
from tests import ports

NAMESPACE = "/consult"
# The three seats every consult has (a guardian and an interpreter are optional).
ROLES = (Role.CLIENT, Role.THERAPIST, Role.PSYCHIATRIST)


# The load generator's sockets: python-socketio's client, or the lean one (`lightsocket.py`),
# the same frames on the wire for a fraction of the CPU on the cores the server shares.
CLIENTS = ("socketio", "light")


class Person:
    def __init__(self, role: Role, token: str, consult_id: str, client: str) -> None:
        self.role = role
        self.token = token
        self.consult_id = consult_id
        self.doc: pycrdt.Doc[Any] = pycrdt.Doc()
        self.sio: socketio.AsyncClient | LightSocketClient = (
            LightSocketClient()
            if client == "light"
            else socketio.AsyncClient(reconnection=False, serializer="msgpack")
        )


class Run:
    def __init__(self) -> None:
        self.sent_at: dict[bytes, float] = {}
        # The first keystroke an update carries (batched updates carry several).
        self.typed_at: dict[bytes, float] = {}
        self.latencies: list[float] = []
        self.key_latencies: list[float] = []
        self.acked = 0
        self.errors = 0
        # How late the load generator's own loop wakes (see `loop_lag`).
        self.lags: list[float] = []


LAG_TICK_S = 0.005


async def loop_lag(run: Run, until: float) -> None:
    """How late this process's loop runs a timer: a reader's callback waits as long behind
    the load generator's own work, and that wait is in every latency measured here."""
    while time.monotonic() < until:
        asked = time.perf_counter()
        await asyncio.sleep(LAG_TICK_S)
        run.lags.append(time.perf_counter() - asked - LAG_TICK_S)


async def make_consults(url: str, k: int, client: str) -> list[dict[Role, Person]]:
    db = Database(url)
    keys = PlatformKeys(db, KeyRing.parse(inprocess.KEY), inprocess.now)
    created = await keys.create(f"bench-{secrets.token_hex(3)}", Actor("operator", "bench"))
    caller = await keys.authenticate(created.secret)
    service = ConsultService(
        db,
        KeyRing.parse(inprocess.KEY),
        public_base_url="http://127.0.0.1",
        token_ttl=timedelta(hours=1),
        clock=inprocess.now,
    )
    spec = ConsultSpec(
        participants=tuple(ParticipantSpec(role, role.value.title()) for role in ROLES),
        auto_admit=True,
    )
    consents = ConsentBook(db, KeyRing.parse(inprocess.KEY), inprocess.now)
    consults = []
    for _ in range(k):
        made = await service.create(caller, spec)
        role_of = {p.id: p.role for p in made.consult.participants}
        consults.append(
            {
                role_of[pid]: Person(role_of[pid], t.token, made.consult.id, client)
                for pid, t in made.tokens.items()
            }
        )
        client = next(p for p in made.consult.participants if p.role == Role.CLIENT)
        await consents.give(
            JoinIdentity(made.consult.id, client.id, Role.CLIENT, client.name, TokenId("bench"), 0),
            wording_version=CONSENT_WORDING.version,
            scopes=[str(scope) for scope in ConsentScope],
            attested=False,
        )
    await db.close()
    return consults


class Cluster:
    """`--workers N` above one: the server's workers share PostgreSQL and a Redis database,
    under a cluster name of this run's own (its keys are deleted afterwards), reached through
    a proxy that counts their commands."""

    def __init__(self, workers: int, proxy: RedisCommandProxy, redis_url: str) -> None:
        self.workers = workers
        self.proxy = proxy
        self.name = f"bench-{secrets.token_hex(3)}"
        self.redis = Redis.from_url(redis_url)

    def env(self) -> dict[str, str]:
        if self.workers == 1:
            return {}
        return {
            "TRIAD_WORKERS": str(self.workers),
            "TRIAD_REDIS_URL": self.proxy.url,
            "TRIAD_CLUSTER_NAME": self.name,
        }

    def commands(self) -> int:
        """Commands the workers have sent Redis so far."""
        return self.proxy.total()

    def snapshot(self) -> Counter[str]:
        return Counter(self.proxy.counts)

    async def close(self) -> None:
        async for key in self.redis.scan_iter(match=f"triad:cluster:{self.name}:*", count=500):
            await self.redis.delete(key)
        await self.redis.aclose()


async def start_server(
    url: str, data_dir: str, gc_young: int, cluster: Cluster
) -> tuple[asyncio.subprocess.Process, str]:
    # Worker i listens on port + i: that many ports, below the ephemeral range.
    port = ports.free_ports(cluster.workers)
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIAD_")}
    env.update(
        TRIAD_DATABASE_URL=url,
        TRIAD_ENCRYPTION_KEYS=inprocess.KEY,
        TRIAD_DATA_DIR=data_dir,
        TRIAD_PORT=str(port),
        TRIAD_PUBLIC_BASE_URL=base,
        TRIAD_ICE_HOST_ADDRESSES="127.0.0.1",
        TRIAD_LOG_LEVEL="warning",
        TRIAD_GC_YOUNG_THRESHOLD=str(gc_young),
        # Stopped at the end of a run, not drained (the workers' default waits up to 600 s).
        TRIAD_DRAIN_SECONDS="0",
        **cluster.env(),
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", "serve", env=env, stdout=asyncio.subprocess.DEVNULL
    )
    async with asyncio.timeout(30), aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(f"{base}/healthz") as answer:
                    if answer.status == 200:
                        return process, base
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)


async def worker_of(base: str, consult_id: str, person: Person) -> str:
    """The consult's worker, as the join page learns it: the session call on any worker."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{base}/api/v1/consults/{consult_id}/session",
            headers={"Authorization": f"Bearer {person.token}"},
        ) as answer,
    ):
        if answer.status != 200:
            raise SystemExit(f"session call: {answer.status}")
        body = await answer.json()
    return str(body["worker"]["url"])


async def join(person: Person, worker_url: str, run: Run) -> None:
    async def on_update(data: dict[str, Any]) -> None:
        now = time.perf_counter()  # delivered: the reader's own CRDT apply is not the server's
        sent = run.sent_at.get(data["update"])
        if sent is not None and person.role == Role.CLIENT:
            run.latencies.append(now - sent)
            run.key_latencies.append(now - run.typed_at[data["update"]])
        person.doc.apply_update(data["update"])

    person.sio.on("notes-update", on_update, namespace=NAMESPACE)
    await person.sio.connect(
        worker_url, namespaces=[NAMESPACE], transports=["websocket"], auth={"token": person.token}
    )
    ack = await person.sio.call("join", {}, namespace=NAMESPACE, timeout=30)
    if not ack["ok"]:
        raise SystemExit(f"join refused: {ack['error']['code']}")
    ack = await person.sio.call(
        "notes-sync",
        {"doc": "plan", "state_vector": person.doc.get_state()},
        namespace=NAMESPACE,
        timeout=30,
    )
    person.doc.apply_update(ack["update"])


async def type_into_plan(person: Person, until: float, run: Run, seed: int, batch_s: float) -> None:
    rng = random.Random(seed)
    text = person.doc.get("summary", type=pycrdt.Text)
    # This typist's own keystrokes not sent yet, merged into one update when sent (as the
    # browser's Y.mergeUpdates); never the other typist's edits the doc has received meanwhile.
    pending: list[bytes] = []
    first_key: float | None = None  # the oldest keystroke not sent yet

    async def send() -> None:
        nonlocal first_key
        update = pending[0] if len(pending) == 1 else pycrdt.merge_updates(*pending)
        pending.clear()
        now = time.perf_counter()
        run.sent_at[update], run.typed_at[update] = now, first_key or now
        first_key = None
        ack = await person.sio.call(
            "notes-update", {"doc": "plan", "update": update}, namespace=NAMESPACE, timeout=30
        )
        if ack["ok"]:
            run.acked += 1
        else:
            run.errors += 1

    typing = True

    async def flush_every_batch() -> None:
        while typing:  # stopped by a flag, never cancelled mid-call (the ack must be counted)
            await asyncio.sleep(batch_s)
            if pending:
                await send()

    # Typists start (and so stop) at random points of the first second: 200 people do not all
    # press their first key in the same millisecond, and a synchronised start measures a queue
    # the bench made, not the server.
    offset = rng.uniform(0, 1.0)
    await asyncio.sleep(offset)
    until += offset
    flusher = asyncio.create_task(flush_every_batch()) if batch_s else None
    next_burst = time.monotonic() + rng.uniform(0, inprocess.BURST_EVERY_S)
    while time.monotonic() < until:
        count, gap = 1, rng.expovariate(1 / inprocess.KEYSTROKE_MEAN_S)
        if time.monotonic() >= next_burst:
            count, gap = inprocess.BURST_LEN, inprocess.BURST_GAP_S
            next_burst = time.monotonic() + inprocess.BURST_EVERY_S
        for _ in range(count):
            before = person.doc.get_state()
            text.insert(rng.randint(0, len(text)), rng.choice("abcdefghij "))
            pending.append(person.doc.get_update(before))
            first_key = first_key or time.perf_counter()
            if flusher is None:
                await send()
            await asyncio.sleep(gap)
    typing = False
    if flusher is not None:
        await flusher
    if pending:
        await send()


async def run_one(
    url: str,
    k: int,
    seconds: float,
    data_dir: str,
    batch_s: float,
    gc_young: int,
    cluster: Cluster,
    client: str,
) -> dict[str, Any]:
    consults = await make_consults(url, k, client)
    server, base = await start_server(url, data_dir, gc_young, cluster)
    run = Run()
    clustered = cluster.workers > 1
    try:
        server_proc, me = psutil.Process(server.pid), psutil.Process()
        # One worker is `triad serve` itself; with several, its workers are its children.
        workers = [server_proc]
        if clustered:  # its workers, not multiprocessing's resource tracker
            children = server_proc.children()
            workers = [c for c in children if "resource_tracker" not in " ".join(c.cmdline())]
        redis_before = cluster.commands() if clustered else 0
        joins = 0
        for people in consults:
            therapist = people[Role.THERAPIST]
            where = await worker_of(base, therapist.consult_id, therapist) if clustered else base
            for person in people.values():
                await join(person, where, run)
                joins += 1
        redis_joined = cluster.commands() if clustered else 0
        joined_by_name = cluster.snapshot()
        # The load generator's own full collections (300 documents and sockets) would show as
        # the server's latency: it runs under the server's policy.
        gcpolicy.settle()
        worker_cpu, my_cpu = [w.cpu_times() for w in workers], me.cpu_times()
        started = time.monotonic()
        await asyncio.gather(
            loop_lag(run, started + seconds),
            *(
                type_into_plan(people[role], started + seconds, run, i * 2 + j, batch_s)
                for i, people in enumerate(consults)
                for j, role in enumerate((Role.THERAPIST, Role.PSYCHIATRIST))
            ),
        )
        expected = run.acked
        async with asyncio.timeout(30):  # the last fan-outs
            while len(run.latencies) < expected:  # noqa: ASYNC110 (counted by a socket callback)
                await asyncio.sleep(0.05)
        elapsed = time.monotonic() - started
        redis_typed = cluster.commands() if clustered else 0
        typed_by_name = cluster.snapshot() - joined_by_name
        # What the workers send Redis anyway (heartbeats), over the same time with no load.
        idle_from = time.monotonic()
        await asyncio.sleep(3.0)
        idle = (cluster.commands() - redis_typed if clustered else 0) / (
            time.monotonic() - idle_from
        )
        workers_used = [
            sum(w.cpu_times()[:2]) - sum(before[:2])
            for w, before in zip(workers, worker_cpu, strict=True)
        ]
        clients_used = sum(me.cpu_times()[:2]) - sum(my_cpu[:2])
        for people in consults:
            texts = {str(p.doc.get("summary", type=pycrdt.Text)) for p in people.values()}
            if len(texts) != 1:
                raise SystemExit("a copy diverged")
    finally:
        for people in consults:
            for person in people.values():
                await person.sio.disconnect()
        server.terminate()
        await server.wait()
    lat, key_lat, lags = sorted(run.latencies), sorted(run.key_latencies), sorted(run.lags)
    return {
        "k": k,
        "updates": run.acked,
        "errors": run.errors,
        "per_s": run.acked / elapsed,
        "median_ms": statistics.median(lat) * 1000,
        "p99_ms": lat[int(len(lat) * 0.99) - 1] * 1000,
        "max_ms": lat[-1] * 1000,
        "key_p99_ms": key_lat[int(len(key_lat) * 0.99) - 1] * 1000,
        "lag_p99_ms": lags[int(len(lags) * 0.99) - 1] * 1000,
        "server_cpu": "+".join(f"{used / elapsed:.2f}" for used in workers_used),
        "redis_while_typing": ", ".join(f"{n} {c}" for n, c in sorted(typed_by_name.items())),
        "redis_per_join": (redis_joined - redis_before) / joins if clustered else 0.0,
        # Less what the heartbeats sent meanwhile, at the rate measured with no load after.
        "redis_per_update": (redis_typed - redis_joined - idle * elapsed) / run.acked
        if clustered
        else 0.0,
        "clients_cpu": clients_used / elapsed,
    }


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--batch-ms", type=float, default=0.0, help="coalesce keystrokes (browsers: 50)"
    )
    parser.add_argument(
        "--gc-young",
        type=int,
        nargs="+",
        default=[gcpolicy.YOUNG_THRESHOLD],
        help="the server's TRIAD_GC_YOUNG_THRESHOLD, one row each (CPython's default: 700)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1],
        help="`triad serve --workers N`, one row each (above 1: PostgreSQL and Redis)",
    )
    parser.add_argument(
        "--redis",
        default="redis://127.0.0.1:6379/12",
        help="a Redis database on loopback for several workers (keys of this run only)",
    )
    parser.add_argument(
        "--client",
        nargs="+",
        choices=CLIENTS,
        default=["socketio"],
        help="the load generator's Socket.IO client, one row each (light: bench/lightsocket.py)",
    )


async def main() -> None:
    args = inprocess.arguments(
        __doc__.split("\n\n")[0],
        "sqlite",
        extra=options,
    )
    if not 0 <= args.batch_ms <= 1000:
        raise SystemExit("--batch-ms is 0 (every keystroke) to 1000")
    if any(n > 1 for n in args.workers) and "sqlite" in args.backends:
        raise SystemExit("several workers need --backend postgres")
    print(f"batching: {args.batch_ms:g} ms")
    print(
        f"{'backend':9} {'client':8} {'workers':>7} {'gc young':>8} {'K':>4} {'updates':>8} "
        f"{'upd/s':>7} {'median ms':>10} {'p99 ms':>8} {'max ms':>8} {'key p99':>8} "
        f"{'srv cpu':>10} {'cli cpu':>8} {'cli lag99':>9} "
        f"{'redis/join':>10} {'redis/upd':>9} {'errors':>6}"
    )
    async with RedisCommandProxy.running(args.redis) as proxy:
        await each_run(args, proxy)


async def each_run(args: argparse.Namespace, proxy: RedisCommandProxy) -> None:
    for backend in args.backends:
        for k in args.k:
            for workers in args.workers:
                for gc_young, client in itertools.product(args.gc_young, args.client):
                    cluster = Cluster(workers, proxy, args.redis)
                    try:
                        with tempfile.TemporaryDirectory() as tmp:
                            async with inprocess.bench_database(backend, args.pg, Path(tmp)) as url:
                                batch_s = args.batch_ms / 1000
                                r = await run_one(
                                    url, k, args.seconds, tmp, batch_s, gc_young, cluster, client
                                )
                    finally:
                        await cluster.close()
                    cells = (
                        f"{backend:9} {client:8} {workers:>7} {gc_young:>8} {r['k']:>4}",
                        f"{r['updates']:>8} {r['per_s']:>7.0f} {r['median_ms']:>10.2f}",
                        f"{r['p99_ms']:>8.2f} {r['max_ms']:>8.1f} {r['key_p99_ms']:>8.1f}",
                        f"{r['server_cpu']:>10} {r['clients_cpu']:>8.2f} {r['lag_p99_ms']:>9.1f}",
                        f"{r['redis_per_join']:>10.2f} {r['redis_per_update']:>9.3f}",
                        f"{r['errors']:>6}",
                    )
                    print(" ".join(cells), flush=True)
                    if workers > 1:
                        print(f"  redis commands while typing: {r['redis_while_typing']}")


if __name__ == "__main__":
    asyncio.run(main())
