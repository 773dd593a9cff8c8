"""The weak-link harness: a three-party consult through the real server, the client behind an
emulated network link, measured as the people in it would notice.

`triad serve` runs in its own process, and so does each participant
(`tests/media/participantworker.py`: three aiortc peers in one process would share one event
loop and one GIL); the therapist and the psychiatrist are on clean loopback; the client's peer
connection goes through a `Link` with the profile's shaping, in the client's process. Each is
the real python-socketio client with an aiortc peer sending 640x480 30 fps VP8 (by default) and
Opus and decoding both others. After everyone is connected and a
warm-up, a window is measured: per receiver per remote, audio and video frames decoded per
second and the video freezes; what the server offered toward the client and what the link
delivered; the `media-quality` events each participant received; the frames each participant's
tracks produced, and the CPU of the server, of the participants and of the rest of the machine
(on 2 shared cores a saturated machine lowers frame rates for its own reasons).

From a test:

    results = await run_profiles([PROFILES["downlink-600k"]], HarnessOptions(window_s=20))
    heard = results[0].reception("client", "therapist").audio.fps
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import tempfile
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from tests.media.linkedpeer import PeerOptions
from tests.media.linkemu import DirectionStats, LinkProfile
from tests.media.mediafigures import Reception, TrackWindow
from tests.media.participantprocess import ParticipantProcess, participant_processes
from tests.media.triadserver import ROLES, TriadServer

CLINICIANS = ("therapist", "psychiatrist")
STATUS_POLL_SECONDS = 0.2


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
    # After the window, the client's link heals (both directions clean) and the harness waits
    # up to this long for the client's video of each clinician to return. 0: no such phase.
    recovery_deadline_s: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.recovery_deadline_s <= 600:
            raise ValueError(f"recovery_deadline_s {self.recovery_deadline_s} is outside 0..600")
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
    # (receiver, sender): the receiver was told, at some time in the run, that the sender's
    # video is paused for it.
    paused: tuple[tuple[str, str], ...]
    client_connections: int  # peer connections the client had (each behind a new link)
    # (role, audio frames/s, video frames/s) each participant's tracks produced in the window:
    # below 50 and the configured fps, this process could not keep up.
    sent_fps: tuple[tuple[str, float, float], ...]
    server_cpu: float  # CPU seconds per second of the `triad serve` process in the window
    clients_cpu: float  # the same for this process (all three clients and the link)
    other_cpu: float  # the rest of the machine (other processes contending for its cores)
    contract_violations: tuple[str, ...]  # server events off the protocol's contract
    # (clinician, seconds from the link healing until the client decoded their video at
    # RETURNED_FRAMES a second again, or None: not within the deadline); empty: no recovery.
    returned_s: tuple[tuple[str, float | None], ...] = ()

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

    def was_paused(self, receiver: str, sender: str) -> bool:
        return (receiver, sender) in self.paused

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


def _machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (all cores)."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


class ConsultRun:
    """One consult: its three participant processes, driven through a measuring window."""

    def __init__(
        self,
        server: TriadServer,
        people: dict[str, ParticipantProcess],
        profile: WeakLinkProfile,
        options: HarnessOptions,
    ) -> None:
        self.server = server
        self.people = people
        self.profile = profile
        self.options = options
        self.ids: dict[str, str] = {}  # role -> participant id

    async def join(self) -> None:
        """Join in order: the clinicians, then the client (auto-admitted)."""
        consult = await self.server.new_consult()
        link = {
            "uplink": dataclasses.asdict(self.profile.uplink),
            "downlink": dataclasses.asdict(self.profile.downlink),
            "seed": self.options.seed,
        }
        for role in ROLES:
            seat = consult.seat(role)
            self.ids[role] = seat.participant_id
            await self.people[role].join(
                {
                    "base_url": self.server.base_url,
                    "seat": dataclasses.asdict(seat),
                    "peers": dataclasses.asdict(self.options.peers),
                    "link": link if role == "client" else None,
                }
            )

    async def _flowing(self) -> tuple[bool, str]:
        """Every peer connection up and the clinicians (clean links) decoding each other; with
        `await_all_media`, every participant decoding both others."""
        statuses = {role: await p.request("status") for role, p in self.people.items()}
        failures = [f"{role}: {f}" for role, s in statuses.items() for f in s["failures"]]
        if failures:
            raise RuntimeError(f"answering offers failed: {failures}")
        receivers = ROLES if self.options.await_all_media else CLINICIANS
        decoded = {
            (role, sender, kind): n
            for role, s in statuses.items()
            for sender, kind, n in s["decoded"]
        }
        ready = all(s["connected"] for s in statuses.values()) and all(
            decoded.get((role, self.ids[other], kind), 0) > 0
            for role in receivers
            for other in receivers
            if other != role
            for kind in ("audio", "video")
        )
        return ready, str(statuses)

    async def until_flowing(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.connect_deadline_s
        while True:
            ready, state = await self._flowing()
            if ready:
                return
            if loop.time() > deadline:
                raise AssertionError(f"not everyone connected in time: {state}")
            await asyncio.sleep(STATUS_POLL_SECONDS)

    async def measure(self) -> WeakLinkResult:
        await self.join()
        await self.until_flowing()
        await asyncio.sleep(self.options.warmup_s)

        await asyncio.gather(*(p.request("start") for p in self.people.values()))
        server_cpu, machine_busy = self.server.cpu_seconds(), _machine_busy_seconds()
        start = time.monotonic()
        await asyncio.sleep(self.options.window_s)
        end = time.monotonic()
        senders = list(self.ids.values())
        reports = dict(
            zip(
                ROLES,
                await asyncio.gather(
                    *(
                        self.people[r].request("stop", start=start, end=end, senders=senders)
                        for r in ROLES
                    )
                ),
                strict=True,
            )
        )
        window = end - start
        server_cpu = (self.server.cpu_seconds() - server_cpu) / window
        clients_cpu = sum(r["cpu"] for r in reports.values()) / window
        other_cpu = (_machine_busy_seconds() - machine_busy) / window - server_cpu - clients_cpu
        failures = [f"{role}: {f}" for role, r in reports.items() for f in r["failures"]]
        if failures:
            raise RuntimeError(f"answering offers failed: {failures}")

        returned = await self._recovery() if self.options.recovery_deadline_s else ()

        ended = await self.people["psychiatrist"].request("end")
        if not ended["ack"].get("ok"):
            raise RuntimeError(f"ending the consult was refused: {ended}")
        left = await asyncio.gather(*(self.people[role].leave() for role in ROLES))
        closing = dict(zip(ROLES, left, strict=True))
        role_of = {pid: role for role, pid in self.ids.items()}
        client_link = reports["client"]["link"]
        return WeakLinkResult(
            profile=self.profile,
            options=self.options,
            window_s=window,
            receptions=tuple(
                Reception(
                    role,
                    role_of[seen["sender"]],
                    TrackWindow(**seen["audio"]),
                    TrackWindow(**seen["video"]),
                    seen["audio_in_run"],
                    seen["video_in_run"],
                )
                for role, report in reports.items()
                for seen in report["receptions"]
                if seen["sender"] != self.ids[role]
            ),
            uplink=DirectionStats(**client_link["uplink"]),
            downlink=DirectionStats(**client_link["downlink"]),
            media_quality_events=tuple(
                (role, int(closing[role].get("media_quality", 0))) for role in ROLES
            ),
            paused=tuple(
                (role, role_of[sender])
                for role in ROLES
                for sender in closing[role].get("paused", [])
                if sender in role_of
            ),
            client_connections=reports["client"]["generations"],
            sent_fps=tuple(
                (role, reports[role]["sent"][0] / window, reports[role]["sent"][1] / window)
                for role in ROLES
            ),
            server_cpu=server_cpu,
            clients_cpu=clients_cpu,
            other_cpu=max(0.0, other_cpu),
            contract_violations=tuple(
                f"{role}: {v}" for role in ROLES for v in closing[role].get("violations", [])
            ),
            returned_s=returned,
        )

    async def _recovery(self) -> tuple[tuple[str, float | None], ...]:
        """Heal the client's link; wait (within the deadline) for each clinician's video to
        come back to the client."""
        clean = dataclasses.asdict(LinkProfile())
        client = self.people["client"]
        healed = await client.request("reshape", uplink=clean, downlink=clean)
        since = float(healed["at"])
        senders = [self.ids[c] for c in CLINICIANS]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.recovery_deadline_s
        while True:
            answer = await client.request("returned", senders=senders, since=since)
            returned = answer["returned"]
            if all(returned[s] is not None for s in senders) or loop.time() > deadline:
                break
            await asyncio.sleep(STATUS_POLL_SECONDS)
        return tuple(
            (c, None if returned[self.ids[c]] is None else returned[self.ids[c]] - since)
            for c in CLINICIANS
        )

    async def leave(self) -> None:
        """Every participant leaves its seat (nothing happens for those who already have)."""
        await asyncio.gather(*(p.leave() for p in self.people.values()))


@dataclasses.dataclass(frozen=True)
class Harness:
    """A server and the three participant processes, for one profile after another."""

    server: TriadServer
    people: dict[str, ParticipantProcess]

    async def measure(self, profile: WeakLinkProfile, options: HarnessOptions) -> WeakLinkResult:
        """One consult with the client behind `profile`; ended before returning."""
        run = ConsultRun(self.server, self.people, profile, options)
        try:
            return await run.measure()
        finally:
            await run.leave()


@contextlib.asynccontextmanager
async def harness(directory: Path | None = None) -> AsyncIterator[Harness]:
    """`triad serve` and three participant processes (in a temporary directory unless one is
    given: the server's database and every process's log are there)."""
    async with contextlib.AsyncExitStack() as stack:
        if directory is None:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="weaklink-")))
        # The participants' imports overlap the server's start.
        people = await stack.enter_async_context(participant_processes(ROLES, directory))
        server = await stack.enter_async_context(TriadServer.running(directory))
        yield Harness(server, people)


async def run_profiles(
    profiles: Iterable[WeakLinkProfile],
    options: HarnessOptions | None = None,
    directory: Path | None = None,
) -> list[WeakLinkResult]:
    """Each profile in turn (a consult of its own) through one server and one set of
    participant processes."""
    options = options or HarnessOptions()
    async with harness(directory) as running:
        return [await running.measure(profile, options) for profile in profiles]
