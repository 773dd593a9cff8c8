"""SFU benchmark: N three-party rooms of aiortc clients against the encoded SFU and the
MediaRelay (decode/re-encode) baseline, in one run. Prints figures; not part of the test suite.

    .venv/bin/python bench/sfu.py                      # both modes, N = 1, 2, 4, 8
    .venv/bin/python bench/sfu.py --rooms 1 2 4 8 12 --modes encoded
    .venv/bin/python bench/sfu.py --joins 20 --rooms   # join time only
    .venv/bin/python bench/sfu.py --soak 600 --rooms 4 # memory over 10 minutes
    .venv/bin/python bench/sfu.py --profile --rooms 4 --modes encoded

Processes: one server process (an `Sfu` per room, or in relay mode the bench's own
`sfu_relay.RelaySfu`, behind a loopback-only HTTP offer/answer endpoint that stands in for
Socket.IO) and one client process holding every room's clients.
Everything binds 127.0.0.1 and every process stops by itself.

Clients are cheap on purpose so one core can play many of them: they replay pre-encoded VP8
(640x480, ~1.2 Mbps, 30 fps, keyframe every 2 s, or on PLI) and Opus through aiortc's
`pack()` path, and count the complete encoded frames they receive per remote track. One
subscriber per room also decodes one remote video track with libvpx, to show the forwarded
frames decode. Join time uses a normal decoding aiortc client.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import math
import os
import pstats
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
from aiohttp import web  # noqa: E402
from sfu_peers import FPS, HOST, run_clients, run_joins, run_sio_joins  # noqa: E402
from sfu_relay import RelaySfu  # noqa: E402

from server.ids import ParticipantId  # noqa: E402
from server.rooms.media import MediaConfig, Offer, Sfu  # noqa: E402

# --- server process ------------------------------------------------------------------------


class Mailbox:
    """Where the bench server's offers wait, in a queue per participant."""

    def __init__(self) -> None:
        self.queues: dict[str, asyncio.Queue[dict[str, Any]]] = {}

    def queue(self, pid: str) -> asyncio.Queue[dict[str, Any]]:
        return self.queues.setdefault(pid, asyncio.Queue())

    def connection(self, pid: str) -> MailboxConnection:
        return MailboxConnection(self.queue(pid))


class MailboxConnection:
    """One participant's connection as the SFU sees it (a `MediaSink`)."""

    def __init__(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._queue = queue

    async def send_offer(self, offer: Offer, *, generation: int) -> None:
        tracks = [[t.mid, t.participant_id, t.kind] for t in offer.tracks]
        self._queue.put_nowait({"sdp": offer.sdp, "tracks": tracks, "pc": generation})

    async def send_media_quality(self, publisher: ParticipantId, *, video_paused: bool) -> None:
        pass  # the bench counts pauses in the server's stats


async def serve(args: argparse.Namespace) -> None:
    config = MediaConfig(host_addresses=(HOST,), publisher_remb=not args.no_remb)
    mailbox = Mailbox()
    rooms: dict[str, Sfu | RelaySfu] = {}
    done = asyncio.Event()
    profiler = cProfile.Profile() if args.profile else None

    async def join(request: web.Request) -> web.Response:
        body = await request.json()
        room = rooms.get(body["room"])
        if room is None:
            room = rooms[body["room"]] = Sfu(config) if args.mode == "encoded" else RelaySfu(config)
        await room.add(ParticipantId(body["pid"]), mailbox.connection(body["pid"]))
        return web.json_response(await mailbox.queue(body["pid"]).get())

    async def leave(request: web.Request) -> web.Response:
        body = await request.json()
        await rooms[body["room"]].remove(ParticipantId(body["pid"]))
        return web.json_response({"ok": True})

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
            total["dropped"] += sum(s.dropped_frames.values())
            total["decoded"] += s.decoded_frames
            total["plis"] += sum(s.keyframe_requests_sent.values())
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
            web.post("/leave", leave),
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


# --- orchestration ---------------------------------------------------------------------------


def machine_busy() -> float:
    """CPU seconds the whole machine spent busy (all cores)."""
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


def udp_rcvbuf_errors() -> int:
    """Datagrams the kernel dropped because a socket's receive buffer was full (Linux)."""
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()]
    udp = [line for line in lines if line[0] == "Udp:"]
    return int(dict(zip(udp[0], udp[1], strict=True)).get("RcvbufErrors", 0))


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def post(url: str) -> None:
    import urllib.request

    urllib.request.urlopen(
        urllib.request.Request(url, data=b"{}", method="POST"), timeout=30
    ).read()


class Server:
    def __init__(self, mode: str, profile: str | None = None, no_remb: bool = False) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        cmd = [sys.executable, __file__, "server", "--mode", mode, "--port", str(self.port)]
        if no_remb:
            cmd.append("--no-remb")
        if profile:
            cmd += ["--profile", profile]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "READY"
        self.ps = psutil.Process(self.proc.pid)

    def cpu(self) -> float:
        times = self.ps.cpu_times()
        return times.user + times.system

    def stats(self) -> dict[str, int]:
        import urllib.request

        with urllib.request.urlopen(f"{self.url}/stats", timeout=30) as r:
            return dict(json.loads(r.read()))

    def stop(self) -> None:
        post(f"{self.url}/quit")
        self.proc.wait(timeout=60)


def clients_cmd(kind: str, url: str, args: argparse.Namespace, **extra: Any) -> list[str]:
    cmd = [sys.executable, __file__, kind, "--url", url, "--size", *map(str, args.size)]
    for key, value in extra.items():
        cmd += [f"--{key}", str(value)]
    return cmd


def measure(mode: str, rooms: int, args: argparse.Namespace, seconds: float) -> dict[str, Any]:
    """One server, `args.client_procs` client processes sharing the rooms; one window."""
    server = Server(mode, args.profile_path if args.profile else None, args.no_remb)
    try:
        shares = [
            rooms // args.client_procs + (i < rooms % args.client_procs)
            for i in range(args.client_procs)
        ]
        procs = []
        offset = 0
        for share in filter(None, shares):
            cmd = clients_cmd(
                "clients",
                server.url,
                args,
                rooms=share,
                warm=args.warm,
                measure=seconds,
                **{"room-offset": offset},
            )
            procs.append((share, subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)))
            offset += share
        drops0 = udp_rcvbuf_errors()
        for _, proc in procs:  # every client process has joined and warmed up
            assert proc.stdout is not None
            while not proc.stdout.readline().startswith("WARM"):
                pass
        cpu0, t0, busy0 = server.cpu(), time.monotonic(), machine_busy()
        if args.profile:
            post(f"{server.url}/profile?on=1")
        rss: list[float] = []
        if args.soak:
            while any(p.poll() is None for _, p in procs) and time.monotonic() - t0 < seconds - 1:
                rss.append(server.ps.memory_info().rss / 2**20)
                time.sleep(30)
        parts: list[tuple[int, dict[str, Any]]] = []
        for share, proc in procs:
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.startswith("RESULT"):
                    parts.append((share, json.loads(line.split(" ", 1)[1])))
                    break
        elapsed = time.monotonic() - t0
        result: dict[str, Any] = {
            key: sum(share * r[key] for share, r in parts) / rooms
            for key in ("video_fps", "audio_fps", "decoded_fps")
        }
        result["video_fps_min"] = min(r["video_fps_min"] for _, r in parts)
        result["decode_errors"] = sum(r["decode_errors"] for _, r in parts)
        result["client_cpu"] = sum(r["client_cpu"] for _, r in parts)
        result["server_cpu"] = (server.cpu() - cpu0) / elapsed
        result["other_cpu"] = (
            (machine_busy() - busy0) / elapsed - result["server_cpu"] - result["client_cpu"]
        )
        result["server_rss_mb"] = server.ps.memory_info().rss / 2**20
        result["server_stats"] = server.stats()
        if args.profile:
            post(f"{server.url}/profile")
        for _, proc in procs:
            proc.wait(timeout=120)
        result["rss_samples"] = rss
        result["udp_drops"] = udp_rcvbuf_errors() - drops0
        return result
    finally:
        server.stop()


def report_rows(args: argparse.Namespace) -> None:
    w, h = args.size
    print(f"\n## {w}x{h} {FPS} fps, {args.measure:.0f} s measured after {args.warm:.0f} s warm-up")
    print(
        "mode     rooms  srv CPU s/s  per room  video fps/track (min)  audio fps  "
        "decoded fps  dec err  srv RSS MB  client CPU  srv ms/frame"
    )
    per_frame: dict[tuple[str, int], float] = {}
    for mode in args.modes:
        for rooms in args.rooms:
            r = measure(mode, rooms, args, args.measure)
            delivered = r["video_fps"] * rooms * 6  # six remote video tracks per room
            ms = 1000 * r["server_cpu"] / delivered if delivered else math.inf
            per_frame[(mode, rooms)] = ms
            print(
                f"{mode:8} {rooms:5}  {r['server_cpu']:11.2f}  {r['server_cpu'] / rooms:8.3f}  "
                f"{r['video_fps']:12.1f} ({r['video_fps_min']:4.1f})  {r['audio_fps']:9.1f}  "
                f"{r['decoded_fps']:11.1f}  {r['decode_errors']:7}  {r['server_rss_mb']:10.0f}  "
                f"{r['client_cpu']:10.2f}  {ms:12.3f}",
                flush=True,
            )
            print(
                f"  server: {r['server_stats']}, UDP receive-buffer drops: {r['udp_drops']}, "
                f"CPU of other processes on the machine: {r['other_cpu']:.2f} s/s"
            )
            if r["rss_samples"]:
                print("  RSS MB every 30 s: " + " ".join(f"{x:.0f}" for x in r["rss_samples"]))
    for rooms in args.rooms:
        if ("encoded", rooms) in per_frame and ("relay", rooms) in per_frame:
            ratio = per_frame[("relay", rooms)] / per_frame[("encoded", rooms)]
            print(f"CPU per delivered frame, relay / encoded, {rooms} room(s): {ratio:.1f}x")


def report_joins(args: argparse.Namespace) -> None:
    if args.socketio:
        print("\njoin through `triad serve` over Socket.IO (auto-admit consult, SQLite):")
        cmd = clients_cmd("sio-joins", "", args, joins=args.joins)
        out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True, timeout=600).stdout
        result = json.loads(out.split("RESULT ", 1)[1])
    else:
        print("\njoin through the bench HTTP offer/answer endpoint:")
        server = Server("encoded")
        try:
            cmd = clients_cmd("joins", server.url, args, joins=args.joins)
            out = subprocess.run(
                cmd, stdout=subprocess.PIPE, text=True, check=True, timeout=600
            ).stdout
            result = json.loads(out.split("RESULT ", 1)[1])
        finally:
            server.stop()
    for name, values in (("first remote frame", result["first"]), ("both remotes", result["both"])):
        ms = sorted(1000 * v for v in values)
        p95 = ms[min(len(ms) - 1, math.ceil(0.95 * len(ms)) - 1)]
        print(
            f"join -> {name}: median {statistics.median(ms):.0f} ms, p95 {p95:.0f} ms, "
            f"max {ms[-1]:.0f} ms over {len(ms)} joins"
        )


def print_profile(path: str, top: int = 30) -> None:
    stats = pstats.Stats(path)
    stats.sort_stats("tottime").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "role",
        nargs="?",
        default="bench",
        choices=["bench", "server", "clients", "joins", "sio-joins"],
    )
    parser.add_argument("--mode", default="encoded", choices=["encoded", "relay"])
    parser.add_argument("--modes", nargs="+", default=["encoded", "relay"])
    parser.add_argument("--rooms", nargs="*", type=int, default=[1, 2, 4, 8])
    parser.add_argument("--size", nargs=2, type=int, default=[640, 480])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--url", default="")
    parser.add_argument("--warm", type=float, default=5)
    parser.add_argument("--measure", type=float, default=15)
    parser.add_argument("--joins", type=int, default=0)
    parser.add_argument("--client-procs", type=int, default=1)
    parser.add_argument("--room-offset", type=int, default=0)
    parser.add_argument(
        "--socketio", action="store_true", help="joins go through `triad serve` over Socket.IO"
    )
    parser.add_argument("--no-remb", action="store_true", help="server sends publishers no REMB")
    parser.add_argument("--soak", type=float, default=0)
    parser.add_argument("--profile", nargs="?", const="/tmp/triad-sfu.prof", default=None)
    args = parser.parse_args()
    args.profile_path = args.profile
    if args.role == "server":
        asyncio.run(serve(args))
    elif args.role == "clients":
        args.rooms = args.rooms[0]
        asyncio.run(run_clients(args))
    elif args.role == "joins":
        asyncio.run(run_joins(args))
    elif args.role == "sio-joins":
        asyncio.run(run_sio_joins(args))
    else:
        if args.soak:
            args.measure = args.soak
        if args.rooms:
            report_rows(args)
        if args.joins:
            report_joins(args)
        if args.profile:
            print_profile(args.profile)
    os._exit(0) if args.role != "bench" else None


if __name__ == "__main__":
    main()
