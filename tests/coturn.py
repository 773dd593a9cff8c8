"""A real coturn (Debian's `turnserver`) for tests, in the shared-secret (TURN REST) mode Triad
mints credentials for.

coturn cannot bind port 0, so free ports are picked on the listening addresses (one port for
its UDP and TCP listeners, one for TLS) and the start is retried if another process took one
in between. It listens only on the addresses the test names (loopback by default, or a
namespace's link), relays only from `relay_ip` and only to `allowed_peer_ips` (every other
peer address is denied, multicast too), has no CLI, no DTLS and no TCP relays (RFC 6062), and
runs under `timeout` so a test run that dies cannot leave it behind. Its TLS listener serves a
self-signed certificate (tests/daemons.py) for the listening addresses; `ca_path` is what a client
trusts. Its log (verbose: one line per allocation) goes to a file in the test's directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import random
import secrets
import socket
import ssl
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests import ports
from tests.daemons import bounded, require_program, self_signed, stop_group

TURNSERVER = "turnserver"
DEADLINE = 15.0
RELAY_PORTS = 64
STARTS = 5  # attempts at picking free ports
ROOT = Path(__file__).resolve().parent.parent


def require() -> None:
    """Skip without coturn, or fail when the run requires every service (CI installs it)."""
    require_program(TURNSERVER, "coturn")


@dataclass(frozen=True)
class CoturnConfig:
    listening_ips: tuple[str, ...] = ("127.0.0.1",)
    relay_ip: str = "127.0.0.1"
    # Peers a relay may send to; everything else is denied.
    allowed_peer_ips: tuple[str, ...] = ("127.0.0.1",)
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    realm: str = "triad.test"

    def __post_init__(self) -> None:
        if not self.listening_ips:
            raise ValueError("coturn needs a listening address")
        for address in (*self.listening_ips, self.relay_ip, *self.allowed_peer_ips):
            if ipaddress.ip_address(address).version != 4:
                raise ValueError(f"{address}: the test coturn is IPv4 only")
        if len(self.secret) < 16:
            raise ValueError("the shared secret is too short")


def _free_on(addresses: tuple[str, ...], kinds: tuple[int, ...]) -> int:
    """A port free for every socket kind on every address (checked by binding)."""
    for _ in range(100):
        port = ports.candidate()
        try:
            with contextlib.ExitStack() as held:
                for address in addresses:
                    for kind in kinds:
                        probe = held.enter_context(socket.socket(socket.AF_INET, kind))
                        probe.bind((address, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port for coturn")


class Coturn:
    """A running coturn; use `Coturn.running(directory, config)`."""

    def __init__(self, directory: Path, config: CoturnConfig) -> None:
        self.directory = directory
        self.config = config
        self.log_path = directory / "coturn.log"
        self.cert_path, self.key_path = self_signed(directory, config.listening_ips, "coturn")
        self.port = 0
        self.tls_port = 0
        self._process: asyncio.subprocess.Process | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls, directory: Path, config: CoturnConfig) -> AsyncIterator[Coturn]:
        server = cls(directory, config)
        try:
            await server.start()
            yield server
        finally:
            await server.stop()

    @property
    def ca_path(self) -> Path:
        """The certificate a TLS client trusts (self-signed: it is its own CA)."""
        return self.cert_path

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_path))

    def urls(self, host: str | None = None) -> tuple[str, str, str]:
        """TURN over UDP, TCP and TLS at `host` (the first listening address by default)."""
        host = host or self.config.listening_ips[0]
        return (
            f"turn:{host}:{self.port}?transport=udp",
            f"turn:{host}:{self.port}?transport=tcp",
            f"turns:{host}:{self.tls_port}?transport=tcp",
        )

    def _arguments(self, relay_min: int) -> list[str]:
        c = self.config
        return [
            "-n",  # no configuration file: everything is here
            "--verbose",  # a line per allocation, which tests look for
            *(f"--listening-ip={ip}" for ip in c.listening_ips),
            f"--relay-ip={c.relay_ip}",
            f"--listening-port={self.port}",
            f"--tls-listening-port={self.tls_port}",
            f"--min-port={relay_min}",
            f"--max-port={relay_min + RELAY_PORTS - 1}",
            "--use-auth-secret",
            f"--static-auth-secret={c.secret}",
            f"--realm={c.realm}",
            "--fingerprint",
            f"--cert={self.cert_path}",
            f"--pkey={self.key_path}",
            "--no-dtls",
            "--no-tcp-relay",
            "--no-cli",
            "--no-multicast-peers",
            # Loopback peers are refused unless allowed, and then only those named.
            "--allow-loopback-peers",
            *(f"--allowed-peer-ip={ip}" for ip in c.allowed_peer_ips),
            "--denied-peer-ip=0.0.0.0-255.255.255.255",
            f"--log-file={self.log_path}",
            "--simple-log",
            "--no-stdout-log",
            f"--pidfile={self.directory / 'coturn.pid'}",
            f"--userdb={self.directory / 'coturn.sqlite'}",
        ]

    async def start(self) -> None:
        last = ""
        for _ in range(STARTS):
            ips = self.config.listening_ips
            stream, datagram = socket.SOCK_STREAM, socket.SOCK_DGRAM
            self.port = _free_on(ips, (stream, datagram))
            self.tls_port = _free_on(ips, (stream,))
            relay_min = random.randint(40_000, 60_000 - RELAY_PORTS)  # noqa: S311
            with (self.directory / "coturn.stderr").open("ab") as errors:
                self._process = await asyncio.create_subprocess_exec(
                    *bounded(TURNSERVER, *self._arguments(relay_min)),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=errors,
                    start_new_session=True,
                )
            if await self._ready():
                return
            last = self.log_tail()
            await self.stop()
        raise RuntimeError(f"coturn did not start: {last}")

    async def _ready(self) -> bool:
        """Both TCP listeners accept and the UDP one answers a STUN binding; False if coturn
        exited (a port was taken after all)."""
        process = self._process
        assert process is not None
        host = self.config.listening_ips[0]
        loop = asyncio.get_running_loop()
        end = loop.time() + DEADLINE
        while loop.time() < end:
            if process.returncode is not None:
                return False
            if "Cannot bind" in self.log_text():
                return False
            try:
                for port in (self.port, self.tls_port):
                    _, writer = await asyncio.open_connection(host, port)
                    writer.close()
                    await writer.wait_closed()
                await asyncio.wait_for(stun_binding(host, self.port), 0.5)
            except (OSError, TimeoutError):
                await asyncio.sleep(0.05)
                continue
            return True
        return False

    def log_text(self) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def allocations(self) -> list[str]:
        """coturn's lines for allocations it granted."""
        return [
            line for line in self.log_text().splitlines() if "ALLOCATE processed, success" in line
        ]

    def sessions_of(self, username: str) -> list[str]:
        """coturn's log lines that name this TURN username."""
        return [line for line in self.log_text().splitlines() if f"<{username}>" in line]

    async def stop(self) -> None:
        """SIGTERM to its process group, SIGKILL past the deadline. Safe twice."""
        process, self._process = self._process, None
        await stop_group(process)


async def stun_binding(host: str, port: int) -> tuple[str, int]:
    """One STUN Binding over UDP: the mapped address coturn saw (an answer means it listens)."""
    from aioice import stun

    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[stun.Message] = loop.create_future()

    class Protocol(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
            with contextlib.suppress(ValueError):
                message = stun.parse_message(data)
                if message.transaction_id == request.transaction_id and not answered.done():
                    answered.set_result(message)

    transport, _ = await loop.create_datagram_endpoint(Protocol, remote_addr=(host, port))
    try:
        transport.sendto(bytes(request))
        response = await answered
    finally:
        transport.close()
    mapped: tuple[str, int] = response.attributes["XOR-MAPPED-ADDRESS"]
    return mapped


async def triad_check_turn(
    coturn: Coturn,
    urls: Sequence[str] | None = None,
    *,
    prefix: Sequence[str] = (),
    **settings: str,
) -> tuple[int, str]:
    """`triad check turn` as an operator runs it, at `urls` (coturn's own by default) with its
    secret, run after `prefix` (a network namespace's `exec_prefix`); the test CA trusted
    through SSL_CERT_FILE, no TRIAD_ setting of the test run's own. Its status and output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIAD_")}
    env.update(
        {
            "TRIAD_TURN_URLS": ",".join(coturn.urls() if urls is None else urls),
            "TRIAD_TURN_SECRET": coturn.config.secret,
            "SSL_CERT_FILE": str(coturn.ca_path),
            **settings,
        }
    )
    process = await asyncio.create_subprocess_exec(
        *prefix,
        sys.executable,
        "-m",
        "server",
        "check",
        "turn",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, out.decode()
