"""ICE: TURN REST credentials, the ICE server lists, host candidates and port ranges."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import pytest

from server.errors import ErrorCode, TriadError
from server.ids import ParticipantId
from server.rooms.media import IceServer, MediaConfig, Sfu
from server.rooms.media.candidates import AddressKind, CandidatePolicy, address_kind
from server.rooms.media.ice import as_json, client_ice_servers, rtc_ice_servers, turn_credential

P = ParticipantId("p_abc")


def test_turn_credential_matches_a_hand_computed_vector() -> None:
    # printf '%s' "1700003600:p_abc" | openssl dgst -sha1 -hmac "s3cret" -binary | base64
    username, credential = turn_credential("s3cret", P, 3600, now=1_700_000_000)
    assert username == "1700003600:p_abc"
    assert credential == "LGUpTkwvzrFt2rld6AMo7D39XaY="


def test_client_ice_servers() -> None:
    servers = client_ice_servers(
        P,
        stun_urls=["stun:stun.example.org:3478"],
        # Configured TLS first: handed out UDP, then TCP, then TLS, as browsers should try them.
        turn_urls=[
            "turns:turn.example.org:5349",
            "turn:turn.example.org:3478?transport=tcp",
            "turn:turn.example.org:3478?transport=udp",
        ],
        turn_secret="s3cret",
        ttl_seconds=3600,
        now=1_700_000_000,
    )
    assert as_json(servers) == [
        {"urls": ["stun:stun.example.org:3478"]},
        {
            "urls": [
                "turn:turn.example.org:3478?transport=udp",
                "turn:turn.example.org:3478?transport=tcp",
                "turns:turn.example.org:5349",
            ],
            "username": "1700003600:p_abc",
            "credential": "LGUpTkwvzrFt2rld6AMo7D39XaY=",
        },
    ]
    no_secret = client_ice_servers(
        P, stun_urls=[], turn_urls=["turn:t.example.org"], turn_secret=None, ttl_seconds=60
    )
    assert no_secret == ()
    assert rtc_ice_servers(()) == []  # a list, never None (None means Google's STUN)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"host_addresses": "127.0.0.1"},
        {"host_addresses": ("localhost",)},
        {"udp_port_min": 40000},
        {"host_addresses": ("127.0.0.1",), "udp_port_min": 50000, "udp_port_max": 40000},
        {"udp_port_min": 1000, "udp_port_max": 40010},
        {"keyframe_request_interval": 0},
        {"max_sdp_bytes": 10},
        {"ice_servers": ("stun:x",)},
    ],
)
def test_media_config_refuses_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        MediaConfig(**kwargs)


def test_ice_server_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="stun"):
        IceServer(urls=("http://x",))
    with pytest.raises(ValueError, match="together"):
        IceServer(urls=("turn:x",), username="u")


class Offers:
    def __init__(self) -> None:
        self.sdp: list[str] = []

    async def send_offer(self, offer: Any, *, generation: int) -> None:
        self.sdp.append(offer.sdp)


def host_candidates(sdp: str) -> list[tuple[str, int]]:
    found = re.findall(r"a=candidate:\S+ 1 udp \d+ (\S+) (\d+) typ (\w+)", sdp)
    return sorted({(host, int(port)) for host, port, kind in found if kind == "host"})


@pytest.mark.parametrize("port_range", [None, (41000, 41050)])
async def test_the_server_advertises_exactly_its_host_addresses(
    port_range: tuple[int, int] | None,
) -> None:
    low, high = port_range or (None, None)
    config = MediaConfig(host_addresses=("127.0.0.1",), udp_port_min=low, udp_port_max=high)
    offers = Offers()
    sfu = Sfu(config)
    try:
        await sfu.add(P, offers)
        (candidates,) = [host_candidates(sdp) for sdp in offers.sdp]
        assert [host for host, _ in candidates] == ["127.0.0.1"]
        assert "typ srflx" not in offers.sdp[0]
        if port_range:
            assert all(low <= port <= high for _, port in candidates)  # type: ignore[operator]
    finally:
        await sfu.close()


@pytest.mark.parametrize(
    ("hosts", "allow_private", "address", "taken"),
    [
        pytest.param((), False, "198.51.100.7", False, id="documentation-range-is-not-global"),
        pytest.param((), False, "8.8.8.8", True, id="public-always"),
        pytest.param((), False, "2001:4860:4860::8888", True, id="public-v6"),
        pytest.param((), False, "10.1.2.3", False, id="private-refused-by-default"),
        pytest.param((), True, "10.1.2.3", True, id="private-by-setting"),
        pytest.param(("10.0.0.5",), False, "192.168.0.9", True, id="private-when-server-is"),
        pytest.param(("10.0.0.5",), False, "127.0.0.1", False, id="loopback-not-for-lan"),
        pytest.param(("127.0.0.1",), False, "127.0.0.1", True, id="loopback-when-server-is"),
        pytest.param(("127.0.0.1",), False, "::1", True, id="loopback-v6-same-kind"),
        pytest.param(("127.0.0.1",), False, "10.1.2.3", False, id="private-not-for-loopback"),
        pytest.param(("127.0.0.1",), True, "169.254.169.254", False, id="link-local-never"),
        pytest.param(("127.0.0.1",), True, "239.255.255.250", False, id="multicast-never"),
        pytest.param(("127.0.0.1",), True, "0.0.0.0", False, id="unspecified-never"),  # noqa: S104
        pytest.param(("127.0.0.1",), True, "::ffff:127.0.0.1", True, id="v4-mapped-loopback"),
        pytest.param(("127.0.0.1",), True, "::ffff:169.254.1.1", False, id="v4-mapped-ll"),
        pytest.param(("127.0.0.1",), True, "host.local", False, id="mdns-never"),
    ],
)
def test_candidate_address_policy(
    hosts: tuple[str, ...], allow_private: bool, address: str, taken: bool
) -> None:
    policy = CandidatePolicy.for_hosts(hosts, allow_private=allow_private, max_per_connection=5)
    if taken:
        policy.check_address(address)
    else:
        with pytest.raises(TriadError) as refused:
            policy.check_address(address)
        assert refused.value.code == ErrorCode.CANDIDATE_ADDRESS_REFUSED


def test_candidate_policy_refuses_names_and_counts() -> None:
    policy = CandidatePolicy.for_hosts((), allow_private=False, max_per_connection=2)
    with pytest.raises(TriadError) as name:
        policy.check_address("evil.example")  # never looked up
    assert name.value.code == ErrorCode.CANDIDATE_INVALID
    policy.check_count(1)
    with pytest.raises(TriadError) as full:
        policy.check_count(2)
    assert full.value.code == ErrorCode.CANDIDATES_EXHAUSTED
    with pytest.raises(ValueError, match="public"):
        CandidatePolicy(frozenset({AddressKind.LOOPBACK}), 3)
    assert address_kind(ipaddress.ip_address("100.64.1.1")) is AddressKind.PRIVATE
