"""SFU benchmark: N three-party rooms of aiortc clients through `triad serve`, against the
MediaRelay (decode/re-encode) baseline in the same run; join time, a memory soak, a profile,
and a create/end churn. Prints figures; not part of the test suite.

    .venv/bin/python bench/sfu.py                                   # encoded + relay, N = 1 2 4 8
    .venv/bin/python bench/sfu.py --rooms 4 8 12 16 --modes encoded --client-procs 2
    .venv/bin/python bench/sfu.py --rooms 8 16 24 --modes encoded --light   # rooms per core
    .venv/bin/python bench/sfu.py --rooms --joins 30 --rtt-ms 0 80  # join time only
    .venv/bin/python bench/sfu.py --soak 600 --rooms 10 --modes encoded --client-procs 2
    .venv/bin/python bench/sfu.py --rooms 4 --modes encoded --profile /tmp/sfu.prof
    .venv/bin/python bench/sfu.py --rooms --churn 200               # create and end 200 rooms

Processes (everything binds 127.0.0.1 and stops by itself):

* encoded: `triad serve` itself, as its own process (tests/media/triadserver.py: a migrated
  SQLite database, a platform key, a free port, its default uvloop event loop). The rooms are
  made through the REST API as a platform makes them (an auto-admit consult, the client's
  consent), and the client processes join every seat over Socket.IO as the room page does
  (`bench/sfu_peers.SioSignaling`: the real python-socketio client, connect with the join
  token, `join`, answer each `signal` offer). The server's CPU, memory, descriptors and
  threads are read from outside, by psutil on its pid.
* relay: the MediaRelay baseline (`bench/sfu_relay.py`) is not something `triad serve` can
  run (the server only forwards packets), so it runs in a bench server process of its own
  (the `server` role below) behind a loopback HTTP offer/answer endpoint that stands in for
  Socket.IO. The same clients, in the same run, so the ratio of the two is one run's.
* `--client-procs` client processes, each holding a share of the rooms' clients.

Clients are cheap on purpose so one core can play many of them: they replay pre-encoded VP8
(640x480, ~1.2 Mbps, 30 fps, keyframe every 2 s, or on PLI) and Opus through aiortc's
`pack()` path, and count the complete encoded frames they receive per remote track. One
subscriber per room also decodes one remote video track with libvpx, to show the forwarded
frames decode. The clients count every SRTP/SRTCP datagram they send (all of it goes to the
server): "in pkt/s" is the RTP (media and retransmissions) the server received, and "us/pkt"
the server's CPU per incoming RTP packet (RTCP is printed beside it, not counted in).
"delivered" is video frames received over 30 fps on every remote track; "sent" is what the
publishers produced (under 30 fps: the load generator, not the server, fell short).

`--light` (the `triad serve` rows only): the clients are `bench/lightpeer.py`'s, which use
aiortc for ICE and DTLS only and send and count packets themselves (no decoding, RTCP at about
an aiortc client's rate), so one client process carries about 30 rooms and the server, not the
load generator, is what runs out on two cores. Without it the aiortc clients saturate a core at
about 8 rooms.

`--joins`: the therapist and the psychiatrist publish, and the client joins and leaves, each
time from its socket connect to its first remote frame decoded by aiortc's own receiver; with
`--rtt-ms`, the joining client's media goes through tests/media/linkemu.py's `Link` with that
round trip (half each way) and its socket through `bench/tcpdelay.py` (the same delay, plus a
round trip for the TCP handshake). `--churn`: see `bench/sfu_churn.py`. `--profile`: cProfile
of the server's event loop over the measured window (`bench/triadprobe.py`, `triad serve` with
a debug signal; the relay server toggles its own).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import math
import os
import pstats
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
from aiohttp import web  # noqa: E402
from serverview import PROBE, Outside  # noqa: E402
from sfu_peers import FPS, HOST, run_clients, run_joins, wait_for  # noqa: E402
from sfu_relay import RelaySfu  # noqa: E402

from server.ids import ParticipantId  # noqa: E402
from server.rooms.media import MediaConfig, Offer  # noqa: E402
from tests import ports  # noqa: E402
from tests.media.triadserver import ROLES, SERVE, TriadServer  # noqa: E402

SOAK_SAMPLE_S = 30

# --- the relay baseline's server process -----------------------------------------------------


class Mailbox:
    """Where the bench server's offers wait, in a queue per participant."""

    def __init__(self) -> None:
        self.queues: dict[str, asyncio.Queue[dict[str, Any]]] = {}

    def queue(self, pid: str) -> asyncio.Queue[dict[str, Any]]:
        return self.queues.setdefault(pid, asyncio.Queue())

    def connection(self, pid: str) -> MailboxConnection:
        return MailboxConnection(self.queue(pid))


class MailboxConnection:
    """One participant's connection as the relay SFU sees it (a `MediaSink`)."""

    def __init__(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._queue = queue

    async def send_offer(self, offer: Offer, *, generation: int) -> None:
        tracks = [[t.mid, t.participant_id, t.kind] for t in offer.tracks]
        self._queue.put_nowait({"sdp": offer.sdp, "tracks": tracks, "pc": generation})

    async def send_media_quality(
        self, publisher: ParticipantId, *, video_paused: bool, screen: bool = False
    ) -> None:
        pass


async def serve_relay(args: argparse.Namespace) -> None:
    config = MediaConfig(host_addresses=(HOST,))
    mailbox = Mailbox()
    rooms: dict[str, RelaySfu] = {}
    done = asyncio.Event()
    profiler = cProfile.Profile() if args.profile else None

    async def join(request: web.Request) -> web.Response:
        body = await request.json()
        room = rooms.get(body["room"])
        if room is None:
            room = rooms[body["room"]] = RelaySfu(config)
        await room.add(ParticipantId(body["pid"]), mailbox.connection(body["pid"]))
        return web.json_response(await mailbox.queue(body["pid"]).get())

    async def answer(request: web.Request) -> web.Response:
        body = await request.json()
        await rooms[body["room"]].answer(ParticipantId(body["pid"]), body["pc"], body["sdp"])
        return web.json_response({"ok": True})

    async def next_offer(request: web.Request) -> web.Response:
        pid = request.query["pid"]
        try:
            offer = await asyncio.wait_for(mailbox.queue(pid).get(), 10)
        except TimeoutError:
            return web.Response(status=204)
        return web.json_response(offer)

    async def stats(request: web.Request) -> web.Response:
        total: Counter[str] = Counter()
        for sfu in rooms.values():
            s = sfu.stats()
            total["forwarded_video"] += sum(
                v for k, v in s.forwarded_frames.items() if k[1] == "video"
            )
            total["decoded"] += s.decoded_frames
        return web.json_response(dict(total))

    async def profile(request: web.Request) -> web.Response:
        if profiler is not None:
            profiler.enable() if request.query.get("on") else profiler.disable()
        return web.json_response({"ok": True})

    async def quit_(request: web.Request) -> web.Response:
        done.set()
        return web.json_response({"ok": True})

    app = web.Application()
    app.add_routes(
        [
            web.post("/join", join),
            web.post("/answer", answer),
            web.get("/offer", next_offer),
            web.get("/stats", stats),
            web.post("/profile", profile),
            web.post("/quit", quit_),
        ]
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, HOST, args.port).start()
    print("READY", flush=True)
    await done.wait()
    for sfu in rooms.values():
        await sfu.close()
    await runner.cleanup()
    if profiler is not None:
        profiler.dump_stats(args.profile)


# --- the machine and the server, from outside -------------------------------------------------


def machine_busy() -> float:
    """CPU seconds the whole machine spent busy (all cores)."""
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


def udp_rcvbuf_errors() -> int:
    """Datagrams the kernel dropped because a socket's receive buffer was full (Linux)."""
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()]
    udp = [line for line in lines if line[0] == "Udp:"]
    return int(dict(zip(udp[0], udp[1], strict=True)).get("RcvbufErrors", 0))


def cpu_seconds(ps: psutil.Process) -> float:
    times = ps.cpu_times()
    return float(times.user + times.system)


# --- what the rooms run against -------------------------------------------------------------


def post(url: str) -> None:
    import urllib.request

    urllib.request.urlopen(
        urllib.request.Request(url, data=b"{}", method="POST"), timeout=30
    ).read()


@dataclass
class Target:
    """The server under measurement: its process, what the client processes need to reach
    it, and its profiler switch."""

    ps: psutil.Process
    client_args: list[str]
    profile: Callable[[bool], Awaitable[None]]
    stats: Callable[[], dict[str, int]] | None = None


class RelayServer:
    def __init__(self, profile: str | None) -> None:
        self.port = ports.free_port()
        self.url = f"http://{HOST}:{self.port}"
        cmd = [sys.executable, __file__, "server", "--port", str(self.port)]
        if profile:
            cmd += ["--profile", profile]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "READY"
        self.ps = psutil.Process(self.proc.pid)

    def stats(self) -> dict[str, int]:
        import urllib.request

        with urllib.request.urlopen(f"{self.url}/stats", timeout=30) as r:
            return dict(json.loads(r.read()))

    async def profile(self, on: bool) -> None:
        await asyncio.to_thread(post, f"{self.url}/profile" + ("?on=1" if on else ""))

    def stop(self) -> None:
        post(f"{self.url}/quit")
        self.proc.wait(timeout=60)


async def make_plan(triad: TriadServer, rooms: int, path: Path) -> None:
    """`rooms` consults through the REST API; their seats for the client processes."""
    made = []
    for _ in range(rooms):
        consult = await triad.new_consult()
        seats = [asdict(consult.seat(role)) for role in ROLES]
        made.append({"consult_id": consult.consult_id, "seats": seats})
    write_json(path, {"base_url": triad.base_url, "rooms": made})


def write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value))


@contextlib.asynccontextmanager
async def target(mode: str, rooms: int, args: argparse.Namespace) -> AsyncIterator[Target]:
    if mode == "relay":
        relay = RelayServer(args.profile)
        try:
            yield Target(relay.ps, ["--url", relay.url], relay.profile, relay.stats)
        finally:
            relay.stop()
        return
    with tempfile.TemporaryDirectory(prefix="sfu-bench-") as tmp:
        directory = Path(tmp)
        command = PROBE if args.profile else SERVE
        async with TriadServer.running(
            directory, command=command, env={"BENCH_PROBE_DIR": tmp}
        ) as triad:
            await make_plan(triad, rooms, directory / "plan.json")

            async def profile(on: bool) -> None:
                if not args.profile:
                    return
                triad.process.send_signal(signal.SIGUSR2)
                if not on:
                    written = directory / "profile.prof"
                    if not await wait_for(written.exists, 60):
                        raise RuntimeError("the server wrote no profile")
                    shutil.copy(written, args.profile)

            try:
                yield Target(triad.process, ["--plan", str(directory / "plan.json")], profile)
            except BaseException:
                print(f"server log tail:\n{triad.log_tail()}", file=sys.stderr)
                raise
            finally:
                if args.server_log:  # the directory goes with the run
                    shutil.copy(triad.log_path, args.server_log)


# --- one row --------------------------------------------------------------------------------


@dataclass
class Row:
    mode: str
    rooms: int
    procs: int
    server_cpu: float
    other_cpu: float
    outside: Outside
    udp_drops: int
    clients: list[tuple[int, dict[str, Any]]]  # (rooms, RESULT) per client process
    server_stats: dict[str, int] | None
    samples: list[tuple[float, Outside]] = field(default_factory=list)

    def mean(self, key: str) -> float:
        return sum(share * r[key] for share, r in self.clients) / self.rooms

    def total(self, key: str) -> float:
        return float(sum(r[key] for _, r in self.clients))

    @property
    def delivered(self) -> float:
        """Video frames received over what 30 fps on every remote track would be."""
        return self.mean("video_fps") / FPS

    @property
    def of_sent(self) -> float:
        """Video frames received over what the publishers sent (each goes to two)."""
        sent = 2 * self.total("video_sent")
        return self.total("video_received") / sent if sent else 0.0

    @property
    def sent_fps_min(self) -> float:
        return min(r["sent_fps_min"] for _, r in self.clients)

    @property
    def us_per_packet(self) -> float:
        rate = self.total("rtp_rate")
        return 1e6 * self.server_cpu / rate if rate else math.inf

    @property
    def ms_per_frame(self) -> float:
        delivered = self.mean("video_fps") * self.rooms * 6  # six remote video tracks a room
        return 1000 * self.server_cpu / delivered if delivered else math.inf

    @property
    def load_generator_short(self) -> bool:
        """The clients, not the server, fell short: publishers under 95% of 30 fps, or the
        client processes near a core each."""
        return self.sent_fps_min < 0.95 * FPS or self.total("client_cpu") > 0.9 * self.procs


async def read_line(proc: asyncio.subprocess.Process, prefix: str, within: float) -> str:
    assert proc.stdout is not None
    async with asyncio.timeout(within):
        while line := (await proc.stdout.readline()).decode():
            if line.startswith(prefix):
                return line
    raise RuntimeError(f"a client process exited before {prefix}")


async def measure(mode: str, rooms: int, args: argparse.Namespace, seconds: float) -> Row:
    """One server, `args.client_procs` client processes sharing the rooms; one window."""
    async with target(mode, rooms, args) as server:
        shares = [
            rooms // args.client_procs + (i < rooms % args.client_procs)
            for i in range(args.client_procs)
        ]
        procs: list[tuple[int, asyncio.subprocess.Process]] = []
        offset = 0
        try:
            for share in filter(None, shares):
                cmd = [
                    sys.executable,
                    __file__,
                    "clients",
                    *server.client_args,
                    "--size",
                    *map(str, args.size),
                    "--rooms",
                    str(share),
                    "--room-offset",
                    str(offset),
                    "--warm",
                    str(args.warm),
                    "--measure",
                    str(seconds),
                    *(["--light"] if args.light else []),
                ]
                proc = await asyncio.create_subprocess_exec(
                    *cmd, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
                )
                procs.append((share, proc))
                offset += share
            for _, proc in procs:  # every client process has joined and warmed up
                await read_line(proc, "WARM", 120 + 5 * rooms + args.warm)
            drops0 = udp_rcvbuf_errors()
            await server.profile(True)
            cpu0, t0, busy0 = cpu_seconds(server.ps), time.monotonic(), machine_busy()
            for _, proc in procs:
                assert proc.stdin is not None
                proc.stdin.write(b"GO\n")
                await proc.stdin.drain()
            sampler = asyncio.ensure_future(sample(server.ps, args.soak))
            clients = []
            for share, proc in procs:
                line = await read_line(proc, "RESULT", seconds + 120)
                clients.append((share, json.loads(line.split(" ", 1)[1])))
            elapsed = time.monotonic() - t0
            server_cpu = (cpu_seconds(server.ps) - cpu0) / elapsed
            other = (machine_busy() - busy0) / elapsed - server_cpu
            await server.profile(False)
            sampler.cancel()
            samples = await asyncio.gather(sampler, return_exceptions=True)
            row = Row(
                mode=mode,
                rooms=rooms,
                procs=len(procs),
                server_cpu=server_cpu,
                other_cpu=other - sum(r["client_cpu"] for _, r in clients),
                outside=Outside.of(server.ps),
                udp_drops=udp_rcvbuf_errors() - drops0,
                clients=clients,
                server_stats=server.stats() if server.stats else None,
                samples=samples[0] if isinstance(samples[0], list) else [],
            )
            for _, proc in procs:
                await asyncio.wait_for(proc.wait(), 120)
            return row
        finally:
            for _, proc in procs:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()


async def sample(ps: psutil.Process, soak: float) -> list[tuple[float, Outside]]:
    """Every 30 s while soaking: the server as psutil sees it (cancelled at the window's end,
    returning what it has)."""
    samples: list[tuple[float, Outside]] = []
    if not soak:
        return samples
    start = time.monotonic()
    try:
        while True:
            samples.append((time.monotonic() - start, Outside.of(ps)))
            await asyncio.sleep(SOAK_SAMPLE_S)
    except asyncio.CancelledError:
        return samples


# --- reports --------------------------------------------------------------------------------

HEADER = (
    "mode     rooms  srv CPU s/s  per room  video fps/track (min)  delivered  of sent  "
    "sent fps (min)  audio fps  dec fps  dec err  srv RSS MB  client CPU  in pkt/s  "
    "srv us/pkt  srv ms/frame"
)


def print_row(r: Row) -> None:
    print(
        f"{r.mode:8} {r.rooms:5}  {r.server_cpu:11.2f}  {r.server_cpu / r.rooms:8.3f}  "
        f"{r.mean('video_fps'):12.1f} ({min(c['video_fps_min'] for _, c in r.clients):4.1f})  "
        f"{100 * r.delivered:8.1f}%  {100 * r.of_sent:6.1f}%  "
        f"{r.mean('sent_fps'):7.1f} ({r.sent_fps_min:4.1f})  {r.mean('audio_fps'):9.1f}  "
        f"{r.mean('decoded_fps'):7.1f}  {r.total('decode_errors'):7.0f}  "
        f"{r.outside.rss_mb:10.0f}  {r.total('client_cpu'):10.2f}  {r.total('rtp_rate'):8.0f}  "
        f"{r.us_per_packet:10.1f}  {r.ms_per_frame:12.3f}",
        flush=True,
    )
    notes = [
        f"RTCP in {r.total('rtcp_rate'):.0f}/s",
        f"UDP receive-buffer drops {r.udp_drops}",
        f"other processes {r.other_cpu:.2f} CPU s/s",
        f"server fds {r.outside.fds}, threads {r.outside.threads}",
    ]
    if r.server_stats is not None:
        notes.append(f"relay server {r.server_stats}")
    for key, what in (
        ("not_ready", "clients without both remotes' video after 60 s"),
        ("restarts", "peer connections restarted by the server"),
        ("media_quality", "media-quality events"),
    ):
        if r.total(key):
            notes.append(f"{what}: {r.total(key):.0f}")
    for key in ("failures", "violations"):
        found = [x for _, c in r.clients for x in c[key]]
        if found:
            notes.append(f"{key}: {found[:3]}")
    print("  " + "; ".join(notes))
    if r.samples:
        print(f"  every {SOAK_SAMPLE_S} s: RSS MB / fds / threads / UDP sockets:")
        print(
            "  "
            + "  ".join(f"{o.rss_mb:.0f}/{o.fds}/{o.threads}/{o.udp_sockets}" for _, o in r.samples)
        )


def summarize(rows: list[Row]) -> None:
    """The issue's figures from the rows of this run."""
    encoded = sorted((r for r in rows if r.mode == "encoded"), key=lambda r: r.rooms)
    relay = {r.rooms: r for r in rows if r.mode == "relay"}
    print()
    for r in encoded:
        if r.rooms in relay:
            ratio = relay[r.rooms].ms_per_frame / r.ms_per_frame
            print(
                f"server CPU per delivered frame, relay / encoded, {r.rooms} room(s): "
                f"{ratio:.1f}x (target >= 20x; relay delivered "
                f"{100 * relay[r.rooms].delivered:.0f}%)"
            )
    passing = [r for r in encoded if r.delivered >= 0.95]
    if not passing:
        if encoded:
            print("no encoded row delivered >= 95% of frames")
        return
    best = passing[-1]
    with_rtcp = 1e6 * best.server_cpu / (best.total("rtp_rate") + best.total("rtcp_rate"))
    print(
        f"server CPU per incoming RTP packet at {best.rooms} room(s): {best.us_per_packet:.1f} us "
        f"(target <= 50 us; {with_rtcp:.1f} us counting RTCP in; all rows: "
        + ", ".join(f"{r.rooms}: {r.us_per_packet:.1f}" for r in encoded)
        + ")"
    )
    per_room = best.server_cpu / best.rooms
    print(
        f"largest row at >= 95% delivered: {best.rooms} room(s), {100 * best.delivered:.1f}% "
        f"delivered, server {best.server_cpu:.2f} CPU s/s = {per_room:.3f} per room, i.e. "
        f"{1 / per_room:.1f} rooms per core (target >= 30)"
    )
    failing = [r for r in encoded if r.rooms > best.rooms]
    if best.server_cpu < 0.9:
        if failing and failing[0].load_generator_short:
            first = failing[0]
            print(
                f"  the load generator ran out first: at {first.rooms} rooms the publishers "
                f"sent {first.sent_fps_min:.1f} fps at worst and the clients used "
                f"{first.total('client_cpu'):.2f} CPU s/s, the server {first.server_cpu:.2f}; "
                f"the rooms per core above are implied by the server's CPU per room"
            )
        elif failing:
            print(
                f"  at {failing[0].rooms} rooms delivery fell to "
                f"{100 * failing[0].delivered:.1f}% with the server at "
                f"{failing[0].server_cpu:.2f} CPU s/s: see that row's notes"
            )
        else:
            print(
                "  the server was under one core at the largest row tried: the rooms per "
                "core are implied by its CPU per room, not measured at saturation"
            )


async def report_rows(args: argparse.Namespace) -> None:
    w, h = args.size
    print(f"\n## {w}x{h} {FPS} fps, {args.measure:.0f} s measured after {args.warm:.0f} s warm-up")
    print(
        "encoded: `triad serve` (Socket.IO, uvloop); relay: the bench's MediaRelay server "
        f"(HTTP stand-in); {args.client_procs} client process(es); load average before: "
        + " ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    print(HEADER)
    rows = []
    for mode in args.modes:
        for rooms in args.rooms:
            row = await measure(mode, rooms, args, args.measure)
            print_row(row)
            rows.append(row)
    summarize(rows)


def spread(values: list[float]) -> str:
    ms = sorted(1000 * v for v in values)
    if not ms:
        return "none"
    p95 = ms[min(len(ms) - 1, math.ceil(0.95 * len(ms)) - 1)]
    return f"median {statistics.median(ms):.0f} ms, p95 {p95:.0f} ms, max {ms[-1]:.0f} ms"


async def report_joins(args: argparse.Namespace) -> None:
    print(
        "\njoin through `triad serve` over Socket.IO (an auto-admit consult on SQLite; the "
        "therapist and the psychiatrist publish, the client joins and leaves):"
    )
    with tempfile.TemporaryDirectory(prefix="sfu-joins-") as tmp:
        async with TriadServer.running(Path(tmp)) as triad:
            await make_plan(triad, 1, Path(tmp) / "plan.json")
            cmd = [
                sys.executable,
                __file__,
                "joins",
                "--plan",
                str(Path(tmp) / "plan.json"),
                "--joins",
                str(args.joins),
                "--size",
                *map(str, args.size),
                "--rtt-ms",
                *map(str, args.rtt_ms),
            ]
            proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE)
            try:
                line = await read_line(proc, "RESULT", 120 + 40 * args.joins * len(args.rtt_ms))
                await asyncio.wait_for(proc.wait(), 60)
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
    results = json.loads(line.split(" ", 1)[1])
    for rtt, r in results.items():
        where = "loopback" if float(rtt) == 0 else f"{float(rtt):.0f} ms RTT link"
        target = "250" if float(rtt) == 0 else "400"
        print(
            f"{where}: join -> first remote frame: {spread(r['join'])} over "
            f"{len(r['join'])} joins (target median <= {target} ms)"
        )
        print(f"  socket connect -> first remote frame: {spread(r['connect'])}")
        print(f"  join -> both remotes: {spread(r['both'])}")
        print(
            f"  join -> offer received: {spread(r['offer'])}; -> answer sent: {spread(r['answer'])}"
        )
        print(
            f"  join -> ICE connected: {spread(r['ice'])}; -> DTLS connected: {spread(r['dtls'])}"
        )
        if r["failed"]:
            print(f"  {r['failed']} failed: {r['failures']}")


def print_profile(path: str, top: int = 30) -> None:
    stats = pstats.Stats(path)
    stats.sort_stats("tottime").print_stats(top)


async def bench(args: argparse.Namespace) -> None:
    if args.rooms:
        await report_rows(args)
    if args.joins:
        await report_joins(args)
    if args.churn:
        from sfu_churn import report_churn

        await report_churn(args.churn, args.churn_batch, args.size)
    if args.profile and args.rooms:
        print_profile(args.profile)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "role", nargs="?", default="bench", choices=["bench", "server", "clients", "joins"]
    )
    parser.add_argument("--modes", nargs="+", default=["encoded", "relay"])
    parser.add_argument("--rooms", nargs="*", type=int, default=[1, 2, 4, 8])
    parser.add_argument("--size", nargs=2, type=int, default=[640, 480])
    parser.add_argument("--warm", type=float, default=5)
    parser.add_argument("--measure", type=float, default=15)
    parser.add_argument("--client-procs", type=int, default=1)
    parser.add_argument(
        "--light",
        action="store_true",
        help="light clients (bench/lightpeer.py): packets, not aiortc's media path",
    )
    parser.add_argument("--joins", type=int, default=0, help="joins per round trip")
    parser.add_argument(
        "--rtt-ms",
        nargs="+",
        type=float,
        default=[0.0],
        help="the joining client's round trip(s), ms (0: plain loopback)",
    )
    parser.add_argument("--soak", type=float, default=0, help="one long window, seconds")
    parser.add_argument("--churn", type=int, default=0, help="rooms to create and end")
    parser.add_argument("--churn-batch", type=int, default=10, help="rooms alive at once")
    parser.add_argument("--profile", nargs="?", const="/tmp/triad-sfu.prof", default=None)
    parser.add_argument(
        "--server-log", default="", help="copy triad serve's log here (WEAKLINK_SERVER_LOG_LEVEL)"
    )
    # The roles' own options.
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--url", default="")
    parser.add_argument("--plan", default="")
    parser.add_argument("--room-offset", type=int, default=0)
    args = parser.parse_args()
    if args.role == "server":
        asyncio.run(serve_relay(args))
    elif args.role == "clients":
        args.rooms = args.rooms[0]
        asyncio.run(run_clients(args))
    elif args.role == "joins":
        asyncio.run(run_joins(args))
    else:
        if args.soak:
            args.measure = args.soak
        asyncio.run(bench(args))
    # aiortc and socketio leave threads behind; every figure is printed by now.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
