"""Weak-link benchmark: issue 12's table, measured through the real server.

A three-party consult per profile through one `triad serve` process: the therapist and the
psychiatrist on clean loopback, the client behind an emulated link (tests/media/linkemu.py, a
UDP relay on loopback). Each participant is a process of its own (the real Socket.IO client and
an aiortc peer sending 640x480 30 fps VP8 and Opus and decoding both others); the harness is
tests/media/weaklink.py. Prints one Markdown row per profile; not part of the test suite. Run
it alone on the machine: it needs both cores.

    .venv/bin/python bench/weaklink.py                              # every profile, 40 s each
    .venv/bin/python bench/weaklink.py --profiles clean lossy --seconds 20
    .venv/bin/python bench/weaklink.py --aiortc-floor               # aiortc's 250 kbit/s floor
    .venv/bin/python bench/weaklink.py --profiles downlink-600k --recovery 30  # then heals

Columns: what the client decodes of each clinician (video fps, seconds frozen in gaps over 1 s,
audio frames/s of 50), what each clinician decodes of the client's audio, and the bytes the
server offered toward the client's link and what the link delivered (UDP payload, Mbit/s).
Details follow the table: the clinicians' view of each other, the link's drops, the frames each
participant's tracks produced (under 50 audio / 30 video frames/s: that process was starved,
not the network), and the CPU of the server, the participants and the rest of the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.media.linkedpeer import PeerOptions  # noqa: E402
from tests.media.weaklink import (  # noqa: E402
    CLINICIANS,
    PROFILES,
    HarnessOptions,
    WeakLinkResult,
    harness,
)

HEADER = (
    "| client's link | client sees T / P (fps) | frozen T / P (s) | client hears T / P "
    "(audio frames/s of 50) | T / P hear the client | server offered the client (Mbit/s) "
    "| delivered (Mbit/s) |\n| --- | --- | --- | --- | --- | --- | --- |"
)


def row(result: WeakLinkResult) -> str:
    sees = [result.reception("client", c) for c in CLINICIANS]
    heard = [result.reception(c, "client").audio.fps for c in CLINICIANS]
    return (
        f"| {result.profile.title} "
        f"| {sees[0].video.fps:.1f} / {sees[1].video.fps:.1f} "
        f"| {sees[0].video.frozen_s:.1f} / {sees[1].video.frozen_s:.1f} "
        f"| {sees[0].audio.fps:.1f} / {sees[1].audio.fps:.1f} "
        f"| {heard[0]:.1f} / {heard[1]:.1f} "
        f"| {result.offered_to_client_bps / 1e6:.2f} "
        f"| {result.delivered_to_client_bps / 1e6:.2f} |"
    )


def details(result: WeakLinkResult) -> str:
    t_p = result.reception("therapist", "psychiatrist")
    p_t = result.reception("psychiatrist", "therapist")
    t_c = result.reception("therapist", "client")
    down, up = result.downlink, result.uplink
    return "\n".join(
        [
            f"  clinicians see each other {t_p.video.fps:.1f} / {p_t.video.fps:.1f} fps, hear "
            f"{t_p.audio.fps:.1f} / {p_t.audio.fps:.1f}; therapist sees the client "
            f"{t_c.video.fps:.1f} fps (frozen {t_c.video.frozen_s:.1f} s)",
            f"  downlink: {down.offered} datagrams offered, {down.lost} lost, "
            f"{down.overflowed} dropped by the queue; uplink: {up.offered} offered "
            f"({result.client_offered_bps / 1e6:.2f} Mbit/s), {up.lost} lost, "
            f"{up.overflowed} dropped by the queue, "
            f"{result.delivered_to_server_bps / 1e6:.2f} Mbit/s delivered",
            "  sent (audio / video frames/s): "
            + ", ".join(f"{role} {a:.1f} / {v:.1f}" for role, a, v in result.sent_fps),
            f"  media-quality events: {dict(result.media_quality_events)}; client peer "
            f"connections: {result.client_connections}; CPU s/s: server "
            f"{result.server_cpu:.2f}, clients {result.clients_cpu:.2f}, other processes "
            f"{result.other_cpu:.2f}; "
            f"window {result.window_s:.1f} s",
            *(
                [
                    "  after the link healed, the client's video of T / P returned after: "
                    + " / ".join(
                        "not yet" if s is None else f"{s:.1f} s" for _, s in result.returned_s
                    )
                ]
                if result.returned_s
                else []
            ),
            *(f"  contract violation: {v}" for v in result.contract_violations),
        ]
    )


async def run(args: argparse.Namespace) -> None:
    options = HarnessOptions(
        warmup_s=args.warmup,
        window_s=args.seconds,
        peers=PeerOptions(
            width=args.size[0],
            height=args.size[1],
            fps=args.fps,
            min_video_bitrate=None if args.aiortc_floor else args.min_video_bitrate,
        ),
        seed=args.seed,
        recovery_deadline_s=args.recovery,
    )
    floor = "aiortc's 250 kbit/s" if args.aiortc_floor else f"{args.min_video_bitrate} bit/s"
    print(
        f"{args.size[0]}x{args.size[1]} {args.fps} fps, {args.seconds:.0f} s measured after "
        f"{args.warmup:.0f} s warm-up, VP8 floor {floor}; load average before: "
        + " ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    print(HEADER, flush=True)
    notes = []
    async with harness(args.keep) as running:
        for key in args.profiles:
            result = await running.measure(PROFILES[key], options)
            print(row(result), flush=True)
            notes.append(f"{result.profile.title}:\n{details(result)}")
    print()
    print("\n".join(notes))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profiles", nargs="+", default=list(PROFILES), choices=list(PROFILES))
    parser.add_argument("--seconds", type=float, default=40, help="the measured window")
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--size", nargs=2, type=int, default=[640, 480])
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--min-video-bitrate", type=int, default=30_000)
    parser.add_argument(
        "--aiortc-floor", action="store_true", help="keep aiortc's own VP8 floor (250 kbit/s)"
    )
    parser.add_argument("--seed", type=int, default=0, help="the link's loss pattern")
    parser.add_argument(
        "--recovery",
        type=float,
        default=30,
        help="after the window the link heals: wait this long for the video to return (0: no)",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="a directory to keep the server's database and every process's log in",
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
