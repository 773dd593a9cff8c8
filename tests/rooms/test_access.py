"""Authorization holds for live sockets: token revocation, API-key revocation, removal and
expiry close the sockets they concern within a second, and every `join` re-checks the token."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import socketio
from sqlalchemy import update

from server.api.context import SERVICES
from server.auth import tokens
from server.auth.roles import Role
from server.consults.model import Actor
from server.db.models import Participant
from server.ids import ConsultId, KeyId, ParticipantId, TokenId
from server.settings import Settings
from tests.apiclient import Api
from tests.conftest import TEST_KEY, PlatformKey, new_platform
from tests.roomclient import RoomClient
from tests.rooms.conftest import People
from tests.rooms.test_lobby_and_roles import audit_actions

# What the issue promises: a revoked socket is told and gone within a second.
WITHIN = 1.0
# The sweep is the safety net under the events (every TRIAD_SOCKET_ACCESS_RECHECK_SECONDS), not
# the one-second path: its tests wait for a few sweeps, since a sweep on a busy machine can be
# late by more than its 0.3 s period.
SWEEP_DEADLINE = 5.0


async def closed_with(room_client: RoomClient, code: str, within: float = WITHIN) -> None:
    """The socket was told `code` in an `error` event and then disconnected, in time."""
    error = await room_client.wait_event("error", within=within)
    assert error["code"] == code, error
    await room_client.wait_disconnected(within=within)


async def refused_at_connect(people: People, role: str, token: str) -> str:
    stranger = people.client(role, token)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await stranger.connect()
    code: str = stranger.connect_error["data"]["code"]
    return code


async def session_read(api: Api, people: People, token: str) -> tuple[int, str | None]:
    answer = await api.call("GET", f"/api/v1/consults/{people.consult['id']}/session", bearer=token)
    return answer.status, answer.code


async def test_revoking_tokens_closes_the_live_socket(
    people: People, api: Api, platform: PlatformKey
) -> None:
    therapist = await people.joined("therapist")
    psychiatrist = await people.joined("psychiatrist")
    mark = len(psychiatrist.events)
    path = f"/api/v1/consults/{people.consult['id']}/participants/{people.id('therapist')}/tokens"
    answer = await api.call("DELETE", path, bearer=platform.secret)
    assert answer.status == 200, answer.body

    await closed_with(therapist, "token_revoked")
    left = await psychiatrist.wait_event("peer-left", after=mark)
    assert left == {"participant_id": people.id("therapist"), "reason": "revoked"}
    # The link is dead for the room and for REST alike; the others carry on.
    assert await refused_at_connect(people, "therapist", people.token("therapist")) == (
        "token_revoked"
    )
    assert await session_read(api, people, people.token("therapist")) == (401, "token_revoked")
    assert (await psychiatrist.call("media-state", {"audio": False, "video": True}))["ok"]
    # A new link from the platform works at once.
    fresh = await people.connect("therapist", await people.new_link("therapist", platform.secret))
    assert (await fresh.join())["you"]["place"] == "room"


async def test_revoking_an_api_key_closes_the_sockets_whose_tokens_it_signed(
    people: People, client: Any, platform: PlatformKey
) -> None:
    services = client.app[SERVICES]
    # A second key of the same platform signs the therapist's link; the first signed the rest.
    second = await new_platform(services, "Acme Health")
    assert second.platform_id == platform.platform_id
    link = await people.new_link("therapist", second.secret)
    therapist = await people.connect("therapist", link)
    await therapist.join()
    psychiatrist = await people.joined("psychiatrist")

    # What `triad apikey revoke` calls.
    assert await services.keys.revoke(KeyId(second.key_id), Actor("operator", "test"))
    await closed_with(therapist, "token_invalid")
    assert await refused_at_connect(people, "therapist", link) == "token_invalid"
    await psychiatrist.wait_event(
        "peer-left", lambda d: d["participant_id"] == people.id("therapist")
    )
    assert not psychiatrist.disconnected
    assert (await psychiatrist.call("media-state", {"audio": True, "video": False}))["ok"]


async def test_removal_closes_every_socket_of_the_removed_and_their_rest_reads(
    people: People, api: Api, platform: PlatformKey
) -> None:
    therapist = await people.joined("therapist")
    psychiatrist = await people.joined("psychiatrist")
    # A second tab of the psychiatrist, connected but not joined, goes too.
    second_tab = await people.connect("psychiatrist")
    assert await session_read(api, people, people.token("psychiatrist")) == (200, None)

    assert (await therapist.call("remove", {"participant_id": people.id("psychiatrist")}))["ok"]
    await closed_with(psychiatrist, "removed")
    await closed_with(second_tab, "removed")
    assert await session_read(api, people, people.token("psychiatrist")) == (401, "token_revoked")
    assert await refused_at_connect(people, "psychiatrist", people.token("psychiatrist")) == (
        "token_revoked"
    )
    revoked = [
        e
        for e in await audit_actions(api, platform, people.consult["id"])
        if e["action"] == "tokens.revoked"
    ]
    assert len(revoked) == 1
    assert revoked[0]["actor_type"] == "participant"
    assert revoked[0]["actor_id"] == people.id("therapist")
    assert revoked[0]["details"] == {
        "participant_id": people.id("psychiatrist"),
        "reason": "removed",
    }


@pytest.mark.room_settings(token_leeway_seconds=0)
async def test_an_expiring_token_closes_its_socket(
    people: People, client: Any, platform: PlatformKey
) -> None:
    psychiatrist = await people.joined("psychiatrist")
    now = time.time()
    claims = tokens.JoinClaims(
        iss=KeyId(platform.key_id),
        sub=ParticipantId(people.id("therapist")),
        consult=ConsultId(people.consult["id"]),
        role=Role.THERAPIST,
        name="Sam Okafor",
        iat=now,
        nbf=now,
        # Long enough that the join lands before it on a loaded CI machine (joins have taken
        # 2 s there), short enough that the test still waits on the expiry, not a timeout.
        exp=now + 6,
        jti=TokenId("short-lived"),
    )
    short_lived = tokens.mint(claims, platform.secret)
    therapist = await people.connect("therapist", short_lived)
    await therapist.join()
    await closed_with(therapist, "token_expired", within=claims.exp - time.time() + WITHIN)
    assert await refused_at_connect(people, "therapist", short_lived) == "token_expired"
    left = await psychiatrist.wait_event(
        "peer-left", lambda d: d["participant_id"] == people.id("therapist")
    )
    assert left["reason"] == "expired"


async def test_join_rechecks_the_token_against_the_database(
    people: People, client: Any, api: Api
) -> None:
    """A revocation whose event never reached this socket (a Redis outage, or a socket that
    connected while it was being published) is caught at the next `join`."""
    therapist = await people.connect("therapist")
    services = client.app[SERVICES]
    async with services.db.sessions.begin() as session:  # the row only: no event published
        await session.execute(
            update(Participant)
            .where(Participant.id == people.id("therapist"))
            .values(tokens_revoked_at=datetime.now(UTC))
        )
    ack = await therapist.call("join")
    assert ack["error"]["code"] == "token_revoked"
    await therapist.wait_disconnected()
    assert services.rooms.get(people.consult["id"]) is None  # nothing was seated


async def run_cli(settings: Settings, *args: str, **env: str) -> str:
    """`python -m server ARGS` as its own process, on the test's database (never blocking the
    event loop the test server runs on)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TRIAD_")}
    environment.update(
        TRIAD_DATABASE_URL=str(settings.database_url),
        TRIAD_DATA_DIR=str(settings.data_dir),
        TRIAD_ENCRYPTION_KEYS=TEST_KEY,
        TRIAD_LOG_FORMAT="json",
        **env,
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        *args,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


@pytest.mark.room_settings(socket_access_recheck_seconds=0.3)
async def test_a_key_revoked_from_the_command_line_without_redis_is_caught_by_the_sweep(
    people: People, client: Any, settings: Settings
) -> None:
    """No Redis: the command line's process publishes to nobody; the periodic re-check of
    every socket closes the ones the key signed within one interval."""
    second = await new_platform(client.app[SERVICES], "Acme Health")
    therapist = await people.connect("therapist", await people.new_link("therapist", second.secret))
    await therapist.join()
    psychiatrist = await people.joined("psychiatrist")
    assert "revoked" in await run_cli(settings, "apikey", "revoke", second.key_id)
    await closed_with(therapist, "token_invalid", within=SWEEP_DEADLINE)
    assert not psychiatrist.disconnected


@pytest.mark.room_settings(socket_access_recheck_seconds=0.3)
async def test_a_revocation_whose_event_was_lost_is_caught_by_the_sweep(
    people: People, client: Any
) -> None:
    therapist = await people.joined("therapist")
    psychiatrist = await people.joined("psychiatrist")
    async with client.app[SERVICES].db.sessions.begin() as session:  # no event published
        await session.execute(
            update(Participant)
            .where(Participant.id == people.id("therapist"))
            .values(tokens_revoked_at=datetime.now(UTC))
        )
    await closed_with(therapist, "token_revoked", within=SWEEP_DEADLINE)
    assert not psychiatrist.disconnected
