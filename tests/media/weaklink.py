"""The weak-link harness: a three-party consult through the real server, the client behind an
emulated network link, measured as the people in it would notice.

`triad serve` runs in its own process (its CPU is then its own); the therapist and the
psychiatrist are on clean loopback; the client's peer connection goes through a `Link` with the
profile's shaping. Each is the real python-socketio client with an aiortc peer sending 640x480
30 fps VP8 (by default) and Opus and decoding both others. After everyone is connected and a
warm-up, a window is measured: per receiver per remote, audio and video frames decoded per
second and the video freezes; what the server offered toward the client and what the link
delivered; the `media-quality` events each participant received; the CPU of the server and of
this process (which plays all three clients: if it is saturated, frame rates fall for that
reason, so it is printed).

From a test:

    results = await run_profiles([PROFILES["downlink-600k"]], HarnessOptions(window_s=20))
    heard = results[0].reception("client", "therapist").audio.fps
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from tests.media.linkedpeer import LinkedParticipant, LinkProfiles, PeerOptions
from tests.media.linkemu import DirectionStats, LinkProfile
from tests.media.mediafigures import Reception
from tests.media.triadserver import ROLES, TriadServer
from tests.waiting import wait_for

CLINICIANS = ("therapist", "psychiatrist")


@dataclass(frozen=True)
class WeakLinkProfile:
    """The client's link; the clinicians are always on clean loopback."""

    key: str
    title: str
    uplink: LinkProfile = field(default_factory=LinkProfile)  # client -> server
    downlink: LinkProfile = field(default_factory=LinkProfile)  # server -> client

    def __post_init__(self) -> None:
        if not self.key or not self.key.replace("-", "").isalnum():
            raise ValueError(f"profile key {self.key!r}: letters, digits and dashes only")


# Issue 12's table. 80 ms RTT is 40 ms each way; the loss is on both directions.
PROFILES: dict[str, WeakLinkProfile] = {
    p.key: p
    for p in (
        WeakLinkProfile("clean", "clean"),
        WeakLinkProfile(
            "lossy",
            "3% loss, 80 ms RTT",
            uplink=LinkProfile(delay_ms=40, loss=0.03),
            downlink=LinkProfile(delay_ms=40, loss=0.03),
        ),
        WeakLinkProfile(
            "downlink-600k", "downlink 600 kbit/s", downlink=LinkProfile(rate_bps=600_000)
        ),
        WeakLinkProfile("uplink-300k", "uplink 300 kbit/s", uplink=LinkProfile(rate_bps=300_000)),
    )
}


@dataclass(frozen=True)
class HarnessOptions:
    warmup_s: float = 5.0  # after everyone is connected, before the window
    window_s: float = 30.0
    connect_deadline_s: float = 45.0  # joined and connected, or the run fails
    # Also wait (within the deadline) until every participant has decoded audio and video of
    # both others before the warm-up. A weak link may never get there: off by default.
    await_all_media: bool = False
    peers: PeerOptions = field(default_factory=PeerOptions)
    seed: int = 0  # the link's loss pattern

    def __post_init__(self) -> None:
        if not 0 <= self.warmup_s <= 600:
            raise ValueError(f"warmup_s {self.warmup_s} is outside 0..600")
        if not 1 <= self.window_s <= 3600:
            raise ValueError(f"window_s {self.window_s} is outside 1..3600")
        if not 1 <= self.connect_deadline_s <= 600:
            raise ValueError(f"connect_deadline_s {self.connect_deadline_s} is outside 1..600")


@dataclass(frozen=True)
class WeakLinkResult:
    profile: WeakLinkProfile
    options: HarnessOptions
    window_s: float  # as measured
    receptions: tuple[Reception, ...]  # every receiver x every remote
    uplink: DirectionStats  # the client's link during the window: client -> server
    downlink: DirectionStats  # server -> client
    media_quality_events: tuple[tuple[str, int], ...]  # (role, events received in the run)
    client_connections: int  # peer connections the client had (each behind a new link)
    server_cpu: float  # CPU seconds per second of the `triad serve` process in the window
    clients_cpu: float  # the same for this process (all three clients and the link)
    contract_violations: tuple[str, ...]  # server events off the protocol's contract

    def __post_init__(self) -> None:
        if self.window_s <= 0:
            raise ValueError("an empty window")
        pairs = {(r.receiver, r.sender) for r in self.receptions}
        if pairs != {(a, b) for a in ROLES for b in ROLES if a != b}:
            raise ValueError(f"receptions cover {sorted(pairs)}, not every pair of roles")

    def reception(self, receiver: str, sender: str) -> Reception:
        return next(r for r in self.receptions if (r.receiver, r.sender) == (receiver, sender))

    def quality_events(self, role: str) -> int:
        return dict(self.media_quality_events)[role]

    @property
    def offered_to_client_bps(self) -> float:
        """What the server sent toward the client (bit/s of UDP payload)."""
        return self.downlink.offered_bytes * 8 / self.window_s

    @property
    def delivered_to_client_bps(self) -> float:
        return self.downlink.delivered_bytes * 8 / self.window_s

    @property
    def client_offered_bps(self) -> float:
        """What the client sent toward the server."""
        return self.uplink.offered_bytes * 8 / self.window_s

    @property
    def delivered_to_server_bps(self) -> float:
        return self.uplink.delivered_bytes * 8 / self.window_s


def _cpu_seconds() -> float:
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


def _everyone_flowing(people: dict[str, LinkedParticipant], everyone: bool) -> bool:
    """Every peer connection up, and the clinicians (clean links) decoding each other; with
    `everyone`, every participant decoding both others."""
    if not all(p.connected for p in people.values()):
        return False
    receivers = list(people.values()) if everyone else [people[c] for c in CLINICIANS]
    senders = list(people.values()) if everyone else receivers
    return all(
        p.recorder.total[(other.participant_id, kind)] > 0
        for p in receivers
        for other in senders
        if other is not p
        for kind in ("audio", "video")
    )


def _state(people: dict[str, LinkedParticipant]) -> str:
    return "; ".join(
        f"{role}: pc {p.peer.pc.connectionState if p.peer else 'none'}, "
        f"decoded {dict(p.recorder.total)}, failures {p.failures}"
        for role, p in people.items()
    )


async def measure(
    server: TriadServer, profile: WeakLinkProfile, options: HarnessOptions
) -> WeakLinkResult:
    """One consult on `server` with the client behind `profile`; ended before returning."""
    consult = await server.new_consult()
    people = {
        role: LinkedParticipant(
            consult.seat(role),
            server.base_url,
            options.peers,
            LinkProfiles(profile.uplink, profile.downlink, options.seed)
            if role == "client"
            else None,
        )
        for role in ROLES
    }
    try:
        for role in ROLES:
            await people[role].join()
        await wait_for(
            lambda: _everyone_flowing(people, options.await_all_media),
            options.connect_deadline_s,
            f"everyone connected ({_state(people)})",
        )
        await asyncio.sleep(options.warmup_s)

        client = people["client"]
        links_before = client.link_stats()
        server_cpu, clients_cpu = server.cpu_seconds(), _cpu_seconds()
        for p in people.values():
            p.recorder.start()
        start = time.monotonic()
        await asyncio.sleep(options.window_s)
        end = time.monotonic()
        for p in people.values():
            p.recorder.stop()
        window = end - start
        links = client.link_stats().since(links_before)
        server_cpu = (server.cpu_seconds() - server_cpu) / window
        clients_cpu = (_cpu_seconds() - clients_cpu) / window

        failures = [f"{p.role}: {exc!r}" for p in people.values() for exc in p.failures]
        if failures:
            raise RuntimeError(f"answering offers failed: {failures}")
        receptions = tuple(
            Reception(
                receiver.role,
                sender.role,
                receiver.recorder.window(sender.participant_id, "audio", start, end),
                receiver.recorder.window(sender.participant_id, "video", start, end),
                receiver.recorder.total[(sender.participant_id, "audio")],
                receiver.recorder.total[(sender.participant_id, "video")],
            )
            for receiver in people.values()
            for sender in people.values()
            if sender is not receiver
        )
        ack = await people["psychiatrist"].room.call("end")
        if not ack.get("ok"):
            raise RuntimeError(f"ending the consult was refused: {ack}")
        return WeakLinkResult(
            profile=profile,
            options=options,
            window_s=window,
            receptions=receptions,
            uplink=links.uplink,
            downlink=links.downlink,
            media_quality_events=tuple((p.role, p.media_quality_events()) for p in people.values()),
            client_connections=client.generations,
            server_cpu=server_cpu,
            clients_cpu=clients_cpu,
            contract_violations=tuple(
                f"{p.role}: {event}: {why}"
                for p in people.values()
                for event, why in p.take_violations()
            ),
        )
    finally:
        for p in people.values():
            p.take_violations()  # reported in the result, not raised on the way out
            await p.close()


@contextlib.asynccontextmanager
async def harness_server(directory: Path | None = None) -> AsyncIterator[TriadServer]:
    """A `triad serve` for the harness (in a temporary directory unless one is given)."""
    if directory is not None:
        async with TriadServer.running(directory) as server:
            yield server
        return
    with tempfile.TemporaryDirectory(prefix="triad-weaklink-") as tmp:
        async with TriadServer.running(Path(tmp)) as server:
            yield server


async def run_profiles(
    profiles: Iterable[WeakLinkProfile],
    options: HarnessOptions | None = None,
    directory: Path | None = None,
) -> list[WeakLinkResult]:
    """Each profile in turn (a consult of its own) on one server process."""
    options = options or HarnessOptions()
    results = []
    async with harness_server(directory) as server:
        for profile in profiles:
            results.append(await measure(server, profile, options))
    return results
