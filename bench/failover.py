"""Failover benchmark (issue 13): time from a worker's kill -9 to the first decoded frame again
at every peer, over repeated failovers of one consult. Prints figures; not part of the tests.

    .venv/bin/python bench/failover.py                          # both deployments, 10 each
    .venv/bin/python bench/failover.py --deployments supervisor --failovers 3
    .venv/bin/python bench/failover.py --fast-heartbeat         # the tests' 0.5 s / 2 s beat

A consult with three aiortc peers (tests/cluster/rejoining.py's `Rejoining`, as
tests/cluster/test_failover.py runs them: each sends 160x120 10 fps VP8 and decodes both
others' video with libvpx; on a dropped socket it reads the session again on any node that
answers, connects at the worker it names and joins with its token) on two workers sharing a
PostgreSQL database of the bench's own and a Redis db (14) under a cluster name of its own,
both removed afterwards. Each failover kills -9 the worker the consult is on (the peers'
worker, checked against the placement in Redis), so the next one kills wherever it came back.

Deployments (`--deployments`):

* supervisor: one node of `triad serve --workers 2`. The supervisor starts the dead worker
  again under its id and port; the consult comes back on it, or on the other worker when the
  restart was slower than the heartbeat TTL.
* nodes: two nodes of one worker each (tests/cluster/processes.py). Nothing restarts the dead
  one, so the consult must move to the other; then the bench starts the dead node again, as an
  operator's process manager would, before the next failover (not timed).

Per failover, from the kill (monotonic clock, polled every 50 ms): "restarted", the killed
worker's port answers /healthz again (supervisor only); "placed", the consult's placement
names a worker with a live entry whose /healthz answers; "rejoined", every peer joined again
and all on one worker; "decoding", every peer's new peer connection decoded a first video
frame from both others (from the peers' own decode timestamps, not the poll).

The heartbeat is the shipped default (1 s beat, 5 s TTL) unless `--fast-heartbeat`. The
peers are more eager than the browser: they read the session again as soon as the socket
drops and every 0.3 s after, where the browser first lets Socket.IO retry twice (0.25-0.75 s,
then 0.5-1.5 s) before reading the session (web/src/signaling.js). Everything binds
127.0.0.1; each phase has a deadline and the run a total one, so it stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402
import psutil  # noqa: E402
from redis.asyncio import Redis  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from server.cluster.entry import ClusterKeys, WorkerEntry  # noqa: E402
from server.ids import ConsultId, WorkerId  # noqa: E402
from tests.cluster.processes import (  # noqa: E402
    PEER_OPTIONS,
    sees_both,
    single_worker_nodes,
    two_worker_node,
)
from tests.cluster.rejoining import Rejoining  # noqa: E402
from tests.cluster.test_serve_workers import worker_processes  # noqa: E402
from tests.media.triadserver import ROLES, TriadServer  # noqa: E402

TARGET_S = 10.0
# How often the bench looks (decode times come from the peers' own timestamps, not this).
POLL_S = 0.05
# Each phase (first frames, one failover, the recovery before the next) on two busy cores.
PHASE_DEADLINE_S = 90.0
# Decoded frames from both others at every peer before a kill: media is flowing, not starting.
STEADY_FRAMES = 10
# After the steady state, before the kill: heartbeats report the room.
SETTLE_S = 2.0
DEPLOYMENTS = ("supervisor", "nodes")
STARTS = 3
# UDP ranges apart from the tests' (47400-47659), which other runs may be using.
UDP_NODES = 48800
UDP_SUPERVISOR = (48840, 48879)
DEFAULT_HEARTBEAT = {
    "TRIAD_CLUSTER_HEARTBEAT_SECONDS": "1.0",
    "TRIAD_CLUSTER_HEARTBEAT_TTL_SECONDS": "5",
}
FAST_HEARTBEAT = {
    "TRIAD_CLUSTER_HEARTBEAT_SECONDS": "0.5",
    "TRIAD_CLUSTER_HEARTBEAT_TTL_SECONDS": "2",
}
# A stop (SIGTERM) drains: bounded, for a run that stopped with its consult live.
DRAIN = {"TRIAD_DRAIN_SECONDS": "5"}
INTERVALS = ("restarted", "placed", "rejoined", "decoding")


@dataclass
class Failover:
    """One kill and what followed, in seconds after it (None: not applicable or not seen)."""

    killed: str
    # The server whose worker was killed (a node the bench starts again before the next).
    server: TriadServer
    back_on: str = ""
    times: dict[str, float | None] = field(default_factory=dict)
    timed_out: str = ""


@dataclass
class Deployment:
    """The servers, the worker URLs participants may read the session from, and the kind."""

    kind: str
    servers: list[TriadServer]

    @property
    def urls(self) -> list[str]:
        return [url for server in self.servers for url in server.worker_urls]

    def process_of(self, url: str) -> tuple[TriadServer, psutil.Process]:
        """The server holding the worker at `url`, and the worker's process."""
        for server in self.servers:
            if server.worker_urls == (url,):  # a node of one worker: the process itself
                return server, server.process
            port = int(url.rsplit(":", 1)[1])
            worker = worker_processes(server.process).get(port)
            if worker is not None:
                return server, worker
        raise RuntimeError(f"no worker at {url}")


async def until(
    predicate: Callable[[], bool | Awaitable[bool]], deadline: float, what: str
) -> None:
    end = time.monotonic() + deadline
    while True:
        held = predicate()
        if not isinstance(held, bool):
            held = await held
        if held:
            return
        if time.monotonic() > end:
            raise TimeoutError(f"no {what} within {deadline:.0f} s")
        await asyncio.sleep(POLL_S)


async def healthy(http: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with http.get(f"{url}/healthz") as answer:
            return answer.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


async def placed_entry(redis: Redis, keys: ClusterKeys, consult_id: str) -> WorkerEntry | None:
    """The live entry of the worker the consult is placed on (None: unplaced or lapsed)."""
    owner = await redis.get(keys.placement(ConsultId(consult_id)))
    if owner is None:
        return None
    raw = await redis.get(keys.worker(WorkerId(owner.decode())))
    return None if raw is None else WorkerEntry.decode(raw)


def decoding_since(people: list[Rejoining], killed_at: float) -> float | None:
    """When every peer's current peer connection, made after the kill, had decoded a first
    video frame from both others (None: not yet)."""
    latest = killed_at
    for p in people:
        if p.peer.created_at <= killed_at:
            return None
        for other in people:
            if other is p:
                continue
            first = p.peer.first_frame_at.get((other.seat.participant_id, "video"))
            if first is None:
                return None
            latest = max(latest, first)
    return latest - killed_at


def steady(people: list[Rejoining]) -> bool:
    url = people[0].worker_url
    return url is not None and all(
        p.worker_url == url and sees_both(p, people, STEADY_FRAMES) for p in people
    )


async def fail_over(
    cluster: Deployment,
    people: list[Rejoining],
    redis: Redis,
    keys: ClusterKeys,
    consult_id: str,
    http: aiohttp.ClientSession,
) -> Failover:
    """Kill -9 the consult's worker and time what follows, until every peer decodes again."""
    await until(lambda: steady(people), PHASE_DEADLINE_S, "steady media before the kill")
    await asyncio.sleep(SETTLE_S)
    url = people[0].worker_url
    entry = await placed_entry(redis, keys, consult_id)
    if url is None or entry is None or entry.url != url or not steady(people):
        raise RuntimeError("the peers and the placement disagree before the kill")
    server, victim = cluster.process_of(url)
    joins = [len(p.joins) for p in people]
    result = Failover(killed=entry.worker_id, server=server)
    killed_at = time.monotonic()
    victim.kill()
    times = result.times
    times["restarted"] = None

    def mark(name: str) -> None:
        times.setdefault(name, time.monotonic() - killed_at)

    end = killed_at + PHASE_DEADLINE_S
    while True:
        now_entry = await placed_entry(redis, keys, consult_id)
        if "placed" not in times and now_entry is not None and await healthy(http, now_entry.url):
            mark("placed")
        if (
            cluster.kind == "supervisor"
            and times["restarted"] is None
            and await healthy(http, url)
            and victim.pid not in {p.pid for p in worker_processes(server.process).values()}
        ):
            times["restarted"] = time.monotonic() - killed_at
        urls = {p.worker_url for p in people}
        if (
            "rejoined" not in times
            and all(len(p.joins) > n for p, n in zip(people, joins, strict=True))
            and len(urls) == 1
            and None not in urls
        ):
            mark("rejoined")
        decoding = decoding_since(people, killed_at)
        if "decoding" not in times and decoding is not None:
            times["decoding"] = decoding
        done = all(k in times for k in ("placed", "rejoined", "decoding"))
        if done and (cluster.kind != "supervisor" or times["restarted"] is not None):
            break
        if time.monotonic() > end:
            missing = [k for k in INTERVALS[1:] if k not in times]
            result.timed_out = ", ".join(missing) or "restarted"
            return result
        await asyncio.sleep(POLL_S)
    back = await placed_entry(redis, keys, consult_id)
    result.back_on = back.worker_id if back is not None else "?"
    return result


async def recover(
    cluster: Deployment,
    last: Failover,
    http: aiohttp.ClientSession,
    redis: Redis,
    keys: ClusterKeys,
) -> None:
    """Before the next kill: the dead node started again (nodes), every worker answering and
    with a live entry (so the next failover has somewhere to go)."""
    if cluster.kind == "nodes":
        await last.server.launch()

    async def all_up() -> bool:
        if not all([await healthy(http, url) for url in cluster.urls]):
            return False
        entries = [k async for k in redis.scan_iter(match=keys.worker_prefix + "*")]
        return len(entries) == len(cluster.urls)

    await until(all_up, PHASE_DEADLINE_S, "every worker answering, with an entry")


async def close_peer(person: Rejoining) -> None:
    """Close a peer; an exception its loop met (a renegotiation cut by the kill) is told, not
    raised: the figures stand, and the count is printed."""
    try:
        await person.close()
    except AssertionError:
        print(f"  {person.seat.role}: {len(person.failures)} errors in its loop", flush=True)


@contextlib.asynccontextmanager
async def database(admin_url: str) -> AsyncIterator[str]:
    """An empty PostgreSQL database of the bench's own (the servers migrate it), dropped after."""
    admin = make_url(admin_url)
    name = f"triad_bench_failover_{secrets.token_hex(4)}"
    connection = await asyncpg.connect(
        host=admin.host,
        port=admin.port or 5432,
        user=admin.username,
        password=admin.password,
        database=admin.database or "postgres",
    )
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
        try:
            yield admin.set(database=name).render_as_string(hide_password=False)
        finally:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def deployment(
    kind: str,
    directory: Path,
    database_url: str,
    redis_url: str,
    keys: ClusterKeys,
    beat: dict[str, str],
) -> AsyncIterator[Deployment]:
    """Started, retried when a start fails: the ports are free when chosen, but another
    process on this shared machine may bind one before the server does."""
    for attempt in range(STARTS):
        stack = contextlib.AsyncExitStack()
        where = directory / f"start-{attempt}"
        where.mkdir()
        try:
            servers = await stack.enter_async_context(
                start(kind, where, database_url, redis_url, keys, beat)
            )
        except RuntimeError as exc:
            await stack.aclose()
            print(f"  {kind}: a start failed ({str(exc).splitlines()[-1][:120]})", flush=True)
            continue
        async with stack:
            yield Deployment(kind, servers)
        return
    raise RuntimeError(f"{kind}: no start in {STARTS} attempts")


@contextlib.asynccontextmanager
async def start(
    kind: str,
    directory: Path,
    database_url: str,
    redis_url: str,
    keys: ClusterKeys,
    beat: dict[str, str],
) -> AsyncIterator[list[TriadServer]]:
    if kind == "nodes":
        async with single_worker_nodes(
            directory, database_url, [redis_url, redis_url], keys, udp_base=UDP_NODES, **beat
        ) as nodes:
            yield nodes
        return
    async with two_worker_node(
        directory,
        database_url,
        redis_url,
        keys,
        TRIAD_ICE_UDP_PORT_MIN=str(UDP_SUPERVISOR[0]),
        TRIAD_ICE_UDP_PORT_MAX=str(UDP_SUPERVISOR[1]),
        **beat,
    ) as server:
        yield [server]


async def run_deployment(kind: str, args: argparse.Namespace) -> list[Failover]:
    keys = ClusterKeys(f"bench-failover-{secrets.token_hex(4)}")
    beat = {**(FAST_HEARTBEAT if args.fast_heartbeat else DEFAULT_HEARTBEAT), **DRAIN}
    results: list[Failover] = []
    redis = Redis.from_url(args.redis_url)
    try:
        with tempfile.TemporaryDirectory(prefix="triad-failover-") as tmp:
            async with (
                database(args.database_url) as database_url,
                deployment(kind, Path(tmp), database_url, args.redis_url, keys, beat) as cluster,
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http,
                contextlib.AsyncExitStack() as stack,
            ):
                consult = await cluster.servers[-1].new_consult()
                people = [
                    Rejoining(consult.seat(r), consult.consult_id, cluster.urls, **PEER_OPTIONS)
                    for r in ROLES
                ]
                for person in people:
                    stack.push_async_callback(close_peer, person)
                    person.start()
                try:
                    for n in range(1, args.failovers + 1):
                        result = await fail_over(
                            cluster, people, redis, keys, consult.consult_id, http
                        )
                        results.append(result)
                        print(row(kind, n, result), flush=True)
                        if result.timed_out:
                            raise TimeoutError(f"failover {n} saw no {result.timed_out}")
                        await recover(cluster, result, http, redis, keys)
                    await until(lambda: steady(people), PHASE_DEADLINE_S, "steady media")
                    view = await cluster.servers[-1].get(f"/api/v1/consults/{consult.consult_id}")
                    print(
                        f"  {kind}: the consult after {len(results)} failovers is {view['status']}"
                    )
                    await cluster.servers[-1].end_consult(consult.consult_id)
                    # Each peer's loop closes its own peer connection on the end; closing the
                    # participants while it does would cancel aiortc's close half-way.
                    await until(lambda: all(p.ended for p in people), PHASE_DEADLINE_S, "the end")
                except (TimeoutError, RuntimeError) as exc:
                    # What was measured stands; the servers' last lines say why it stopped.
                    print(f"  {kind} stopped: {exc}", flush=True)
                    for server in cluster.servers:
                        print(server.log_tail(10), flush=True)
    finally:
        async for key in redis.scan_iter(match=keys.prefix + "*", count=1000):
            await redis.delete(key)
        await redis.aclose()
    return results


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def row(kind: str, n: int, result: Failover) -> str:
    cells = [seconds(result.times.get(k)) for k in INTERVALS]
    back = result.back_on
    if back:
        back += " (same id)" if back == result.killed else ""
    return f"| {kind} | {n} | {result.killed} | {back or 'timed out'} | " + " | ".join(cells) + " |"


def summary(kind: str, results: list[Failover]) -> list[str]:
    lines = []
    for name in INTERVALS:
        values = [v for r in results if (v := r.times.get(name)) is not None]
        if not values:
            continue
        median = statistics.median(values)
        lines.append(
            f"| {kind} | {name} | {len(values)} | {median:.2f} | {max(values):.2f} "
            f"| {median / TARGET_S:.2f} |"
        )
    return lines


def machine_load(sample_s: float = 2.0) -> list[str]:
    """The load average and the processes that used CPU over a short sample (not this one)."""
    me = os.getpid()
    procs = [p for p in psutil.process_iter(["pid", "name", "cmdline"]) if p.pid != me]
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.cpu_percent(None)
    time.sleep(sample_s)
    busy = []
    for p in procs:
        with contextlib.suppress(psutil.Error):
            share = p.cpu_percent(None)
            if share >= 5.0:
                # The program and what it runs, never its arguments' values (tokens, URLs).
                words = [w for w in (p.info["cmdline"] or [])[:4] if not w.startswith("-")]
                busy.append((share, " ".join(Path(w).name for w in words)[:60] or p.info["name"]))
    one, five, fifteen = os.getloadavg()
    lines = [f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"]
    lines += [f"  {share:5.0f}% {what}" for share, what in sorted(busy, reverse=True)[:8]]
    return lines


async def main(args: argparse.Namespace) -> None:
    beat = FAST_HEARTBEAT if args.fast_heartbeat else DEFAULT_HEARTBEAT
    print(
        f"failovers per deployment: {args.failovers}; heartbeat "
        f"{beat['TRIAD_CLUSTER_HEARTBEAT_SECONDS']} s, TTL "
        f"{beat['TRIAD_CLUSTER_HEARTBEAT_TTL_SECONDS']} s; peers {PEER_OPTIONS}"
    )
    print("before:", *await asyncio.to_thread(machine_load), sep="\n")
    print(
        "\n| deployment | # | killed | back on | restarted (s) | placed (s) | rejoined (s) "
        "| decoding (s) |\n| --- | --- | --- | --- | --- | --- | --- | --- |",
        flush=True,
    )
    started = time.monotonic()
    bench_cpu = psutil.Process().cpu_times()
    everything: dict[str, list[Failover]] = {}
    async with asyncio.timeout(args.max_minutes * 60):
        for kind in args.deployments:
            everything[kind] = await run_deployment(kind, args)
    wall = time.monotonic() - started
    after = psutil.Process().cpu_times()
    used = after.user + after.system - bench_cpu.user - bench_cpu.system
    print(
        f"\n| deployment | interval | n | median (s) | max (s) | median / {TARGET_S:.0f} s |\n"
        "| --- | --- | --- | --- | --- | --- |"
    )
    for kind, results in everything.items():
        print(*summary(kind, results), sep="\n")
    print(f"\nwall {wall:.0f} s; the bench process (three peers) used {used / wall:.2f} CPU s/s")
    print("after:", *await asyncio.to_thread(machine_load), sep="\n")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--failovers", type=int, default=10, choices=range(1, 51), metavar="N")
    parser.add_argument("--deployments", nargs="+", choices=DEPLOYMENTS, default=list(DEPLOYMENTS))
    parser.add_argument(
        "--fast-heartbeat", action="store_true", help="0.5 s beat, 2 s TTL (the tests')"
    )
    parser.add_argument(
        "--database-url",
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL server where the bench may create and drop its own database",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--max-minutes", type=float, default=30.0)
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
