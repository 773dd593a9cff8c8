"""The committed nginx configuration (`deploy/nginx/triad.conf`) in front of `triad serve
--workers 2` (node-a) on PostgreSQL and Redis, in production mode with path routing, as the
operations guide deploys it. The file's node-b stands for a node that is down: its two
addresses are loopback ports bound by nobody listening (a connection is refused), so every
request to "any worker" that nginx sends there must go on to a live worker.

Through the proxy, over HTTPS trusting only the test certificate: the REST API (a consult made,
its session read), and the real python-socketio client joining at the worker the session names,
over WebSocket and over long-polling alone, with a browser's Origin; `/metrics` refused even
with the right token; http redirected (the API refused); HTTP/2 offered; no query string in the
access log."""

from __future__ import annotations

import asyncio
import secrets
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from server.cluster.entry import ClusterKeys
from tests import nginx
from tests.cluster.processes import session_worker, two_worker_node
from tests.media.triadserver import ConsultSeats, TriadServer
from tests.nginx import Nginx
from tests.ports import held_ports
from tests.roomclient import RoomClient

NODE_A = ("10.0.0.11:8080", "10.0.0.11:8081")  # the committed file's node-a-0 and node-a-1
NODE_B = ("10.0.0.12:8080", "10.0.0.12:8081")
WORKERS = ("node-a-0", "node-a-1")
CONSULTS = 4  # at most, until both workers hold one (placement takes the one with fewer)


@pytest.fixture
async def deployment(
    tmp_path: Path, cluster_database: str, redis_url: str, keys: ClusterKeys
) -> AsyncIterator[tuple[TriadServer, Nginx, str]]:
    """node-a behind nginx; also the metrics token the workers take."""
    nginx.require()
    proxy = Nginx(tmp_path)
    token = secrets.token_urlsafe(32)
    dead = held_ports(2)  # bound, never listening: node-b is down
    try:
        async with (
            two_worker_node(
                tmp_path,
                cluster_database,
                redis_url,
                keys,
                TRIAD_MODE="production",
                TRIAD_PUBLIC_BASE_URL=proxy.https_url,
                TRIAD_WORKER_PUBLIC_URL=f"{proxy.https_url}/w/{{worker}}",
                TRIAD_METRICS_TOKEN=token,
                TRIAD_DRAIN_SECONDS="0",
            ) as server,
            proxy.serving(
                dict(
                    zip(
                        NODE_A + NODE_B,
                        [url.removeprefix("http://") for url in server.worker_urls]
                        + [f"127.0.0.1:{sock.getsockname()[1]}" for sock in dead],
                        strict=True,
                    )
                )
            ),
        ):
            yield server, proxy, token
    finally:
        for sock in dead:
            sock.close()


@pytest.fixture
async def https(deployment: tuple[TriadServer, Nginx, str]) -> AsyncIterator[aiohttp.ClientSession]:
    """A client trusting only the test certificate."""
    _, proxy, _ = deployment
    connector = aiohttp.TCPConnector(ssl=proxy.ssl_context())
    async with aiohttp.ClientSession(connector=connector) as http:
        yield http


# Two worker starts (a second of CPU each, more on two busy cores), nginx, joins, a stop.
@pytest.mark.timeout(120)
async def test_rooms_join_at_the_named_worker_through_the_proxy_over_both_transports(
    deployment: tuple[TriadServer, Nginx, str], https: aiohttp.ClientSession
) -> None:
    server, proxy, _ = deployment
    for _ in range(2 * (len(NODE_A) + len(NODE_B))):  # round robin passes node-b's twice
        async with https.get(f"{proxy.https_url}/healthz") as answer:
            assert answer.status == 200, await answer.text()
            # Triad's own HSTS (production), once: nginx adds none.
            assert answer.headers.getall("Strict-Transport-Security") == [
                "max-age=31536000; includeSubDomains"
            ]

    placed: dict[str, ConsultSeats] = {}
    for _ in range(CONSULTS):
        consult = await server.new_consult(via=proxy.https_url, http=https)
        worker = await session_worker(server, consult, via=proxy.https_url, http=https)
        assert worker["url"] == f"{proxy.https_url}/w/{worker['id']}"
        placed.setdefault(worker["id"], consult)
        if len(placed) == len(WORKERS):
            break
    assert sorted(placed) == list(WORKERS)

    clients: list[RoomClient] = []
    try:
        for worker_id, consult in placed.items():
            for role, transport in (("therapist", "websocket"), ("client", "polling")):
                room = RoomClient(
                    f"{proxy.https_url}/w/{worker_id}",
                    consult.seat(role).token,
                    f"{role} over {transport} at {worker_id}",
                    transports=(transport,),
                    http=https,
                    headers={"Origin": proxy.https_url},  # a browser's, checked by Socket.IO
                )
                clients.append(room)
                await room.connect()
                assert room.sio.transport() == transport
                # Any other worker would answer `wrong_worker`: the proxy reached the named one.
                ack = await room.call("join")
                assert ack["ok"] is True, (room.label, ack)
                assert ack["state"]["you"]["role"] == role
    finally:
        for room in clients:
            await room.close()

    log = proxy.access_log.read_text()
    for worker_id in WORKERS:
        assert f"/w/{worker_id}/socket.io/" in log
    assert "?" not in log  # Engine.IO's session ids stay out of the log
    for consult in placed.values():
        assert not any(seat.token in log for seat in consult.seats)


@pytest.mark.timeout(120)
async def test_a_dead_node_is_skipped_metrics_http_and_unknown_workers_refused_http2_offered(
    deployment: tuple[TriadServer, Nginx, str], https: aiohttp.ClientSession
) -> None:
    server, proxy, token = deployment
    # The first requests through this nginx: round robin hands some to node-b, whose refused
    # connections go on to node-a, POST too (nothing was sent). Triad answers every one.
    platform = {"Authorization": f"Bearer {server.api_key}"}
    for _ in range(len(NODE_A) + len(NODE_B)):
        url = f"{proxy.https_url}/api/v1/consults/c_NoSuchConsult00/end"
        async with https.post(url, headers=platform) as answer:
            assert answer.status == 404, await answer.text()
            assert (await answer.json())["code"] == "consult_not_found"
    refused = [line for line in proxy.log_text().splitlines() if "connect() failed" in line]
    assert any('request: "POST ' in line for line in refused), refused

    bearer = {"Authorization": f"Bearer {token}"}
    async with https.get(f"{server.worker_urls[0]}/metrics", headers=bearer) as direct:
        assert direct.status == 200  # the token is right: only the proxy refuses
    for path in ("/metrics", "//metrics", "/%6detrics", "/metrics?format=text"):
        url = URL(f"{proxy.https_url}{path}", encoded=True)  # sent as written
        async with https.get(url, headers=bearer) as answer:
            assert answer.status == 403, path
            assert "triad_" not in await answer.text()

    for path in ("/w/node-z-0/socket.io/", "/socket.io/"):
        async with https.get(f"{proxy.https_url}{path}?EIO=4&transport=polling") as answer:
            assert answer.status == 404, path

    async with https.get(f"{proxy.http_url}/c/c_x?a=1", allow_redirects=False) as answer:
        assert answer.status == 301
        assert answer.headers["Location"] == f"{proxy.https_url}/c/c_x?a=1"
    async with https.get(f"{proxy.http_url}/api/v1/consults", allow_redirects=False) as answer:
        assert answer.status == 403  # a platform's key must not be followed to https

    context = proxy.ssl_context()
    context.set_alpn_protocols(["h2", "http/1.1"])
    _, writer = await asyncio.open_connection("127.0.0.1", proxy.https_port, ssl=context)
    try:
        tls: ssl.SSLObject = writer.get_extra_info("ssl_object")
        assert tls.selected_alpn_protocol() == "h2"
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    finally:
        writer.transport.abort()  # the server's HTTP/2 preface is not read
