"""The hostile corpus's stage: one real app on a loopback port per test module, its database
(SQLite; the REST module also PostgreSQL), a platform with an API key and one consult whose
therapist and psychiatrist are in the room and whose client waits in the lobby, each on the
real python-socketio client.

Cases share the stage because a refused input must change nothing: each case snapshots the
tables before and after (`tests/databases.py`) and proves the app still serves with a valid
request, so a case that did change something fails itself, not the next one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from server.api.context import SERVICES
from server.api.routes import OPENAPI_KEY
from server.app import create_app
from server.services import Services
from server.settings import Settings
from tests.apiclient import Answer, Api
from tests.conftest import PlatformKey, consult_body, make_settings, new_platform, participant
from tests.databases import PostgresFactory, snapshot, sqlite_copy
from tests.roomclient import RoomClient

CONSULTS = "/api/v1/consults"
# The corpus sends hundreds of requests and events in seconds: its own budgets are wide, and
# the rate-limit cases build their own app with narrow ones.
WIDE_LIMITS: dict[str, Any] = {
    "api_key_requests_per_second": 100_000,
    "api_key_request_burst": 1_000_000,
    "join_token_requests_per_second": 100_000,
    "join_token_request_burst": 1_000_000,
    "socket_events_per_second": 10_000,
    "socket_event_burst": 100_000,
    "socket_joins_per_second": 100,
    "socket_join_burst": 100,
}


@dataclass
class Stage:
    settings: Settings
    client: TestClient[Any, Any]
    api: Api
    platform: PlatformKey
    consult: dict[str, Any]
    base_url: str
    sockets: dict[str, RoomClient]

    @property
    def services(self) -> Services:
        return self.client.app[SERVICES]

    @property
    def consult_path(self) -> str:
        return f"{CONSULTS}/{self.consult['id']}"

    def token(self, role: str) -> str:
        token: str = participant(self.consult, role)["join"]["token"]
        return token

    def pid(self, role: str) -> str:
        pid: str = participant(self.consult, role)["id"]
        return pid

    async def snapshot(self) -> dict[str, object]:
        return await snapshot(self.services.db)

    async def still_serves(self) -> None:
        """A valid platform call and a valid participant call both still succeed."""
        answer = await self.api.call("GET", self.consult_path, bearer=self.platform.secret)
        assert answer.status == 200, answer.body
        session = await self.api.call(
            "GET", self.consult_path + "/session", bearer=self.token("therapist")
        )
        assert session.status == 200, session.body

    async def socket_still_serves(self) -> None:
        """The therapist's socket still answers, and the psychiatrist hears of it."""
        therapist, psychiatrist = self.sockets["therapist"], self.sockets["psychiatrist"]
        assert not therapist.disconnected
        assert not psychiatrist.disconnected
        mark = len(psychiatrist.events)
        ack = await therapist.call("media-state", {"audio": True, "video": True})
        assert ack["ok"], ack
        await psychiatrist.wait_event(
            "peer-updated",
            lambda d: d["participant"]["participant_id"] == self.pid("therapist"),
            after=mark,
        )

    def room_client(self, role: str, token: str | None = None) -> RoomClient:
        return RoomClient(self.base_url, token or self.token(role), role)


def refused(answer: Answer, status: int, code: str) -> None:
    """A problem document with this status and code (and the request path as `instance`)."""
    assert (answer.status, answer.code) == (status, code), (answer.status, answer.body)
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    assert answer.body["type"] == f"urn:triad:error:{code}"


def ack_code(ack: Any) -> str:
    assert isinstance(ack, dict), ack
    assert ack.get("ok") is False, ack
    found: str = ack["error"]["code"]
    return found


@pytest.fixture(scope="module", params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stage_database(
    backend: str, tmp_path_factory: pytest.TempPathFactory, sqlite_template_path: Path
) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield sqlite_copy(sqlite_template_path, tmp_path_factory.mktemp("hostile"))
        return
    from tests.conftest import require_service
    from tests.databases import POSTGRES_ENV

    factory = PostgresFactory(require_service(POSTGRES_ENV))
    factory.create_template()
    try:
        async with factory.database(migrated=True) as url:
            yield url
    finally:
        factory.drop_template()


async def open_stage(
    tmp: Path, database_url: str, *, in_room: bool, **overrides: Any
) -> tuple[Stage, TestClient[Any, Any]]:
    settings = make_settings(tmp, database_url, **{**WIDE_LIMITS, **overrides})
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(settings), host="127.0.0.1"))
    await client.start_server()
    api = Api(client, client.app[OPENAPI_KEY].model_dump())
    platform = await new_platform(client.app[SERVICES], "Acme Health")
    created = await api.call("POST", CONSULTS, bearer=platform.secret, json_body=consult_body())
    assert created.status == 201, created.body
    stage = Stage(
        settings=settings,
        client=client,
        api=api,
        platform=platform,
        consult=created.body,
        base_url=str(client.make_url("")).rstrip("/"),
        sockets={},
    )
    if in_room:
        for role in ("therapist", "psychiatrist", "client"):
            socket = stage.room_client(role)
            await socket.connect()
            await socket.join()  # the client waits in the lobby: nobody admits them
            stage.sockets[role] = socket
        await stage.sockets["therapist"].wait_event("signal")
    return stage, client


async def close_stage(stage: Stage) -> None:
    for socket in stage.sockets.values():
        await socket.close()
    await stage.client.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stage(
    stage_database: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stage]:
    built, _client = await open_stage(
        tmp_path_factory.mktemp("stage"), stage_database, in_room=True
    )
    yield built
    await close_stage(built)
