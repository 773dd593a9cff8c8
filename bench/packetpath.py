"""Packet path benchmark: the SFU's per-packet work against a bare SRTP forwarding loop, in the
same harness and the same run. Prints figures; not part of the test suite.

    .venv/bin/python bench/packetpath.py                     # both harnesses, default rates
    .venv/bin/python bench/packetpath.py --inproc-only
    .venv/bin/python bench/packetpath.py --rates 2150 8000 --seconds 8

Two harnesses, each run for the bare loop and for Triad's path, alternating, `--rounds` times:

* in-process: 20,000 SRTP-protected 1,200-byte VP8 packets (one publisher) are unprotected and
  forwarded to two subscribers in a tight loop, no event loop, the receiving socket drained
  every 64 packets. Triad's path is `rtp.read` -> `Router.route` -> `Ingress.on_media` -> two
  `Egress` rewrites (sequence, timestamp, SSRC, picture id, extensions, history) -> SRTP
  protect -> `sendto`.
  The bare loop is unprotect, then protect and `sendto` twice.
* event loop: the same two paths in a forwarder process on uvloop, fed at `--rates` packets a
  second by a sender process (bursts of five, as a publisher's frames arrive), forwarding to a
  receiver process that waits in its own event loop, as the clients do. The forwarder's CPU
  over the window, per incoming packet. This is what the loopback environment adds to each
  packet (a wakeup per burst, `recvmsg`, the receiver woken by each `sendmsg`): the bare loop
  pays it too, so the difference between the two is the SFU's own work.

Neither includes ICE, DTLS, RTCP or signalling, nor the `PeerTransport`/`Peer` dispatch in
front of `rtp.read`: `bench/sfu.py` measures the whole server.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import socket
import statistics
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pylibsrtp
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.ids import ParticipantId
from server.rooms.media import rtp
from server.rooms.media.codecs import NegotiatedTrack
from server.rooms.media.downlink import Downlink
from server.rooms.media.egress import Egress
from server.rooms.media.ingress import Ingress
from server.rooms.media.router import Router
from server.rooms.media.stats import Counters

HOST = "127.0.0.1"
KEY = bytes(range(30))  # one master key and salt for every session: only the cost matters
VIDEO = NegotiatedTrack(
    "video", "2", 97, 90000, rtx_payload_type=98, mid_id=1, abs_send_time_id=3, ssrc=0x1111
)
PACKETS_PER_FRAME = 4
BURST = 5


def policy(direction: int) -> pylibsrtp.Policy:
    return pylibsrtp.Policy(
        key=KEY, ssrc_type=direction, srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80
    )


def inbound() -> pylibsrtp.Session:
    return pylibsrtp.Session(policy(pylibsrtp.Policy.SSRC_ANY_INBOUND))


def outbound() -> pylibsrtp.Session:
    return pylibsrtp.Session(policy(pylibsrtp.Policy.SSRC_ANY_OUTBOUND))


def video_packet(n: int) -> bytes:
    """Packet `n` of a VP8 stream as a browser sends it: mid and abs-send-time extensions, a
    15-bit picture id, four packets a frame, a keyframe first."""
    frame = n // PACKETS_PER_FRAME
    last = n % PACKETS_PER_FRAME == PACKETS_PER_FRAME - 1
    start = n % PACKETS_PER_FRAME == 0
    descriptor = bytes([0x90 if start else 0x80, 0x80]) + struct.pack("!H", 0x8000 | frame & 0x7FFF)
    tag = (b"\x00" if frame == 0 else b"\x01") if start else b""
    ext = rtp.one_byte_extension_block([(1, b"2"), (3, b"\x00\x00\x00")])
    header = struct.pack(
        "!BBHII", 0x90, VIDEO.payload_type | (0x80 if last else 0), n & 0xFFFF, frame * 3000, 0x1111
    )
    return header + ext + descriptor + tag + bytes(1200 - 12 - len(ext) - 4 - len(tag))


class SocketSender:
    """One subscriber's send side: protect with its own session, write to the socket."""

    ready = True

    def __init__(self, send: Callable[[bytes, tuple[str, int]], Any], to: tuple[str, int]) -> None:
        self._tx = outbound()
        self._send = send
        self._to = to
        self.packets = 0

    def poll(self) -> bool:
        return True

    def send_rtp(self, plain: bytes) -> bool:
        self._send(self._tx.protect(plain), self._to)
        self.packets += 1
        return True

    def send_rtcp(self, packets: object) -> bool:
        return True


class Bare:
    """Unprotect, then protect and send to each subscriber."""

    def __init__(self, senders: list[SocketSender]) -> None:
        self._rx = inbound()
        self._senders = senders

    def __call__(self, data: bytes) -> None:
        plain = self._rx.unprotect(data)
        for sender in self._senders:
            sender.send_rtp(plain)

    def close(self) -> None:
        pass


class Sfu:
    """Triad's path: unprotect, read, route by SSRC (`Router`, as `Peer._on_rtp` does), one
    Ingress fanning out to an Egress per subscriber."""

    def __init__(self, senders: list[SocketSender]) -> None:
        self._rx = inbound()
        counters = Counters()
        self._ingress = Ingress(ParticipantId("p_pub"), "video", counters, keyframe_interval=2.0)
        self._ingress.configure(VIDEO, senders[0], rtcp_ssrc=0xAAAA)  # type: ignore[arg-type]
        for n, sender in enumerate(senders):
            egress = Egress("video", sender, Downlink(lambda *_: None), counters, "cname")  # type: ignore[arg-type]
            egress.configure(VIDEO, ssrc=0x2222 + n, rtx_ssrc=0x3333 + n)
            egress.attach(self._ingress)
        self._publications = {"video": self._ingress}
        self._router = Router()
        self._router.declare(self._ingress, VIDEO)

    def __call__(self, data: bytes) -> None:
        plain = self._rx.unprotect(data)
        view = rtp.read(plain)
        if view is None:
            return
        route = self._router.route(plain, view, self._publications)
        if route is not None and not route.rtx:
            route.ingress.on_media(plain, view, time.monotonic())

    def close(self) -> None:
        self._ingress.close()


PATHS: dict[str, type[Bare] | type[Sfu]] = {"bare": Bare, "triad": Sfu}


# In-process ------------------------------------------------------------------------------


def drain(sock: socket.socket) -> None:
    try:
        while True:
            sock.recv(2048)
    except BlockingIOError:
        pass


async def inproc_round(path: str, wire: list[bytes]) -> float:
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind((HOST, 0))
    sink.setblocking(False)
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    senders = [SocketSender(out.sendto, sink.getsockname()) for _ in range(2)]
    forward = PATHS[path](senders)
    started = time.process_time()
    for n, data in enumerate(wire):
        forward(data)
        if n % 64 == 0:
            drain(sink)
    elapsed = time.process_time() - started
    forward.close()
    sink.close()
    out.close()
    return elapsed / len(wire) * 1e6


async def inproc(rounds: int) -> None:
    publisher = outbound()
    wire = [publisher.protect(video_packet(n)) for n in range(20_000)]
    figures: dict[str, list[float]] = {"bare": [], "triad": []}
    for _ in range(rounds):
        for path in figures:
            figures[path].append(await inproc_round(path, wire))
    bare, triad = statistics.median(figures["bare"]), statistics.median(figures["triad"])
    print(
        f"in-process, {len(wire)} packets x {rounds} rounds: bare {bare:.1f} us/pkt, "
        f"triad {triad:.1f} us/pkt (median); triad/bare {triad / bare:.2f}, "
        f"the SFU's own work {triad - bare:.1f} us/pkt"
    )
    print(f"  rounds: bare {fmt(figures['bare'])}; triad {fmt(figures['triad'])}")


# Event loop --------------------------------------------------------------------------------


def receiver(ready: Any, stop: Any) -> None:
    """Two subscribers' sockets in one event loop (asyncio's, as the clients run), counting."""

    async def run() -> None:
        loop = asyncio.get_running_loop()
        ports = []
        counts = [0, 0]
        for n in range(2):

            class Count(asyncio.DatagramProtocol):
                def datagram_received(self, data: bytes, addr: Any, n: int = n) -> None:
                    counts[n] += 1

            transport, _ = await loop.create_datagram_endpoint(Count, local_addr=(HOST, 0))
            ports.append(transport.get_extra_info("sockname")[1])
        ready.send(ports)
        await loop.run_in_executor(None, stop.recv)
        ready.send(counts)

    asyncio.run(run())


def sender(port: int, rate: int, seconds: float) -> None:
    """A publisher at `rate` packets a second, in bursts of five, protected as it goes."""
    session = outbound()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    started = time.monotonic()
    n = 0
    while (now := time.monotonic()) - started < seconds:
        due = int((now - started) * rate)
        while n < due:
            for _ in range(BURST):
                sock.sendto(session.protect(video_packet(n & 0xFFFF)), (HOST, port))
                n += 1
        time.sleep(BURST / rate / 2)


def forwarder(path: str, rate: int, seconds: float, out: Any) -> None:
    async def run() -> None:
        loop = asyncio.get_running_loop()
        ready, theirs = mp.Pipe()
        stop, stop_theirs = mp.Pipe()
        sink = mp.Process(target=receiver, args=(theirs, stop_theirs))
        sink.start()
        ports = ready.recv()

        class Forward(asyncio.DatagramProtocol):
            def connection_made(self, transport: Any) -> None:
                senders = [SocketSender(transport.sendto, (HOST, port)) for port in ports]
                self.forward = PATHS[path](senders)
                self.count = 0
                self.sent = senders

            def datagram_received(self, data: bytes, addr: Any) -> None:
                self.count += 1
                self.forward(data)

        transport, protocol = await loop.create_datagram_endpoint(Forward, local_addr=(HOST, 0))
        port = transport.get_extra_info("sockname")[1]
        feed = mp.Process(target=sender, args=(port, rate, seconds + 2.0))
        feed.start()
        await asyncio.sleep(1.0)  # warm-up
        count, cpu = protocol.count, time.process_time()
        await asyncio.sleep(seconds)
        count, cpu = protocol.count - count, time.process_time() - cpu
        await loop.run_in_executor(None, feed.join)
        await asyncio.sleep(0.5)  # the last packets reach the receiver
        stop.send(True)
        delivered = ready.recv()
        sink.join()
        forwarded = min(sender.packets for sender in protocol.sent)
        protocol.forward.close()
        transport.close()
        out.send((cpu / max(count, 1) * 1e6, count / seconds, min(delivered) / max(forwarded, 1)))

    uvloop.run(run())


def loop_round(path: str, rate: int, seconds: float) -> tuple[float, float, float]:
    mine, theirs = mp.Pipe()
    process = mp.Process(target=forwarder, args=(path, rate, seconds, theirs))
    process.start()
    figures: tuple[float, float, float] = mine.recv()
    process.join()
    return figures


def event_loop(rates: list[int], seconds: float, rounds: int) -> None:
    for rate in rates:
        figures: dict[str, list[tuple[float, float, float]]] = {"bare": [], "triad": []}
        for _ in range(rounds):
            for path in figures:
                figures[path].append(loop_round(path, rate, seconds))
        bare = statistics.median(f[0] for f in figures["bare"])
        triad = statistics.median(f[0] for f in figures["triad"])
        got = statistics.median(f[1] for f in figures["triad"])
        print(
            f"event loop (uvloop) at {rate} pkt/s ({got:.0f} received), {seconds:.0f} s x "
            f"{rounds} rounds: bare {bare:.1f} us/pkt, triad {triad:.1f} us/pkt (median); "
            f"triad/bare {triad / bare:.2f}, the SFU's own work {triad - bare:.1f} us/pkt"
        )
        print(
            f"  rounds: bare {fmt([f[0] for f in figures['bare']])}; "
            f"triad {fmt([f[0] for f in figures['triad']])}; of what was sent, the slower "
            f"receiver got: bare {fmt([100 * f[2] for f in figures['bare']])} %, "
            f"triad {fmt([100 * f[2] for f in figures['triad']])} %"
        )


def fmt(values: list[float]) -> str:
    return " ".join(f"{v:.1f}" for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rates", type=int, nargs="+", default=[2150, 8000])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--inproc-only", action="store_true")
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in __import__('os').getloadavg())}")
    asyncio.run(inproc(args.rounds))
    if not args.inproc_only:
        event_loop(args.rates, args.seconds, args.rounds)


if __name__ == "__main__":
    main()
