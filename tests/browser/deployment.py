"""The server a browser test runs against, deployed each of two ways (every browser test runs on
both; `deployed` is the one place that builds either):

- `one-worker`: one app on SQLite, as `triad serve` runs without Redis;
- `two-workers`: a node of two workers (`tests/cluster/inprocess.py`: two apps on their own
  loopback ports, one PostgreSQL database, one Redis), with the paths between them in use.
  Pages load from worker 0's public URL (the join links name it). The consults the tests
  create are placed on the workers in turn, the first on worker 1: a page's socket then
  crosses to the worker it was not loaded from (and its REST calls land on the worker that
  does not hold the consult), while a later consult's stays home. The tests' own REST calls go
  to each worker in turn, as a load balancer spreads them: a change that lands away from the
  consult's room reaches it as a cross-worker command. Needs PostgreSQL and Redis (skipped
  without them, failed when the run requires every service)."""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import BaseTestServer, TestClient, TestServer, get_port_socket
from redis.asyncio import Redis

from server.api.routes import OPENAPI_KEY
from server.app import create_app
from server.cluster.entry import ClusterKeys
from server.cluster.node import placement_ttl
from server.ids import ConsultId
from tests.apiclient import Answer, Api
from tests.cluster.inprocess import NodeWorker, node_workers
from tests.conftest import deployment_keys, make_settings, require_service
from tests.databases import REDIS_ENV, PostgresFactory, sqlite_copy

ONE_WORKER = "one-worker"
TWO_WORKERS = "two-workers"
DEPLOYMENTS = [ONE_WORKER, pytest.param(TWO_WORKERS, marks=pytest.mark.postgres)]

# Module teardown has no per-test timeout: a stuck shutdown must fail the run, not hang it.
CLOSE_SECONDS = 60


@dataclass
class Placer:
    """Places each consult the tests create on the next worker in turn (two workers: the first
    on worker 1), as the placement would have spread a busy node's, before anything asks
    where it lives. The placement key is the one `server/cluster/placement.py` reads."""

    redis: Redis
    keys: ClusterKeys
    workers: list[NodeWorker]
    ttl_ms: int
    turn: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def place(self, consult_id: str) -> None:
        worker = self.workers[next(self.turn) % len(self.workers)]
        await self.redis.set(self.keys.placement(ConsultId(consult_id)), worker.id, px=self.ttl_ms)


class DeploymentApi(Api):
    """The REST API as the tests reach a deployment: each call at the next worker in turn (its
    own `Api`, checked against the OpenAPI document the same way), and each consult it creates
    placed (`Placer`) as soon as it exists."""

    def __init__(self, workers: list[NodeWorker], placer: Placer | None) -> None:
        # The first worker's client and document stand for the deployment's (`Api`'s fields);
        # the calls themselves go through each worker's own `Api`.
        self.client, self.openapi = workers[0].api.client, workers[0].api.openapi
        self._next = itertools.cycle(workers)
        self._placer = placer

    async def call(self, method: str, path: str, **options: Any) -> Answer:
        answer = await next(self._next).api.call(method, path, **options)
        created = method == "POST" and path == "/api/v1/consults" and answer.status == 201
        if created and self._placer is not None:
            await self._placer.place(answer.body["id"])
        return answer


@dataclass
class Deployment:
    """A started deployment: its workers (one or two), and the REST API as the tests reach it."""

    kind: str
    workers: list[NodeWorker]
    api: DeploymentApi

    @property
    def origin(self) -> str:
        """Where pages are loaded from: worker 0's public URL."""
        return self.workers[0].url

    @property
    def app(self) -> web.Application:
        """Worker 0's app (the only one on one worker): its services share the database."""
        app: web.Application = self.workers[0].client.app
        return app


@asynccontextmanager
async def deployed(
    kind: str,
    directory: Path,
    *,
    sqlite_template: Path,
    postgres: Callable[[], PostgresFactory],
    **settings: Any,
) -> AsyncIterator[Deployment]:
    """`kind` started with `settings` on every worker (stopped on the way out, before the
    deployment's Redis keys and database go). `postgres`: the session's factory, asked only
    for two workers."""
    async with AsyncExitStack() as stack:

        async def start(server: BaseTestServer) -> TestClient[Any, Any]:
            client: TestClient[Any, Any] = TestClient(server)
            await client.start_server()
            stack.push_async_callback(lambda: asyncio.wait_for(client.close(), CLOSE_SECONDS))
            return client

        if kind == ONE_WORKER:
            # Bound before the app is built, so the app names its own origin.
            sock = stack.enter_context(get_port_socket("127.0.0.1", 0, socket.AF_INET))
            port = sock.getsockname()[1]
            origin = f"http://127.0.0.1:{port}"
            app = create_app(
                make_settings(
                    directory,
                    sqlite_copy(sqlite_template, directory),
                    public_base_url=origin,
                    **settings,
                )
            )
            client = await start(
                TestServer(app, host="127.0.0.1", port=port, socket_factory=lambda *_: sock)
            )
            workers = [NodeWorker(client, Api(client, app[OPENAPI_KEY].model_dump()), origin)]
            yield Deployment(kind, workers, DeploymentApi(workers, None))
            return

        redis_url = require_service(REDIS_ENV)
        database_url = await stack.enter_async_context(postgres().database(migrated=True))
        keys = await stack.enter_async_context(deployment_keys(redis_url))
        redis = await stack.enter_async_context(Redis.from_url(redis_url))
        workers = await node_workers(start, directory, database_url, redis_url, keys, **settings)
        ttl_ms = int(placement_ttl(make_settings(directory, database_url, **settings)) * 1000)
        placer = Placer(redis, keys, workers, ttl_ms)
        yield Deployment(kind, workers, DeploymentApi(workers, placer))
