"""A patient on a network that drops UDP joins a consult through `triad serve` and coturn.

The client is an aiortc participant in a network namespace of its own (`tests/netns.py`) whose
UDP is refused on the way out: it reaches the server's signaling and coturn's TCP and TLS
listeners over the namespace's link, and the SFU (on loopback) only through a relay coturn
allocates for it. It takes the TURN URL of the transport under test from the join state's
`ice_servers`, with the credential the server minted for it. The therapist and the
psychiatrist join on loopback directly. Everyone must decode everyone else's video.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import coturn as coturn_module
from tests import netns
from tests.coturn import Coturn, CoturnConfig, triad_check_turn
from tests.media.linkedpeer import LinkedParticipant, PeerOptions
from tests.media.participantprocess import ParticipantProcess
from tests.media.triadserver import ConsultSeats, TriadServer
from tests.netns import Namespace
from tests.waiting import wait_for

# Small video: three encoders and decoders share two cores with the server and coturn.
SMALL = PeerOptions(width=160, height=120, fps=15)
FRAMES = 20  # decoded video frames that show a stream flows (over a second at 15 fps)
DEADLINE = 60.0


@pytest.fixture
def namespace() -> Iterator[Namespace]:
    coturn_module.require()
    netns.require()
    with Namespace.created(refuse_udp=True) as created:
        yield created


@dataclass
class RelayedConsult:
    namespace: Namespace
    coturn: Coturn
    server: TriadServer
    consult: ConsultSeats
    client: ParticipantProcess
    clinicians: list[LinkedParticipant]

    async def client_status(self) -> dict[str, Any]:
        return await self.client.request("status")

    async def everyone_sees_everyone(self) -> bool:
        decoded = (await self.client_status())["decoded"]
        client_sees = {sender for sender, kind, n in decoded if kind == "video" and n >= FRAMES}
        clinicians = {c.participant_id for c in self.clinicians}
        client_id = self.consult.seat("client").participant_id
        if client_sees != clinicians:
            return False
        return all(c.recorder.total[(client_id, "video")] >= FRAMES for c in self.clinicians)


@contextlib.asynccontextmanager
async def relayed_consult(
    tmp_path: Path, namespace: Namespace, transport: str
) -> AsyncIterator[RelayedConsult]:
    config = CoturnConfig(listening_ips=("127.0.0.1", namespace.outside))
    async with contextlib.AsyncExitStack() as stack:
        coturn = await stack.enter_async_context(Coturn.running(tmp_path, config))
        server_dir = tmp_path / "server"
        server_dir.mkdir()
        server = await stack.enter_async_context(
            TriadServer.running(
                server_dir,
                host=namespace.outside,  # the namespace reaches signaling over its link
                TRIAD_TURN_URLS=",".join(coturn.urls(namespace.outside)),
                TRIAD_TURN_SECRET=config.secret,
                TRIAD_LOG_LEVEL="info",  # media.peer_closed names the candidate types
            )
        )
        consult = await server.new_consult()
        client = ParticipantProcess(
            "client",
            tmp_path / "client.log",
            prefix=namespace.exec_prefix,
            env={"SSL_CERT_FILE": str(coturn.ca_path)},  # trusts the test coturn's certificate
        )
        stack.push_async_callback(client.close)
        await client.spawn()
        clinicians = [
            LinkedParticipant(consult.seat(role), server.base_url, SMALL)
            for role in ("therapist", "psychiatrist")
        ]
        for clinician in clinicians:
            stack.push_async_callback(clinician.close)
            await clinician.join()
        options = PeerOptions(
            width=SMALL.width,
            height=SMALL.height,
            fps=SMALL.fps,
            host_address=namespace.inside,
            turn=transport,
        )
        await client.join(
            {
                "seat": asdict(consult.seat("client")),
                "base_url": server.base_url,
                "peers": asdict(options),
                "link": None,
            }
        )
        yield RelayedConsult(namespace, coturn, server, consult, client, clinicians)


@pytest.mark.timeout(150)
@pytest.mark.parametrize("transport", ["tcp", "tls"])
async def test_a_client_whose_network_drops_udp_joins_through_a_turn_relay(
    tmp_path: Path, namespace: Namespace, transport: str
) -> None:
    async with relayed_consult(tmp_path, namespace, transport) as consult:
        await wait_for(
            consult.everyone_sees_everyone,
            DEADLINE,
            f"video both ways through a TURN relay over {transport}",
        )
        status = await consult.client_status()
        assert status["failures"] == []
        client_id = consult.consult.seat("client").participant_id
        coturn = consult.coturn
        # coturn granted the client's own credential (minted by the server for this seat) an
        # allocation, over a stream connection from inside the namespace.
        granted = [line for line in coturn.allocations() if f":{client_id}>" in line]
        assert granted, coturn.log_tail()
        assert f"tcp or tls connected to: {namespace.inside}:" in coturn.log_text()
        sessions = "\n".join(coturn.sessions_of(granted[0].split("user <")[1].split(">")[0]))
        assert ("method=TLS" in sessions) is (transport == "tls"), sessions

        # The server's log says the client's media came through a relay (its side's candidate),
        # the clinicians' directly, when the consult ends and their peer connections close.
        await consult.server.end_consult(consult.consult.consult_id)
        routes: dict[str, tuple[str, str]] = {}

        def closed_peers() -> bool:
            for line in consult.server.log_path.read_text().splitlines():
                entry = json.loads(line) if line.startswith("{") else {}
                if entry.get("event") == "media.peer_closed":
                    routes[entry["participant_id"]] = (
                        entry["local_candidate"],
                        entry["remote_candidate"],
                    )
            return len(routes) == 3

        await wait_for(closed_peers, DEADLINE, "the server's media.peer_closed lines")
        assert routes[client_id] == ("host", "relay")
        assert {routes[c.participant_id] for c in consult.clinicians} == {("host", "host")}


async def test_from_the_namespace_only_turn_over_tcp_and_tls_allocate(
    tmp_path: Path, namespace: Namespace
) -> None:
    """`triad check turn` run inside the namespace: its UDP is refused, its TCP and TLS reach
    coturn and allocate (what the consult above relies on)."""
    config = CoturnConfig(listening_ips=("127.0.0.1", namespace.outside))
    async with Coturn.running(tmp_path, config) as coturn:
        status, out = await triad_check_turn(
            coturn, coturn.urls(namespace.outside), prefix=namespace.exec_prefix
        )
    verdicts = [line.split()[0] for line in out.splitlines()]
    assert verdicts == ["unreachable", "allocated", "allocated"], out
    assert status == 1
