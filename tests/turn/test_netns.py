"""The namespace helper keeps its word: UDP out of it is refused when asked (TCP still goes),
and a cut link reaches nothing until it is restored."""

from __future__ import annotations

import socket
import subprocess
import sys

from tests import netns
from tests.netns import Namespace

SEND = """
import socket, sys
kind = socket.SOCK_DGRAM if sys.argv[1] == "udp" else socket.SOCK_STREAM
s = socket.socket(socket.AF_INET, kind)
s.settimeout(2)
try:
    if kind == socket.SOCK_DGRAM:
        s.sendto(b"x", (sys.argv[2], 9))
    else:
        s.connect((sys.argv[2], int(sys.argv[3])))
    print("sent")
except OSError as exc:
    print(f"refused {exc.errno}")
"""


def send(namespace: Namespace, kind: str, port: int = 9) -> str:
    done = subprocess.run(
        [*namespace.exec_prefix, sys.executable, "-c", SEND, kind, namespace.outside, str(port)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout.strip()


def test_udp_refused_tcp_allowed_and_a_cut_reaches_nothing() -> None:
    netns.require()
    with socket.socket() as server, Namespace.created(refuse_udp=True) as namespace:
        server.bind((namespace.outside, 0))
        server.listen()
        port = server.getsockname()[1]
        assert send(namespace, "udp").startswith("refused")
        assert send(namespace, "tcp", port) == "sent"
        namespace.cut()
        assert send(namespace, "tcp", port).startswith("refused")
        namespace.restore()
        assert send(namespace, "tcp", port) == "sent"
    with Namespace.created(refuse_udp=False) as open_namespace:
        assert send(open_namespace, "udp") == "sent"
