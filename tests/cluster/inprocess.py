"""A node of several workers in the test's own process: one app per worker, each on its own
consecutive loopback port, sharing one PostgreSQL database and one Redis deployment."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from server.api.context import CLUSTER
from server.api.routes import OPENAPI_KEY
from server.app import create_app
from server.cluster.entry import ClusterKeys
from tests.apiclient import Api
from tests.conftest import make_settings
from tests.ports import held_ports
from tests.waiting import wait_for


@dataclass
class NodeWorker:
    client: TestClient[Any, Any]
    api: Api
    url: str

    @property
    def id(self) -> str:
        return self.member.registry.me.worker_id

    @property
    def member(self) -> Any:
        member = self.client.app[CLUSTER]
        assert member is not None
        return member


async def node_workers(
    aiohttp_client: Any,
    tmp_path: Path,
    database_url: str,
    redis_url: str,
    keys: ClusterKeys,
    *,
    workers: int = 2,
    **settings: Any,
) -> list[NodeWorker]:
    """Started (aiohttp_client stops them after the test), and each listing all the others
    (so each allows the others' pages: CORS and CSP follow the registry). On the server's
    heartbeat defaults (1 s, lapsing after 5 s): these workers share the test's event loop,
    and with the 0.2 s / 2 s beat of the tests of workers coming and going (separate
    processes) a loop stalling 1.5 s on a loaded machine fenced both (seen in CI)."""
    sockets = held_ports(workers)
    port = sockets[0].getsockname()[1]
    started = []
    for index, sock in enumerate(sockets):
        app = create_app(
            make_settings(
                tmp_path,
                database_url,
                redis_url=redis_url,
                workers=workers,
                node_id="node-a",
                worker_index=index,
                port=port,
                public_base_url=f"http://127.0.0.1:{port}",
                cluster_name=keys.deployment,
                **settings,
            )
        )
        server = TestServer(
            app, host="127.0.0.1", port=port + index, socket_factory=lambda *_, s=sock: s
        )
        try:
            client: TestClient[Any, Any] = await aiohttp_client(server)
        except BaseException:
            for unused in sockets[index:]:
                unused.close()
            raise
        api = Api(client, app[OPENAPI_KEY].model_dump())
        started.append(NodeWorker(client, api, f"http://127.0.0.1:{port + index}"))
    urls = {w.url for w in started}
    for worker in started:
        await wait_for(
            lambda w=worker: urls <= w.member.registry.origins, 30, "every worker listed"
        )
    return started
