"""`bench/sfu.py --churn N`: create and end N rooms through `triad serve`, then say what the
server holds compared with before.

Each room is made as a platform makes it (`POST /api/v1/consults`, auto-admit, the client's
consent), its three seats join over Socket.IO with media flowing both ways (the bench's cheap
replaying clients, in this process), and it is ended: the even ones by the therapist's `end`
in the room, the odd ones by the platform's `POST /api/v1/consults/{id}/end`; everyone waits
for `ended`, then closes their socket and peer connection. `--churn-batch` rooms are alive at
a time. One batch first warms the server up (imports, caches, the database's connections);
the "before" counts are taken after it.

What is measured, the server process as it was before and after the churn:

* from outside (psutil): RSS, open file descriptors, threads, UDP sockets (each peer
  connection's ICE socket), TCP connections (the sockets), before, every 50 rooms, after;
* from inside, through `bench/triadprobe.py` (`triad serve` with a debug signal, SIGUSR1):
  the event loop's tasks by coroutine, and the garbage collector's objects by type, after a
  collection. A leak shows as a type (a room, a peer, a transport, a task) whose count grew
  with the rooms.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from serverview import PROBE, Outside, probe_counts  # noqa: E402
from sfu_peers import (  # noqa: E402
    BenchClient,
    SioSignaling,
    encode_audio,
    encode_video,
    wait_for,
)

from tests.media.triadserver import ROLES, TriadServer  # noqa: E402

CHECKPOINT_EVERY = 50
# The server's own sockets, tasks and objects come back to their level after the last room:
# how long to wait for that, from outside, before taking the "after" counts.
SETTLE_S = 30
# Then this long for what ends on a timer: Engine.IO closes a socket whose client went away
# within its ping interval + timeout (`TRIAD_SOCKET_PING_*`, 10 + 10 s); REST rate-limit
# buckets go after burst / rate (12 s) idle, at the next request.
QUIET_S = 25
# Modules whose objects are the rooms' and the media's, listed whether or not they changed.
WATCHED = ("server.", "aiortc.", "aioice.", "socketio.", "engineio.")


class Churn:
    def __init__(self, triad: TriadServer, media: dict[str, list[bytes]]) -> None:
        self.triad = triad
        self.media = media
        self.rooms = 0
        self.without_media = 0
        self.not_ended = 0
        self.failures: list[str] = []
        self.by_end: Counter[str] = Counter()

    async def batch(self, n: int) -> None:
        """`n` rooms at once: made, joined with media, ended, left."""
        consults = [await self.triad.new_consult() for _ in range(n)]
        rooms: list[list[SioSignaling]] = []
        for consult in consults:
            room = []
            for role in ROLES:
                seat = consult.seat(role)
                client = BenchClient(seat.participant_id, self.media, decode=False)
                signaling = SioSignaling(client, self.triad.base_url, seat.token)
                await signaling.start()
                room.append(signaling)
            rooms.append(room)
        everyone = [s for room in rooms for s in room]
        if not await wait_for(lambda: all(len(s.client.sees()) >= 2 for s in everyone), 30):
            self.without_media += sum(any(len(s.client.sees()) < 2 for s in room) for room in rooms)
        for consult, room in zip(consults, rooms, strict=True):
            if self.rooms % 2 == 0:
                ack = await room[0].call("end")  # the therapist, in the room
                if not ack.get("ok"):
                    self.failures.append(f"end refused: {ack['error']['code']}")
                self.by_end["the therapist's `end`"] += 1
            else:
                await self.triad.end_consult(consult.consult_id)
                self.by_end["POST .../end"] += 1
            self.rooms += 1
        if not await wait_for(lambda: all(s.room.received("ended") for s in everyone), 30):
            self.not_ended += sum(not all(s.room.received("ended") for s in r) for r in rooms)
        for signaling in everyone:
            await signaling.stop(leave=False)
            self.failures += signaling.failures
            self.failures += [f"{event}: {why}" for event, why in signaling.violations]


async def settle(triad: TriadServer, udp_before: int) -> float:
    """Wait until the server holds no more UDP sockets than before (or `SETTLE_S`), then
    `QUIET_S` for what ends on a timer; the seconds it took."""
    start = time.monotonic()
    await wait_for(lambda: Outside.of(triad.process).udp_sockets <= udp_before, SETTLE_S)
    await asyncio.sleep(QUIET_S)
    return time.monotonic() - start


def changed(before: dict[str, int], after: dict[str, int]) -> list[tuple[str, int, int]]:
    names = set(before) | set(after)
    return sorted(
        ((n, before.get(n, 0), after.get(n, 0)) for n in names if before.get(n) != after.get(n)),
        key=lambda x: -abs(x[2] - x[1]),
    )


def print_outside(rows: list[tuple[str, Outside]]) -> None:
    print("server, from outside (psutil):")
    print("  " + f"{'':18}" + "".join(f"{label:>12}" for label, _ in rows))
    for name, unit in (
        ("rss_mb", "RSS MB"),
        ("fds", "open fds"),
        ("threads", "threads"),
        ("udp_sockets", "UDP sockets"),
        ("tcp_connections", "TCP conns"),
    ):
        values = [getattr(o, name) for _, o in rows]
        print(
            "  "
            + f"{unit:18}"
            + "".join(f"{v:12.0f}" if isinstance(v, float) else f"{v:12}" for v in values)
        )


def print_inside(before: dict[str, Any], after: dict[str, Any], rooms: int) -> None:
    print("server, from inside (bench/triadprobe.py, after gc.collect()):")
    print(f"  asyncio tasks: {before['tasks']} -> {after['tasks']}")
    for name, b, a in changed(before["tasks_by_coroutine"], after["tasks_by_coroutine"]):
        print(f"    {name}: {b} -> {a}")
    print(f"  threads: {len(before['threads'])} -> {len(after['threads'])}")
    print(f"  objects: {before['objects']} -> {after['objects']}")
    moved = changed(before["objects_by_type"], after["objects_by_type"])
    watched = [m for m in moved if m[0].startswith(WATCHED)]
    print(
        f"  of the rooms' and media's modules ({', '.join(WATCHED)}), types whose count "
        f"changed ({len(watched)}):"
    )
    for name, b, a in watched[:25]:
        flag = "  <- grew with the rooms?" if a - b >= rooms else ""
        print(f"    {name}: {b} -> {a}{flag}")
    print("  every type, the 15 largest changes:")
    for name, b, a in moved[:15]:
        print(f"    {name}: {b} -> {a}")


async def report_churn(total: int, batch: int, size: list[int]) -> None:
    media = {"video": encode_video(*size), "audio": encode_audio()}
    print(f"\n## churn: {total} rooms created and ended through `triad serve`, {batch} at a time")
    with tempfile.TemporaryDirectory(prefix="sfu-churn-") as tmp:
        directory = Path(tmp)
        async with TriadServer.running(
            directory, command=PROBE, env={"BENCH_PROBE_DIR": tmp}
        ) as triad:
            try:
                await run(triad, directory, media, total, batch)
            except BaseException:
                print(f"server log tail:\n{triad.log_tail()}", file=sys.stderr)
                raise


async def run(
    triad: TriadServer, directory: Path, media: dict[str, list[bytes]], total: int, batch: int
) -> None:
    idle = Outside.of(triad.process)
    warm = Churn(triad, media)
    await warm.batch(batch)
    await settle(triad, idle.udp_sockets)
    ps = triad.process
    rows = [("before", Outside.of(ps))]
    inside_before = await probe_counts(ps, directory, 1)
    churn = Churn(triad, media)
    start = time.monotonic()
    while churn.rooms < total:
        done = churn.rooms
        await churn.batch(min(batch, total - done))
        if churn.rooms // CHECKPOINT_EVERY > done // CHECKPOINT_EVERY:
            rows.append((f"{churn.rooms} rooms", Outside.of(ps)))
    elapsed = time.monotonic() - start
    settled = await settle(triad, rows[0][1].udp_sockets)
    rows.append(("after", Outside.of(ps)))
    inside_after = await probe_counts(ps, directory, 2)
    ends = ", ".join(f"{n} by {how}" for how, n in churn.by_end.items())
    print(
        f"{churn.rooms} rooms in {elapsed:.0f} s ({ends}); "
        f"{churn.rooms - churn.without_media} with everyone's video both ways, "
        f"{churn.rooms - churn.not_ended} where everyone got `ended`; after-counts taken "
        f"{settled:.0f} s after the last room (the warm-up: {warm.rooms} rooms before "
        f"'before')"
    )
    if churn.failures or warm.failures:
        print(f"  failures: {(warm.failures + churn.failures)[:5]}")
    print_outside(rows)
    print_inside(inside_before, inside_after, churn.rooms)
