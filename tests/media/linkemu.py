"""A userspace link emulator: a UDP relay on loopback that shapes each direction of one peer
connection like a weak network link (these kernels have no `sch_netem`).

    client  <->  A [Link] B  <->  server

The client talks to A, the server talks to B. What the client sends to A leaves B toward the
server (the uplink); what the server sends to B leaves A toward the client (the downlink). Each
direction has its own `LinkProfile`:

* rate: a bottleneck that serialises datagrams at `rate_bps` behind a drop-tail queue of
  `queue_bytes` (by default `DEFAULT_QUEUE_SECONDS` of the rate, like a real bottleneck buffer);
  a datagram that would overflow the queue is dropped;
* delay: one-way propagation delay after the bottleneck, plus optional jitter (extra delay drawn
  per datagram, never reordering: a datagram never overtakes the one before it);
* loss: each datagram is lost with this probability before the bottleneck, from a seeded
  `random.Random` so a run is reproducible.

The relay binds and sends only to loopback. `tests/media/linksdp.py` rewrites the candidates
of an offer and an answer so both ends' ICE checks, DTLS and media go through a link.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

LOOPBACK = "127.0.0.1"
Address = tuple[str, int]
# A bottleneck buffer of 150 ms of the link's rate (100-200 ms is typical of access links),
# never less than two full-size datagrams.
DEFAULT_QUEUE_SECONDS = 0.15
MIN_QUEUE_BYTES = 3_000
# Datagrams in flight (queued plus in the delay line) per direction: what bounds memory on an
# unlimited-rate link with a delay. Past it a datagram is dropped as an overflow.
MAX_IN_FLIGHT_BYTES = 16 * 1024 * 1024
MAX_DATAGRAM_BYTES = 65_535
# The relay's sockets: a receive buffer for the event loop's stalls (the kernel caps it at
# net.core.rmem_max), and how many datagrams one readiness callback reads at most.
RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024
READ_BATCH = 256


def seeded(seed: int) -> random.Random:
    """A reproducible generator for the emulation (not for anything secret)."""
    return random.Random(seed)  # noqa: S311


def is_loopback(host: str) -> bool:
    """An IPv4 loopback address (the relay's sockets are IPv4, bound to 127.0.0.1)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.version == 4 and address.is_loopback


def loopback_address(address: Address) -> Address:
    """`address` as given, if it is a loopback address and a valid port; ValueError if not."""
    host, port = address
    if not is_loopback(host) or not 0 < port < 65_536:
        raise ValueError(f"not a loopback address: {host}:{port}")
    return host, port


@dataclass(frozen=True)
class LinkProfile:
    """One direction of a link. The defaults are a perfect link."""

    # Bits of UDP payload per second (the 28 bytes of IPv4 + UDP headers are not counted);
    # None: unlimited.
    rate_bps: int | None = None
    delay_ms: float = 0.0
    loss: float = 0.0  # probability each datagram is lost
    jitter_ms: float = 0.0  # extra delay per datagram, uniform in [0, jitter_ms]
    queue_bytes: int | None = None  # None: DEFAULT_QUEUE_SECONDS of the rate

    def __post_init__(self) -> None:
        if self.rate_bps is not None and not 1_000 <= self.rate_bps <= 10_000_000_000:
            raise ValueError(f"rate_bps {self.rate_bps} is outside 1 kbit/s .. 10 Gbit/s")
        if not 0.0 <= self.delay_ms <= 10_000.0:
            raise ValueError(f"delay_ms {self.delay_ms} is outside 0 .. 10000")
        if not 0.0 <= self.jitter_ms <= 10_000.0:
            raise ValueError(f"jitter_ms {self.jitter_ms} is outside 0 .. 10000")
        if not 0.0 <= self.loss <= 1.0:
            raise ValueError(f"loss {self.loss} is outside 0 .. 1")
        if self.queue_bytes is not None:
            if self.rate_bps is None:
                raise ValueError("queue_bytes needs a rate_bps: an unlimited link never queues")
            if not MIN_QUEUE_BYTES <= self.queue_bytes <= MAX_IN_FLIGHT_BYTES:
                raise ValueError(
                    f"queue_bytes {self.queue_bytes} is outside "
                    f"{MIN_QUEUE_BYTES} .. {MAX_IN_FLIGHT_BYTES}"
                )

    @property
    def queue_limit(self) -> int | None:
        """Bytes the bottleneck may hold (None on an unlimited link)."""
        if self.rate_bps is None:
            return None
        if self.queue_bytes is not None:
            return self.queue_bytes
        return max(MIN_QUEUE_BYTES, int(self.rate_bps * DEFAULT_QUEUE_SECONDS / 8))


@dataclass(frozen=True)
class DirectionStats:
    """What one direction of a link did: offered = delivered + lost + overflowed + undeliverable +
    in flight."""

    offered: int = 0
    offered_bytes: int = 0
    delivered: int = 0
    delivered_bytes: int = 0
    lost: int = 0  # random loss
    lost_bytes: int = 0
    overflowed: int = 0  # dropped at the tail of a full queue
    overflowed_bytes: int = 0
    undeliverable: int = 0  # no destination known yet, or the kernel refused to send
    in_flight: int = 0
    in_flight_bytes: int = 0

    def __post_init__(self) -> None:
        if min(vars(self).values()) < 0:
            raise ValueError(f"negative counts: {self}")

    def __add__(self, other: DirectionStats) -> DirectionStats:
        return DirectionStats(**{k: v + getattr(other, k) for k, v in vars(self).items()})

    def since(self, earlier: DirectionStats) -> DirectionStats:
        """The counts between `earlier` and this snapshot (in-flight figures are this one's)."""
        counts = {k: v - getattr(earlier, k) for k, v in vars(self).items()}
        counts.update(in_flight=self.in_flight, in_flight_bytes=self.in_flight_bytes)
        return DirectionStats(**counts)


@dataclass(frozen=True)
class LinkStats:
    uplink: DirectionStats = field(default_factory=DirectionStats)  # client -> server
    downlink: DirectionStats = field(default_factory=DirectionStats)  # server -> client

    def __add__(self, other: LinkStats) -> LinkStats:
        return LinkStats(self.uplink + other.uplink, self.downlink + other.downlink)

    def since(self, earlier: LinkStats) -> LinkStats:
        return LinkStats(self.uplink.since(earlier.uplink), self.downlink.since(earlier.downlink))


class Pipe:
    """One direction: random loss, then the bottleneck queue, then the delay line. A task
    delivers each datagram when it is due; datagrams leave in the order they came."""

    def __init__(
        self,
        profile: LinkProfile,
        rng: random.Random,
        send: Callable[[bytes], bool],
    ) -> None:
        self.profile = profile
        self._rng = rng
        self._send = send  # False when there is nowhere to send yet
        self._loop = asyncio.get_running_loop()
        self._counts = dict.fromkeys(vars(DirectionStats()), 0)
        self._line: deque[tuple[float, bytes]] = deque()  # (due, datagram), due never decreasing
        self._busy_until = 0.0  # when the bottleneck finishes serialising what it holds
        self._last_due = 0.0
        self._waiting = asyncio.Event()
        self._task: asyncio.Task[None] | None = self._loop.create_task(self._deliver())

    def stats(self) -> DirectionStats:
        return DirectionStats(**self._counts)

    def _count(self, what: str, size: int) -> None:
        self._counts[what] += 1
        self._counts[f"{what}_bytes"] += size

    def offer(self, datagram: bytes) -> None:
        size = len(datagram)
        self._count("offered", size)
        if self._task is None:
            self._counts["undeliverable"] += 1
            return
        profile = self.profile
        if profile.loss and self._rng.random() < profile.loss:
            self._count("lost", size)
            return
        if self._counts["in_flight_bytes"] + size > MAX_IN_FLIGHT_BYTES:
            self._count("overflowed", size)
            return
        now = self._loop.time()
        leaves = now
        if profile.rate_bps is not None:
            limit = profile.queue_limit
            assert limit is not None
            backlog = max(0.0, self._busy_until - now) * profile.rate_bps / 8
            if backlog + size > limit:
                self._count("overflowed", size)
                return
            self._busy_until = max(now, self._busy_until) + size * 8 / profile.rate_bps
            leaves = self._busy_until
        due = leaves + profile.delay_ms / 1000
        if profile.jitter_ms:
            due += self._rng.uniform(0.0, profile.jitter_ms / 1000)
        due = max(due, self._last_due)  # jitter never reorders
        self._last_due = due
        if not self._line and due <= now:
            self._deliver_now(datagram)
            return
        self._line.append((due, datagram))
        self._count("in_flight", size)
        self._waiting.set()

    def _deliver_now(self, datagram: bytes) -> None:
        if self._send(datagram):
            self._count("delivered", len(datagram))
        else:
            self._counts["undeliverable"] += 1

    async def _deliver(self) -> None:
        while True:
            if not self._line:
                self._waiting.clear()
                await self._waiting.wait()
                continue
            due, datagram = self._line[0]
            wait = due - self._loop.time()
            if wait > 0:
                await asyncio.sleep(wait)  # only later datagrams join meanwhile
                continue
            self._line.popleft()
            self._counts["in_flight"] -= 1
            self._counts["in_flight_bytes"] -= len(datagram)
            self._deliver_now(datagram)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._counts["in_flight"] = self._counts["in_flight_bytes"] = 0
        self._line.clear()


class RelaySocket:
    """A non-blocking UDP socket on 127.0.0.1 read straight from the event loop.

    asyncio's datagram transports read one datagram per loop iteration; in a process busy
    with three aiortc peers that is slower than a video burst arrives, and the kernel would
    drop what the emulated link should decide. This reads everything waiting (up to a batch)
    each time the socket is ready, and has a large receive buffer for the loop's stalls."""

    def __init__(self, on_datagram: Callable[[bytes, Address], None]) -> None:
        self._on_datagram = on_datagram
        self._loop = asyncio.get_running_loop()
        self._sock: socket.socket | None = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
        self._sock.bind((LOOPBACK, 0))
        self.address: Address = self._sock.getsockname()[:2]
        self._loop.add_reader(self._sock.fileno(), self._readable)

    def _readable(self) -> None:
        for _ in range(READ_BATCH):
            if self._sock is None:
                return
            try:
                data, source = self._sock.recvfrom(MAX_DATAGRAM_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # an ICMP error queued on the socket: UDP carries on, as a network does
            self._on_datagram(data, (str(source[0]), int(source[1])))

    def sendto(self, data: bytes, to: Address) -> bool:
        """False when the socket is closed or the kernel would not take the datagram now."""
        if self._sock is None:
            return False
        try:
            self._sock.sendto(data, loopback_address(to))
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return False
        return True

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            self._loop.remove_reader(sock.fileno())
            sock.close()


class Link:
    """One client peer connection's path to the server, shaped per direction.

    `start()` binds A (`client_facing`) and B (`server_facing`) on 127.0.0.1. The far ends are
    set with `connect()` (from the SDP) and follow the last address each side sent from."""

    def __init__(
        self,
        uplink: LinkProfile | None = None,
        downlink: LinkProfile | None = None,
        *,
        seed: int = 0,
    ) -> None:
        self.uplink_profile = uplink or LinkProfile()
        self.downlink_profile = downlink or LinkProfile()
        self._seed = seed
        self._client: Address | None = None
        self._server: Address | None = None
        self._a: RelaySocket | None = None
        self._b: RelaySocket | None = None
        self._uplink: Pipe | None = None
        self._downlink: Pipe | None = None
        self._closed = False

    async def start(self) -> Self:
        if self._a is not None or self._closed:
            raise RuntimeError("a link starts once")
        # One generator per direction, so the loss pattern of one does not depend on the
        # traffic of the other.
        self._uplink = Pipe(self.uplink_profile, seeded(self._seed * 2), self._to_server)
        self._downlink = Pipe(self.downlink_profile, seeded(self._seed * 2 + 1), self._to_client)
        self._a = RelaySocket(self._from_client)
        self._b = RelaySocket(self._from_server)
        return self

    @property
    def client_facing(self) -> Address:
        """A: where the client sends (put into the offer the client sees)."""
        return self._bound(self._a)

    @property
    def server_facing(self) -> Address:
        """B: where the server sends (put into the answer the server sees)."""
        return self._bound(self._b)

    @staticmethod
    def _bound(relay: RelaySocket | None) -> Address:
        if relay is None:
            raise RuntimeError("the link is not started")
        return relay.address

    def connect(self, *, client: Address | None = None, server: Address | None = None) -> None:
        """Name the far ends (loopback only; ValueError otherwise)."""
        if client is not None:
            self._client = loopback_address(client)
        if server is not None:
            self._server = loopback_address(server)

    def reshape(self, uplink: LinkProfile, downlink: LinkProfile) -> None:
        """Change both directions from now on (the link gets better or worse mid-call): what
        is already queued or in the delay line keeps its schedule."""
        self.uplink_profile, self.downlink_profile = uplink, downlink
        for pipe, profile in ((self._uplink, uplink), (self._downlink, downlink)):
            if pipe is not None:
                pipe.profile = profile

    @property
    def client(self) -> Address | None:
        return self._client

    @property
    def server(self) -> Address | None:
        return self._server

    def stats(self) -> LinkStats:
        if self._uplink is None or self._downlink is None:
            return LinkStats()
        return LinkStats(self._uplink.stats(), self._downlink.stats())

    # The two sockets ----------------------------------------------------------------------

    def _from_client(self, data: bytes, source: Address) -> None:
        if not is_loopback(source[0]) or self._uplink is None:
            return
        self._client = source
        self._uplink.offer(data)

    def _from_server(self, data: bytes, source: Address) -> None:
        if not is_loopback(source[0]) or self._downlink is None:
            return
        self._server = source
        self._downlink.offer(data)

    def _to_server(self, data: bytes) -> bool:
        return self._send(self._b, self._server, data)

    def _to_client(self, data: bytes) -> bool:
        return self._send(self._a, self._client, data)

    @staticmethod
    def _send(relay: RelaySocket | None, to: Address | None, data: bytes) -> bool:
        if relay is None or to is None:
            return False
        return relay.sendto(data, to)

    # Lifetime ---------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop delivering and release both sockets. Safe twice."""
        self._closed = True
        for pipe in (self._uplink, self._downlink):
            if pipe is not None:
                await pipe.close()
        for relay in (self._a, self._b):
            if relay is not None:
                relay.close()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
