"""Routing a peer connection through a `Link`: rewrite the candidates of the server's offer
and the client's answer so that both ends' ICE checks, DTLS and media go through the link.

aiortc puts its candidates in the SDP (no trickle), on every m= section, with the same address
on the m= port and the c= line. The client must see the server at the link's A side, and the
server must see the client at its B side; every other candidate is removed, so nothing bypasses
the link.
"""

from __future__ import annotations

import re

from tests.media.linkemu import Address, Link, loopback_address

_CANDIDATE = re.compile(
    r"^a=candidate:(?P<foundation>\S+) (?P<component>\d+) (?P<transport>\S+) (?P<priority>\d+) "
    r"(?P<host>\S+) (?P<port>\d+) typ (?P<type>\S+)(?P<rest>.*)$"
)
_MEDIA = re.compile(r"^m=(?P<kind>\S+) (?P<port>\d+) (?P<rest>.*)$")
_CONNECTION = re.compile(r"^c=IN IP[46] (?P<host>\S+)$")


def candidate_addresses(sdp: str) -> list[Address]:
    """The addresses of the UDP host candidates in `sdp`, first seen first, without repeats."""
    found: list[Address] = []
    for line in sdp.splitlines():
        match = _CANDIDATE.match(line)
        if match and match["transport"].lower() == "udp" and match["type"] == "host":
            address = (match["host"], int(match["port"]))
            if address not in found:
                found.append(address)
    return found


def route_candidates(sdp: str, through: Address) -> tuple[str, Address]:
    """`sdp` with its one UDP host candidate (and the m= port and c= address that name it)
    replaced by `through`; every other candidate line removed, so nothing bypasses the link.
    Returns the new SDP and the address it replaced. ValueError when the SDP names no loopback
    host candidate, or more than one address."""
    addresses = candidate_addresses(sdp)
    if len(addresses) != 1:
        raise ValueError(f"expected one UDP host candidate address, found {len(addresses)}")
    original = loopback_address(addresses[0])
    host, port = loopback_address(through)
    lines = []
    for line in sdp.splitlines():
        candidate = _CANDIDATE.match(line)
        media = _MEDIA.match(line)
        connection = _CONNECTION.match(line)
        if candidate:
            if (candidate["host"], int(candidate["port"])) != original:
                continue
            if candidate["transport"].lower() != "udp" or candidate["type"] != "host":
                continue
            line = (
                f"a=candidate:{candidate['foundation']} {candidate['component']} "
                f"{candidate['transport']} {candidate['priority']} {host} {port} "
                f"typ {candidate['type']}{candidate['rest']}"
            )
        elif media and int(media["port"]) == original[1]:
            line = f"m={media['kind']} {port} {media['rest']}"
        elif connection and connection["host"] == original[0]:
            line = f"c=IN IP4 {host}"
        lines.append(line)
    return "\r\n".join(lines) + "\r\n", original


def route_offer(link: Link, sdp: str) -> str:
    """The server's offer as the client must see it: the server's candidate becomes A."""
    routed, server = route_candidates(sdp, link.client_facing)
    link.connect(server=server)
    return routed


def route_answer(link: Link, sdp: str) -> str:
    """The client's answer as the server must see it: the client's candidate becomes B."""
    routed, client = route_candidates(sdp, link.server_facing)
    link.connect(client=client)
    return routed
