"""Which remote ICE candidates the server will send connectivity checks to.

A remote candidate makes the server send STUN packets to the address it names, so a
participant could otherwise have the server probe hosts on its own networks. The server only
talks to public addresses, plus the kinds of address it is itself configured to use: with
`TRIAD_ICE_HOST_ADDRESSES=127.0.0.1` (tests) loopback is allowed; with a private host address
(a hospital LAN) private addresses are. Private addresses can also be allowed by setting.

mDNS names (`*.local`, which browsers put in host candidates to hide the private address) are
refused: resolving one sends multicast queries on the server's own network, and the answer is
an address the server could not vet. Nothing is lost: the browser's server-reflexive and relay
candidates, and the peer-reflexive one learnt from its own checks, still connect.

`parse_trickled` reads a browser's trickled candidate, bounded and shape-checked before
aiortc's parser sees it."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from aiortc import RTCIceCandidate
from aiortc.sdp import candidate_from_sdp

from server.errors import ErrorCode, TriadError

MAX_CANDIDATE_CHARS = 1024


class AddressKind(StrEnum):
    PUBLIC = "public"
    PRIVATE = "private"
    LOOPBACK = "loopback"
    LINK_LOCAL = "link-local"
    MULTICAST = "multicast"
    UNSPECIFIED = "unspecified"
    RESERVED = "reserved"


IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def address_kind(address: IpAddress) -> AddressKind:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is loopback too
    if address.is_unspecified:
        return AddressKind.UNSPECIFIED
    if address.is_loopback:
        return AddressKind.LOOPBACK
    if address.is_link_local:
        return AddressKind.LINK_LOCAL
    if address.is_multicast:
        return AddressKind.MULTICAST
    if address.is_reserved:
        return AddressKind.RESERVED
    if not address.is_global:
        return AddressKind.PRIVATE  # RFC 1918, ULA, CGNAT, documentation ranges...
    return AddressKind.PUBLIC


@dataclass(frozen=True)
class CandidatePolicy:
    allowed: frozenset[AddressKind]
    max_per_connection: int

    def __post_init__(self) -> None:
        if AddressKind.PUBLIC not in self.allowed:
            raise ValueError("public addresses are always allowed")
        if self.max_per_connection < 1:
            raise ValueError("a peer connection takes at least one candidate")

    @classmethod
    def for_hosts(
        cls, host_addresses: Iterable[str], *, allow_private: bool, max_per_connection: int
    ) -> CandidatePolicy:
        allowed = {AddressKind.PUBLIC}
        allowed.update(address_kind(ipaddress.ip_address(h)) for h in host_addresses)
        if allow_private:
            allowed.add(AddressKind.PRIVATE)
        return cls(frozenset(allowed), max_per_connection)

    def check_address(self, host: str) -> None:
        """Raises CANDIDATE_ADDRESS_REFUSED unless the server may send checks to `host`."""
        if host.lower().endswith(".local"):
            raise TriadError(
                ErrorCode.CANDIDATE_ADDRESS_REFUSED, "mDNS candidates are not resolved here"
            )
        try:
            kind = address_kind(ipaddress.ip_address(host))
        except ValueError:
            # Never a DNS name: no lookups on a participant's say-so.
            raise TriadError(
                ErrorCode.CANDIDATE_INVALID, "the candidate address is not an IP address"
            ) from None
        if kind not in self.allowed:
            raise TriadError(
                ErrorCode.CANDIDATE_ADDRESS_REFUSED, f"{kind} addresses are not reached from here"
            )

    def check_count(self, accepted: int) -> None:
        """Raises CANDIDATES_EXHAUSTED once `accepted` candidates fill the connection's budget."""
        if accepted >= self.max_per_connection:
            raise TriadError(
                ErrorCode.CANDIDATES_EXHAUSTED,
                f"at most {self.max_per_connection} candidates per peer connection",
            )


def parse_trickled(
    candidate: Mapping[str, object] | None, mids: set[str]
) -> RTCIceCandidate | None:
    """A trickled remote candidate in the browser's form (`{candidate, sdpMid, sdpMLineIndex}`)
    naming one of the media sections `mids`, parsed; None (or an empty candidate) is the end of
    the list and gives None. Raises CANDIDATE_INVALID; the address is the policy's to check."""
    if candidate is not None and not isinstance(candidate, Mapping):
        raise _invalid("a candidate must be an object")
    text = None if candidate is None else candidate.get("candidate")
    if text is None or text == "":
        if candidate is not None and text is None:
            raise _invalid("the candidate field is missing")
        return None
    if not isinstance(text, str) or len(text) > MAX_CANDIDATE_CHARS:
        raise _invalid("the candidate must be a short string")
    assert candidate is not None
    mid = candidate.get("sdpMid")
    index = candidate.get("sdpMLineIndex")
    if mid is not None and not isinstance(mid, str):
        raise _invalid("sdpMid must be a string")
    if index is not None and (isinstance(index, bool) or not isinstance(index, int)):
        raise _invalid("sdpMLineIndex must be an integer")
    if mid not in mids and not (isinstance(index, int) and 0 <= index < len(mids)):
        raise _invalid("the candidate names no media section")
    line = text.removeprefix("candidate:")
    if not _candidate_shape_ok(line):
        raise _invalid("the candidate does not parse")
    try:
        parsed = candidate_from_sdp(line)
    except (ValueError, IndexError, KeyError, AssertionError):
        raise _invalid("the candidate does not parse") from None
    if parsed.protocol.lower() != "udp":
        raise _invalid("the server speaks ICE over UDP only")
    return parsed


def _invalid(message: str) -> TriadError:
    return TriadError(ErrorCode.CANDIDATE_INVALID, message)


def _candidate_shape_ok(line: str) -> bool:
    """`foundation component transport priority address port typ type ...` (RFC 8839 5.1).

    Checked here because aiortc's parser validates with `assert`, which `python -O` removes.
    """
    bits = line.split()
    return (
        len(bits) >= 8
        and bits[1].isdigit()
        and bits[3].isdigit()
        and bits[5].isdigit()
        and int(bits[5]) <= 65535
        and bits[6] == "typ"
        and len(bits) % 2 == 0
    )
