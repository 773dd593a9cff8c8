"""A consult ends by itself only for a reason a clinician would accept: empty after the hosts
were in it, or past its time limit; never because a client opened the link early."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pycrdt
import pytest

from server.api.context import SERVICES
from server.app import SETTINGS, keyring_for, utc_now
from server.auth.roles import Role
from server.ids import ConsultId, ParticipantId
from server.notes.service import NotesService
from tests.apiclient import Api
from tests.conftest import PlatformKey, consult_body
from tests.roomclient import RoomClient
from tests.rooms.conftest import People
from tests.rooms.notesclient import NotesClient
from tests.rooms.test_lifecycle import consult_status
from tests.rooms.test_lobby_and_roles import audit_actions
from tests.waiting import wait_for


@pytest.mark.room_settings(reconnect_grace_seconds=0.1, empty_room_grace_seconds=0.2)
async def test_a_client_who_opens_the_link_early_and_leaves_does_not_end_the_consult(
    people: People, api: Api, platform: PlatformKey, client: Any
) -> None:
    consult_id = people.consult["id"]
    rooms = client.app[SERVICES].rooms
    early = await people.connect("client")
    assert (await early.join())["you"]["place"] == "lobby"
    await early.close()  # the tab is closed: no `leave`
    # The seat grace and the (shortened) empty-room grace pass: the room is dropped from
    # memory, and that is all.
    await wait_for(lambda: rooms.get(consult_id) is None, 10, "the idle room to be unloaded")
    assert await consult_status(api, platform, consult_id) == "scheduled"
    actions = [e["action"] for e in await audit_actions(api, platform, consult_id)]
    assert "consult.ended" not in actions
    # The consult goes on as planned when the hosts come.
    therapist = await people.joined("therapist")
    assert await consult_status(api, platform, consult_id) == "live"
    back = await people.connect("client")
    assert (await back.join())["you"]["place"] == "lobby"
    assert not therapist.disconnected


@pytest.mark.room_settings(reconnect_grace_seconds=0.1, empty_room_grace_seconds=0.2)
async def test_a_client_who_leaves_with_the_lobby_open_does_not_end_the_consult(
    people: People, api: Api, platform: PlatformKey, client: Any
) -> None:
    """Same with an explicit `leave`: the consult is not ended, and it is still joinable."""
    consult_id = people.consult["id"]
    early = await people.joined("client")
    assert await early.call("leave") == {"ok": True}
    await wait_for(lambda: client.app[SERVICES].rooms.get(consult_id) is None, 10, "unload")
    assert await consult_status(api, platform, consult_id) == "scheduled"


@pytest.mark.room_settings(consult_max_seconds=0.5)
async def test_an_unscheduled_consult_ends_at_the_maximum_after_the_first_host(
    people: People, api: Api, platform: PlatformKey
) -> None:
    therapist = await people.joined("therapist")
    ended = await therapist.wait_event("ended")
    assert ended["ended_by"] == "system:time-limit"
    assert await consult_status(api, platform, people.consult["id"]) == "ended"


@pytest.mark.room_settings(consult_overrun_seconds=0.3, consult_max_seconds=3600)
async def test_a_scheduled_consult_ends_its_overrun_after_the_scheduled_end(
    api: Api, platform: PlatformKey, base_url: str
) -> None:
    start = datetime.now(UTC)
    body = consult_body(
        scheduled_start=start.isoformat(),
        scheduled_end=(start + timedelta(seconds=0.5)).isoformat(),
    )
    created = await api.call("POST", "/api/v1/consults", bearer=platform.secret, json_body=body)
    assert created.status == 201, created.body
    token = next(p for p in created.body["participants"] if p["role"] == "therapist")["join"]
    therapist = RoomClient(base_url, token["token"], "therapist")
    try:
        await therapist.connect()
        await therapist.join()
        ended = await therapist.wait_event("ended")
        assert ended["ended_by"] == "system:time-limit"
        assert await consult_status(api, platform, created.body["id"]) == "ended"
    finally:
        await therapist.close()


@pytest.mark.room_settings(reconnect_grace_seconds=0.1, empty_room_grace_seconds=0.2)
async def test_an_unloaded_room_takes_its_notes_out_of_memory_with_it(
    base_url: str, api: Api, platform: PlatformKey, client: Any
) -> None:
    """An auto-admitted client alone writes a goal and leaves; the room is unloaded. Another
    worker may hold the consult next and write to its notes: when the consult comes back here,
    this worker serves the database's notes, not the copy it held before."""
    created = await api.call(
        "POST", "/api/v1/consults", bearer=platform.secret, json_body=consult_body(auto_admit=True)
    )
    assert created.status == 201, created.body
    people = People(base_url, created.body, api)
    consult_id = ConsultId(created.body["id"])
    services = client.app[SERVICES]
    try:
        await people.consent()
        alone = await people.connect("client")
        assert (await alone.join())["you"]["place"] == "room"
        notes = NotesClient(alone)
        assert (await notes.sync("client"))["ok"]
        assert (await notes.edit("client", goal("sleep before midnight")))["ok"]
        await alone.close()
        await wait_for(lambda: services.rooms.get(consult_id) is None, 10, "the room unloaded")
        # Another worker's notes service over the same database writes the next goal.
        settings = client.app[SETTINGS]
        elsewhere = NotesService(
            services.db,
            keyring_for(settings),
            utc_now,
            max_update_bytes=settings.notes_max_update_bytes,
            snapshot_every=settings.notes_snapshot_every,
        )
        try:
            copy: pycrdt.Doc[Any] = pycrdt.Doc()
            reply = await elsewhere.sync(consult_id, Role.CLIENT, "client", b"\x00")
            copy.apply_update(reply.update)
            before = copy.get_state()
            goal("walk every day")(copy)
            await elsewhere.apply(
                consult_id,
                ParticipantId(people.id("client")),
                Role.CLIENT,
                "client",
                copy.get_update(before),
            )
        finally:
            await elsewhere.close()
        back = await people.connect("client")
        assert (await back.join())["you"]["place"] == "room"
        fresh = NotesClient(back)
        assert (await fresh.sync("client"))["ok"]
        goals = fresh.doc("client").get("goals", type=pycrdt.Array).to_py()
        assert goals == ["sleep before midnight", "walk every day"]
    finally:
        await people.close()


def goal(text: str) -> Any:
    def change(doc: pycrdt.Doc[Any]) -> None:
        doc.get("goals", type=pycrdt.Array).append(text)

    return change
