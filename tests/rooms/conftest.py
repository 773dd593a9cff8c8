"""Consult rooms over the real Socket.IO server: the app on a loopback test server, and the
three participants of a consult as python-socketio clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server.settings import Settings
from tests.apiclient import Api
from tests.conftest import make_settings, participant
from tests.roomclient import RoomClient
from tests.rooms.mediapeople import MediaParticipant, close_all


@pytest.fixture
def settings(request: pytest.FixtureRequest, tmp_path: Path, database_url: str) -> Settings:
    """`@pytest.mark.room_settings(reconnect_grace_seconds=...)` overrides settings per test."""
    marker = request.node.get_closest_marker("room_settings")
    return make_settings(tmp_path, database_url, **(marker.kwargs if marker else {}))


def scopes(session: str | None, sharing: str | None) -> dict[str, str | None]:
    """A consent view's scopes (`consent-changed`, the join state's `consent`): each
    `given`, `withdrawn` or None (never given)."""
    return {"session": session, "information_sharing": sharing}


class People:
    """The consult's participants as socket clients, closed after the test."""

    def __init__(self, base_url: str, consult: dict[str, Any], api: Api) -> None:
        self.base_url = base_url
        self.consult = consult
        self.api = api
        self._clients: list[RoomClient] = []

    def token(self, role: str) -> str:
        token: str = participant(self.consult, role)["join"]["token"]
        return token

    def id(self, role: str) -> str:
        pid: str = participant(self.consult, role)["id"]
        return pid

    def client(self, role: str, token: str | None = None) -> RoomClient:
        room_client = RoomClient(self.base_url, token or self.token(role), role)
        self._clients.append(room_client)
        return room_client

    async def connect(self, role: str, token: str | None = None) -> RoomClient:
        room_client = self.client(role, token)
        await room_client.connect()
        return room_client

    async def new_link(self, role: str, secret: str) -> str:
        """A fresh join token for `role`, minted by the platform (`POST .../tokens`)."""
        path = f"/api/v1/consults/{self.consult['id']}/participants/{self.id(role)}/tokens"
        answer = await self.api.call("POST", path, bearer=secret)
        assert answer.status == 201, answer.body
        token: str = answer.body["token"]
        return token

    async def joined(self, role: str) -> RoomClient:
        room_client = await self.connect(role)
        await room_client.join()
        return room_client

    def seats(self, role: str) -> bool:
        return any(p["role"] == role for p in self.consult["participants"])

    async def consent(self, role: str | None = None) -> dict[str, Any]:
        """Consent to the session and to sharing, as the join page does: by the client, or for
        a minor whose consult seats a guardian, by the guardian (whose consent admits them)."""
        role = role or ("guardian" if self.seats("guardian") else "client")
        path = f"/api/v1/consults/{self.consult['id']}/session/consent"
        wording = await self.api.call("GET", path, bearer=self.token(role))
        assert wording.status == 200, wording.body
        answer = await self.api.call(
            "POST",
            path,
            bearer=self.token(role),
            json_body={
                "wording_version": wording.body["wording"]["version"],
                "scopes": ["session", "information_sharing"],
            },
        )
        assert answer.status == 201, answer.body
        assert answer.body["complete"], answer.body
        body: dict[str, Any] = answer.body
        return body

    async def all_in_room(self) -> tuple[RoomClient, RoomClient, RoomClient]:
        """Therapist, psychiatrist and client joined, the client (consented for) admitted by
        the therapist."""
        await self.consent()
        therapist = await self.joined("therapist")
        psychiatrist = await self.joined("psychiatrist")
        client = await self.joined("client")
        ack = await therapist.call("admit", {"participant_id": self.id("client")})
        assert ack["ok"], ack
        await client.wait_event("admitted")
        return therapist, psychiatrist, client

    async def close(self) -> None:
        for room_client in self._clients:
            await room_client.close()


@pytest.fixture
def base_url(client: TestClient[Any, Any]) -> str:
    return str(client.make_url("")).rstrip("/")


@pytest.fixture
async def people(base_url: str, consult: dict[str, Any], api: Api) -> AsyncIterator[People]:
    group = People(base_url, consult, api)
    yield group
    await group.close()


@pytest.fixture
async def seated_people(
    base_url: str, seated_consult: dict[str, Any], api: Api
) -> AsyncIterator[People]:
    """The participants of a consult with a guardian and an interpreter too."""
    group = People(base_url, seated_consult, api)
    yield group
    await group.close()


@pytest.fixture
async def media_people(people: People) -> AsyncIterator[dict[str, MediaParticipant]]:
    """Participants with media (`mediapeople.enter`), closed before their sockets are."""
    joined: dict[str, MediaParticipant] = {}
    yield joined
    await close_all(joined)


@pytest.fixture
async def seated_media_people(
    seated_people: People,
) -> AsyncIterator[dict[str, MediaParticipant]]:
    """`media_people` for the consult with a guardian and an interpreter."""
    joined: dict[str, MediaParticipant] = {}
    yield joined
    await close_all(joined)
