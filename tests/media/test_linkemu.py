"""The link emulator: what each direction delivers, loses and drops, counted (never timed), and
real aiortc peers connecting through it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import cast

import pytest
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)

from server.rooms.media import seam
from tests.media.linkemu import LOOPBACK, Address, Link, LinkProfile, LinkStats
from tests.media.linksdp import candidate_addresses, route_answer, route_candidates, route_offer
from tests.waiting import wait_for

BATCH = 50  # datagrams sent before waiting for the link to read them (no kernel buffer drops)


class Endpoint(asyncio.DatagramProtocol):
    """A UDP socket on loopback that records what it receives, and when (the loop's clock)."""

    def __init__(self) -> None:
        self.received: list[tuple[float, bytes]] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.append((asyncio.get_running_loop().time(), data))

    @property
    def address(self) -> Address:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return host, port

    def send(self, data: bytes, to: Address) -> None:
        assert self.transport is not None
        self.transport.sendto(data, to)

    @property
    def payloads(self) -> list[bytes]:
        return [data for _, data in self.received]


async def endpoint() -> Endpoint:
    _, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
        Endpoint, local_addr=(LOOPBACK, 0)
    )
    return protocol


@pytest.fixture
async def ends() -> AsyncIterator[tuple[Endpoint, Endpoint]]:
    client, server = await endpoint(), await endpoint()
    yield client, server
    for end in (client, server):
        assert end.transport is not None
        end.transport.close()


def numbered(n: int, size: int = 100) -> bytes:
    return n.to_bytes(4, "big") + bytes(size - 4)


async def send_uplink(link: Link, client: Endpoint, datagrams: list[bytes]) -> None:
    """Send through A in batches, each read by the link before the next."""
    start = link.stats().uplink.offered
    for i in range(0, len(datagrams), BATCH):
        for data in datagrams[i : i + BATCH]:
            client.send(data, link.client_facing)
        sent = start + min(i + BATCH, len(datagrams))
        await wait_for(lambda sent=sent: link.stats().uplink.offered == sent, 10, "the link")


def settled(stats: LinkStats, offered: int) -> bool:
    up = stats.uplink
    return up.offered == offered and up.in_flight == 0


async def test_a_clean_link_delivers_everything_in_order_both_ways(
    ends: tuple[Endpoint, Endpoint],
) -> None:
    client, server = ends
    async with Link(LinkProfile(delay_ms=5), LinkProfile(delay_ms=5, jitter_ms=20)) as link:
        link.connect(server=server.address)
        sent = [numbered(i) for i in range(500)]
        await send_uplink(link, client, sent)
        await wait_for(lambda: len(server.payloads) == 500, 10, "the uplink")
        assert server.payloads == sent
        assert link.client == client.address  # learnt from the first datagram

        # Back the other way: jittered, yet never reordered.
        for i in range(0, 500, BATCH):
            for data in sent[i : i + BATCH]:
                server.send(data, link.server_facing)
            await wait_for(lambda n=i + BATCH: link.stats().downlink.offered == n, 10, "link")
        await wait_for(lambda: len(client.payloads) == 500, 10, "the downlink")
        assert client.payloads == sent
        stats = link.stats()
        for direction in (stats.uplink, stats.downlink):
            assert direction.offered == direction.delivered == 500
            assert direction.offered_bytes == direction.delivered_bytes == 500 * 100
            assert direction.lost == direction.overflowed == direction.undeliverable == 0


async def test_a_link_that_loses_everything_delivers_nothing(
    ends: tuple[Endpoint, Endpoint],
) -> None:
    client, server = ends
    async with Link(LinkProfile(loss=1.0)) as link:
        link.connect(server=server.address)
        await send_uplink(link, client, [numbered(i) for i in range(200)])
        stats = link.stats().uplink
        # Loss is decided as a datagram arrives: with all 200 counted and none in flight,
        # none can arrive later.
        assert settled(link.stats(), 200)
        assert (stats.lost, stats.lost_bytes, stats.delivered) == (200, 200 * 100, 0)
        assert server.received == []


async def test_a_link_reshaped_mid_call_carries_by_its_new_profile(
    ends: tuple[Endpoint, Endpoint],
) -> None:
    client, server = ends
    async with Link(LinkProfile(loss=1.0)) as link:
        link.connect(server=server.address)
        await send_uplink(link, client, [numbered(i) for i in range(50)])
        assert settled(link.stats(), 50)
        link.reshape(LinkProfile(), LinkProfile())  # the weak link heals
        await send_uplink(link, client, [numbered(i) for i in range(50, 100)])
        await wait_for(lambda: len(server.received) == 50, 10, "the healed link to deliver")
        assert server.payloads == [numbered(i) for i in range(50, 100)]
        assert link.stats().uplink.lost == 50
        assert link.uplink_profile == LinkProfile()


async def test_seeded_loss_drops_about_its_share_and_the_same_ones_each_run(
    ends: tuple[Endpoint, Endpoint],
) -> None:
    client, server = ends
    runs: list[list[bytes]] = []
    for _ in range(2):
        server.received.clear()
        async with Link(LinkProfile(loss=0.1), seed=7) as link:
            link.connect(server=server.address)
            await send_uplink(link, client, [numbered(i) for i in range(2000)])
            await wait_for(lambda link=link: settled(link.stats(), 2000), 10, "the link")
            stats = link.stats().uplink
            await wait_for(lambda n=stats.delivered: len(server.received) == n, 10, "delivery")
            assert stats.lost + stats.delivered == 2000
            assert 160 <= stats.lost <= 240, stats  # 10% of 2,000 is 200 (sd 13)
            runs.append(server.payloads)
    assert runs[0] == runs[1]


async def test_a_burst_beyond_the_queue_is_dropped_at_its_tail(
    ends: tuple[Endpoint, Endpoint],
) -> None:
    client, server = ends
    profile = LinkProfile(rate_bps=100_000)  # 12.5 kB/s behind a 3 kB queue
    assert profile.queue_limit == 3_000
    async with Link(profile) as link:
        link.connect(server=server.address)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await send_uplink(link, client, [numbered(i, 1_000) for i in range(100)])
        burst = loop.time() - started
        stats = link.stats().uplink
        # What the bottleneck could take during the burst: its queue, plus what it sent meanwhile.
        accepted = (profile.queue_limit + 100_000 * burst / 8) // 1_000 + 1
        assert stats.overflowed >= 100 - accepted, (stats, burst)
        assert stats.overflowed_bytes == stats.overflowed * 1_000
        await wait_for(lambda: settled(link.stats(), 100), 10, "the queue to drain")
        stats = link.stats().uplink
        assert stats.delivered + stats.overflowed == 100
        await wait_for(lambda: len(server.received) == stats.delivered, 10, "delivery")
        assert server.payloads == sorted(server.payloads)  # the survivors, in order


async def test_delivered_bytes_never_exceed_what_the_rate_allows(
    ends: tuple[Endpoint, Endpoint],
) -> None:
    client, server = ends
    profile = LinkProfile(rate_bps=1_000_000, delay_ms=10)
    assert profile.rate_bps is not None
    async with Link(profile) as link:
        link.connect(server=server.address)
        started = asyncio.get_running_loop().time()
        await send_uplink(link, client, [numbered(i, 500) for i in range(400)])  # 200 kB
        await wait_for(lambda: settled(link.stats(), 400), 20, "the queue to drain")
        stats = link.stats().uplink
        await wait_for(lambda: len(server.received) == stats.delivered, 10, "delivery")
    assert stats.overflowed > 0
    assert stats.delivered + stats.overflowed == 400
    # A bottleneck serialises: whatever the queue holds, by any moment it has sent at most
    # rate x time since the first datagram (one datagram of slack for the clock's resolution).
    total = 0
    for at, data in server.received:
        total += len(data)
        assert total <= profile.rate_bps * (at - started) / 8 + 500, (total, at - started)


async def test_the_relay_binds_and_sends_only_to_loopback() -> None:
    link = Link()
    with pytest.raises(RuntimeError):
        _ = link.client_facing
    await link.start()
    try:
        assert link.client_facing[0] == link.server_facing[0] == LOOPBACK
        assert link.client_facing != link.server_facing
        unspecified = ("0.0.0.0", 5000)  # noqa: S104 - refused, never bound
        for address in (("192.0.2.1", 5000), unspecified, ("localhost", 5000)):
            with pytest.raises(ValueError, match="not a loopback address"):
                link.connect(server=address)
            with pytest.raises(ValueError, match="not a loopback address"):
                link.connect(client=address)
        with pytest.raises(ValueError, match="not a loopback address"):
            link.connect(server=("::1", 5000))  # the relay's sockets are IPv4
        assert link.server is None
        assert link.client is None
        link.connect(server=("127.0.0.2", 5000))
        assert link.server == ("127.0.0.2", 5000)
    finally:
        await link.close()
        await link.close()  # safe twice
    with pytest.raises(RuntimeError):
        await link.start()


def test_profiles_refuse_values_outside_their_bounds() -> None:
    for bad in (
        {"loss": 1.5},
        {"loss": -0.1},
        {"rate_bps": 10},
        {"delay_ms": -1},
        {"jitter_ms": 20_000},
        {"queue_bytes": 10_000},  # a queue without a rate
        {"rate_bps": 100_000, "queue_bytes": 10},
    ):
        with pytest.raises(ValueError):  # noqa: PT011 - each names its own field
            LinkProfile(**bad)
    assert LinkProfile(rate_bps=600_000).queue_limit == 11_250  # 150 ms of 600 kbit/s
    assert LinkProfile().queue_limit is None


def pc() -> RTCPeerConnection:
    return RTCPeerConnection(
        RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    )


async def test_aiortc_peers_connect_and_exchange_data_through_the_link() -> None:
    """ICE checks, DTLS and SCTP all cross the link: the offerer (the server's role) only ever
    learns B, the answerer only A."""
    offerer, answerer = pc(), pc()
    link = Link(LinkProfile(delay_ms=20), LinkProfile(delay_ms=20, loss=0.05), seed=3)
    await link.start()
    try:
        # A transceiver, so that the host-candidate seam has an ICE transport to restrict.
        offerer.addTransceiver("audio", direction="recvonly")
        channel = offerer.createDataChannel("probe")
        seam.restrict_host_candidates(offerer, (LOOPBACK,))
        await offerer.setLocalDescription(await offerer.createOffer())
        offer = offerer.localDescription.sdp
        (server_address,) = candidate_addresses(offer)

        routed_offer = route_offer(link, offer)
        assert candidate_addresses(routed_offer) == [link.client_facing]
        assert link.server == server_address
        await answerer.setRemoteDescription(RTCSessionDescription(routed_offer, "offer"))
        seam.restrict_host_candidates(answerer, (LOOPBACK,))
        await answerer.setLocalDescription(await answerer.createAnswer())
        routed_answer = route_answer(link, answerer.localDescription.sdp)
        assert candidate_addresses(routed_answer) == [link.server_facing]
        await offerer.setRemoteDescription(RTCSessionDescription(routed_answer, "answer"))

        echoed: list[str] = []

        @answerer.on("datachannel")
        def on_channel(remote: object) -> None:
            remote.on("message", lambda message: remote.send(f"echo {message}"))  # type: ignore[attr-defined]

        channel.on("message", echoed.append)
        channel.on("open", lambda: channel.send("ping"))
        await wait_for(lambda: echoed == ["echo ping"], 20, "the echo through the link")
        assert offerer.connectionState == answerer.connectionState == "connected"
        assert offerer.sctp is not None
        ice = offerer.sctp.transport.transport
        far_ends = {(c.ip, c.port) for c in ice.getRemoteCandidates()}
        assert far_ends == {link.server_facing}
        stats = link.stats()
        assert stats.uplink.delivered > 0
        assert stats.downlink.delivered > 0
    finally:
        await offerer.close()
        await answerer.close()
        await link.close()


def test_routing_removes_every_candidate_the_link_does_not_carry() -> None:
    sdp = (
        "v=0\r\nm=audio 5000 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 127.0.0.1\r\n"
        "a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\n"
        "a=candidate:2 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active\r\n"
        "a=candidate:3 1 udp 1694498815 127.0.0.1 6000 typ srflx raddr 127.0.0.1 rport 5000\r\n"
        "a=end-of-candidates\r\n"
    )
    routed, original = route_candidates(sdp, ("127.0.0.1", 7000))
    assert original == ("127.0.0.1", 5000)
    assert "m=audio 7000 UDP/TLS/RTP/SAVPF 96" in routed
    assert [line for line in routed.splitlines() if line.startswith("a=candidate")] == [
        "a=candidate:1 1 udp 2130706431 127.0.0.1 7000 typ host"
    ]
    two = sdp.replace("a=end", "a=candidate:4 1 udp 2130706431 127.0.0.2 5001 typ host\r\na=end")
    with pytest.raises(ValueError, match="one UDP host candidate"):
        route_candidates(two, ("127.0.0.1", 7000))
    outside = sdp.replace("127.0.0.1 5000 typ host", "192.0.2.1 5000 typ host")
    with pytest.raises(ValueError, match="not a loopback address"):
        route_candidates(outside, ("127.0.0.1", 7000))
