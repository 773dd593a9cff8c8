"""The server process as the bench sees it: from outside (psutil on its pid), and from inside
through `bench/triadprobe.py` (`triad serve` with a debug signal)."""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from sfu_peers import wait_for

# `triad serve` with the probe's signals (tests/media/triadserver.py's `command`).
PROBE = (str(Path(__file__).resolve().parent / "triadprobe.py"), "serve")


@dataclass(frozen=True)
class Outside:
    """What psutil sees of the server process."""

    rss_mb: float
    fds: int
    threads: int
    udp_sockets: int
    tcp_connections: int

    @classmethod
    def of(cls, ps: psutil.Process) -> Outside:
        return cls(
            rss_mb=ps.memory_info().rss / 2**20,
            fds=ps.num_fds(),
            threads=ps.num_threads(),
            udp_sockets=len(ps.net_connections("udp")),
            tcp_connections=len(ps.net_connections("tcp")),
        )


async def probe_counts(ps: psutil.Process, directory: Path, n: int) -> dict[str, Any]:
    """Ask `bench/triadprobe.py` for its n-th count (SIGUSR1) and read it."""
    path = directory / f"counts-{n}.json"
    ps.send_signal(signal.SIGUSR1)
    if not await wait_for(path.exists, 60):
        raise RuntimeError("the server wrote no counts")
    counts: dict[str, Any] = json.loads(path.read_bytes())
    return counts
