"""Loopback TCP ports for the servers the tests start.

Chosen below the kernel's ephemeral range: a port the kernel hands out for outgoing
connections (Chromium's, the Redis and PostgreSQL clients') can be taken between a probe and
the server's bind. In CI one was (a two-worker deployment's, Errno 98). Below that range only
other listeners compete, and the probe sees those."""

from __future__ import annotations

import secrets
import socket
from pathlib import Path

LOWEST = 10000


def _ephemeral_start() -> int:
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return max(low, LOWEST + 1000)


def candidate(count: int = 1) -> int:
    """A random port below the ephemeral range with `count` - 1 more after it, not yet probed
    (tests/coturn.py probes its own: UDP and TCP, on a namespace's addresses too)."""
    return LOWEST + secrets.randbelow(_ephemeral_start() - count - LOWEST)


def held_ports(count: int) -> list[socket.socket]:
    """`count` sockets bound to consecutive loopback ports, held until whoever serves on them
    takes them over (a test server's socket_factory)."""
    for _ in range(200):
        first = candidate(count)
        held: list[socket.socket] = []
        try:
            for port in range(first, first + count):
                held.append(sock := socket.socket())
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("127.0.0.1", port))
        except OSError:
            for sock in held:
                sock.close()
            continue
        return held
    raise RuntimeError(f"no {count} consecutive free ports on loopback")


def free_ports(count: int) -> int:
    """The first of `count` consecutive loopback ports free now (another process will listen
    on them: a `triad serve`, coturn)."""
    held = held_ports(count)
    first: int = held[0].getsockname()[1]
    for sock in held:
        sock.close()
    return first


def free_port() -> int:
    return free_ports(1)
