"""ICE servers by policy against a real coturn: `triad check turn` allocates at every configured
URL with our credentials (and says why when it cannot), and the SFU's own peer connections
gather a relayed candidate only when TRIAD_SFU_TURN says so."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from server.errors import ConfigError
from server.ids import ParticipantId
from server.rooms.media import MediaConfig, Sfu
from server.rooms.media.config import TurnAccess
from server.rooms.media.turncheck import CHECK_ID, TurnVerdict, check_turn
from server.settings import Settings
from tests.coturn import Coturn, triad_check_turn
from tests.ports import free_port

P = ParticipantId("p-sfu-turn")


async def test_triad_check_turn_allocates_over_udp_tcp_and_tls(coturn: Coturn) -> None:
    status, out = await triad_check_turn(coturn)
    assert status == 0, out
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == ["allocated"] * 3
    assert [line.split()[1] for line in lines] == list(coturn.urls())
    assert coturn.config.secret not in out
    # coturn granted three allocations to the check's credential (and they were released).
    mine = [line for line in coturn.allocations() if f":{CHECK_ID}>" in line]
    assert len(mine) == 3, coturn.log_tail()


async def test_triad_check_turn_says_unauthorized_for_a_wrong_secret(coturn: Coturn) -> None:
    status, out = await triad_check_turn(coturn, TRIAD_TURN_SECRET="not-coturns-secret-at-all")
    assert status == 1
    assert [line.split()[0] for line in out.splitlines()] == ["unauthorized"] * 3
    assert "(401)" in out
    assert not coturn.allocations()


async def test_check_turn_tells_unreachable_and_untrusted_apart(coturn: Coturn) -> None:
    _, tcp, tls = coturn.urls()
    closed = tcp.replace(f":{coturn.port}", f":{free_port()}")  # nothing listens there
    checks = await check_turn(
        [tls, closed],
        coturn.config.secret,
        600,
        within=5,
        tls=None,  # the system's CAs: the test certificate is not among them
    )
    assert [(c.url, c.verdict) for c in checks] == [
        (closed, TurnVerdict.UNREACHABLE),
        (tls, TurnVerdict.UNREACHABLE),
    ]
    assert checks[1].detail.startswith("SSL")


def test_triad_check_turn_needs_the_settings() -> None:
    from server import commands

    with pytest.raises(ConfigError, match="TRIAD_TURN_URLS"):
        asyncio.run(commands.check_turn_server(Settings(turn_urls=[])))


def test_sfu_turn_needs_turn_urls_and_secret() -> None:
    with pytest.raises(ConfigError, match="TRIAD_SFU_TURN"):
        Settings(sfu_turn=True, turn_urls=["turn:t.example.org"]).check()


class Offers:
    def __init__(self) -> None:
        self.sdp: list[str] = []

    async def send_offer(self, offer: Any, *, generation: int) -> None:
        self.sdp.append(offer.sdp)


@pytest.mark.parametrize("configured", [True, False])
async def test_the_sfu_uses_turn_only_when_configured(coturn: Coturn, configured: bool) -> None:
    _, tcp, _ = coturn.urls()
    turn = TurnAccess(urls=(tcp,), secret=coturn.config.secret, ttl_seconds=600)
    config = MediaConfig(host_addresses=("127.0.0.1",), turn=turn if configured else None)
    offers = Offers()
    sfu = Sfu(config)
    try:
        await sfu.add(P, offers)
        (sdp,) = offers.sdp
    finally:
        await sfu.close()
    assert ("typ relay" in sdp) is configured
    granted = [line for line in coturn.allocations() if f":sfu.{P}>" in line]
    assert len(granted) == (1 if configured else 0), coturn.log_tail()
