"""The test coturn as Triad's credentials meet it: a TURN Allocate over UDP, TCP and TLS with a
TURN REST credential minted by `server.rooms.media.ice`, refusals of wrong and expired
credentials, and the peer policy (relays only to the addresses the test allows)."""

from __future__ import annotations

import asyncio
import ssl
import time

import pytest
from aioice import stun, turn

from server.ids import ParticipantId
from server.rooms.media.ice import turn_credential
from tests.coturn import Coturn
from tests.waiting import wait_for

P = ParticipantId("p-turn-test")


async def allocate(
    coturn: Coturn,
    transport: str,
    username: str,
    password: str,
    *,
    tls: ssl.SSLContext | None = None,
) -> turn.TurnTransport:
    port = coturn.tls_port if tls is not None else coturn.port
    endpoint, _ = await asyncio.wait_for(
        turn.create_turn_endpoint(
            asyncio.DatagramProtocol,
            server_addr=(coturn.config.listening_ips[0], port),
            username=username,
            password=password,
            lifetime=60,
            ssl=tls,
            transport=transport,
        ),
        10,
    )
    return endpoint


@pytest.mark.parametrize("how", ["udp", "tcp", "tls"])
async def test_triad_credentials_allocate_a_relay(coturn: Coturn, how: str) -> None:
    username, password = turn_credential(coturn.config.secret, P, 60)
    tls = coturn.ssl_context() if how == "tls" else None
    endpoint = await allocate(coturn, "udp" if how == "udp" else "tcp", username, password, tls=tls)
    try:
        host, port = endpoint.get_extra_info("sockname")
        assert host == coturn.config.relay_ip
        assert port > 0
    finally:
        endpoint.close()
    granted = [line for line in coturn.allocations() if f"<{username}>" in line]
    assert granted, coturn.log_tail()
    if how == "tls":
        assert any("method=TLS" in line for line in coturn.sessions_of(username))


@pytest.mark.parametrize("fault", ["wrong secret", "expired", "tampered name"])
async def test_coturn_refuses_bad_credentials_with_401(coturn: Coturn, fault: str) -> None:
    if fault == "wrong secret":
        username, password = turn_credential("not-the-coturn-secret", P, 60)
    elif fault == "expired":
        username, password = turn_credential(coturn.config.secret, P, 60, now=time.time() - 3600)
    else:  # a longer lifetime written into a name signed for a shorter one
        username, password = turn_credential(coturn.config.secret, P, 60)
        username = f"{int(time.time()) + 86_400}:{P}"
    with pytest.raises(stun.TransactionFailed) as refused:
        await allocate(coturn, "udp", username, password)
    assert refused.value.response.attributes["ERROR-CODE"][0] == 401
    assert not [line for line in coturn.allocations() if f"<{username}>" in line]


async def test_relays_go_only_to_allowed_peers(coturn: Coturn) -> None:
    username, password = turn_credential(coturn.config.secret, P, 60)
    endpoint = await allocate(coturn, "udp", username, password)
    client = endpoint._TurnTransport__inner_protocol  # type: ignore[attr-defined]
    try:
        await client.channel_bind(0x4000, ("127.0.0.1", 9))  # allowed: loopback
        with pytest.raises(stun.TransactionFailed) as refused:
            await client.channel_bind(0x4001, ("10.1.2.3", 9))  # a private range
        assert refused.value.response.attributes["ERROR-CODE"][0] == 403
    finally:
        endpoint.close()


async def test_an_allocation_outlives_its_credential_but_a_new_one_is_refused(
    coturn: Coturn,
) -> None:
    """coturn checks a TURN REST credential's expiry when an allocation is made, not when it
    is refreshed: a call relayed past TRIAD_TURN_CREDENTIAL_TTL_SECONDS goes on, and a new peer
    connection needs a fresh credential (a rejoin's state brings one)."""
    username, password = turn_credential(coturn.config.secret, P, 60, now=time.time() - 55)
    expiry = int(username.split(":")[0])
    loop = asyncio.get_running_loop()
    server = (coturn.config.listening_ips[0], coturn.port)
    transport, client = await loop.create_datagram_endpoint(
        lambda: turn.TurnClientUdpProtocol(server, username, password, 600, 300),
        remote_addr=server,
    )
    try:
        await client.connect()
        # coturn reads the clock it caches about once a second, not the system's: 3 s past the
        # expiry, it has surely passed it there too.
        await wait_for(lambda: time.time() > expiry + 3, 15, "the credential's expiry")
        refresh = stun.Message(message_method=stun.Method.REFRESH, message_class=stun.Class.REQUEST)
        refresh.attributes["LIFETIME"] = 600
        await client.request_with_retry(refresh)  # the live allocation is kept
        with pytest.raises(stun.TransactionFailed) as refused:
            await allocate(coturn, "udp", username, password)
        assert refused.value.response.attributes["ERROR-CODE"][0] == 401
    finally:
        try:
            await client.delete()
        finally:
            transport.close()  # also when the test failed first: no socket left to the next
