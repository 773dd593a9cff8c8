"""A network namespace for a test client, joined to this one by a veth pair, whose traffic can
be shaped the ways a patient's network is: UDP refused on the way out (a network that allows
only TCP), or the link's route removed and restored (a phone changing networks).

The kernels these tests run on have neither `sch_netem` nor netfilter tools, so UDP is refused
by a policy-routing rule (`ip rule add ipproto udp prohibit`): a UDP socket in the namespace can
still talk to the namespace's own addresses (the local table is looked up first) but nothing
beyond. The addresses come from 198.18.0.0/15 (RFC 2544, never routed on the internet), a /30
per namespace; nothing in the namespace has a default route.
"""

from __future__ import annotations

import contextlib
import ipaddress
import secrets
import subprocess
from collections.abc import Iterator

BENCH_RANGE = ipaddress.ip_network("198.18.0.0/15")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def available() -> bool:
    """Whether this process may make network namespaces (root, `ip netns`)."""
    name = f"triad-probe-{secrets.token_hex(3)}"
    try:
        _ip("netns", "add", name)
    except (OSError, subprocess.SubprocessError):
        return False
    _ip("netns", "delete", name)
    return True


def require() -> None:
    """Skip where namespaces cannot be made, or fail when the run requires every service."""
    if available():
        return
    import pytest

    from tests.databases import services_required

    why = "network namespaces are not available (needs root and `ip netns`)"
    if services_required():
        pytest.fail(why)
    pytest.skip(why)


class Namespace:
    """Use `Namespace.created()`; `exec_prefix` runs a command inside it."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.name = f"triad-{tag}"
        self._outer_link, self._inner_link = f"tr{tag}o", f"tr{tag}i"
        subnets = list(BENCH_RANGE.subnets(new_prefix=30))
        self.subnet = subnets[secrets.randbelow(len(subnets))]
        first = self.subnet.network_address
        self.outside = str(first + 1)  # this namespace's end of the link
        self.inside = str(first + 2)
        self.exec_prefix = ("ip", "netns", "exec", self.name)

    @classmethod
    @contextlib.contextmanager
    def created(cls, *, refuse_udp: bool = True) -> Iterator[Namespace]:
        namespace = cls()
        try:
            namespace._create(refuse_udp)
            yield namespace
        finally:
            namespace.close()

    def _create(self, refuse_udp: bool) -> None:
        _ip("netns", "add", self.name)
        _ip("link", "add", self._outer_link, "type", "veth", "peer", "name", self._inner_link)
        _ip("link", "set", self._inner_link, "netns", self.name)
        _ip("addr", "add", f"{self.outside}/30", "dev", self._outer_link)
        _ip("link", "set", self._outer_link, "up")
        inside = ("-n", self.name)
        _ip(*inside, "addr", "add", f"{self.inside}/30", "dev", self._inner_link)
        _ip(*inside, "link", "set", "lo", "up")
        _ip(*inside, "link", "set", self._inner_link, "up")
        if refuse_udp:
            _ip(*inside, "rule", "add", "pref", "100", "ipproto", "udp", "prohibit")

    def cut(self) -> None:
        """Remove the namespace's route over the link: nothing leaves or is answered."""
        _ip("-n", self.name, "route", "del", str(self.subnet), "dev", self._inner_link)

    def restore(self) -> None:
        """Put the route back."""
        _ip("-n", self.name, "route", "add", str(self.subnet), "dev", self._inner_link)

    def close(self) -> None:
        """Delete the namespace (its end of the veth pair with it, and so the other end).
        Safe twice."""
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("netns", "delete", self.name)
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "delete", self._outer_link)
