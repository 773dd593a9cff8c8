"""Remote ICE candidates over the real socket: the server sends checks only to addresses it may
reach (loopback here, because the test server's own ICE host address is loopback), and takes
only so many per peer connection. Each refusal is coded and leaves the ICE agent as it was."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from server.api.context import SERVICES
from server.rooms.media import Sfu
from tests.databases import sqlite_copy
from tests.roomclient import RoomClient
from tests.rooms.conftest import People


@pytest.fixture
def database_url(tmp_path: Path, sqlite_template_path: Path) -> str:
    """SQLite only: nothing here depends on the database backend."""
    return sqlite_copy(sqlite_template_path, tmp_path)


def line(address: str, port: int = 9) -> dict[str, Any]:
    return {"candidate": f"candidate:1 1 udp 2130706431 {address} {port} typ host", "sdpMid": "0"}


def remote_candidates(client: Any, people: People, role: str) -> tuple[tuple[str, int], ...]:
    room = client.app[SERVICES].rooms.get(people.consult["id"])
    assert room is not None
    return cast(Sfu, room.media).remote_candidates(people.id(role))


async def in_media(people: People) -> RoomClient:
    therapist = await people.joined("therapist")
    await therapist.wait_event("signal", lambda s: s["pc"] == 0)
    return therapist


REFUSED_ADDRESSES = [
    pytest.param("10.0.0.1", id="private-10"),
    pytest.param("172.16.5.4", id="private-172"),
    pytest.param("192.168.1.1", id="private-192"),
    pytest.param("100.64.0.1", id="cgnat"),
    pytest.param("fd00::1", id="ula"),
    pytest.param("::ffff:10.0.0.1", id="v4-mapped-private"),
    pytest.param("169.254.169.254", id="cloud-metadata-link-local"),
    pytest.param("fe80::1", id="link-local-v6"),
    pytest.param("224.0.0.251", id="multicast"),
    pytest.param("ff02::1", id="multicast-v6"),
    pytest.param("0.0.0.0", id="unspecified"),  # noqa: S104 - the hostile input itself
    pytest.param("::", id="unspecified-v6"),
    pytest.param("255.255.255.255", id="broadcast"),
    pytest.param("240.0.0.1", id="reserved"),
    pytest.param("203.0.113.9", id="documentation"),
    pytest.param("d7c5a4e1-1d2c-4e0f-9f4c-0123456789ab.local", id="mdns"),
]


@pytest.mark.parametrize("address", REFUSED_ADDRESSES)
async def test_candidates_naming_addresses_the_server_must_not_probe_are_refused(
    people: People, client: Any, address: str
) -> None:
    therapist = await in_media(people)
    before = remote_candidates(client, people, "therapist")
    ack = await therapist.call("candidate", {"candidate": line(address), "pc": 0})
    assert ack["error"]["code"] == "candidate_address_refused", ack
    assert remote_candidates(client, people, "therapist") == before


async def test_loopback_is_taken_when_the_server_itself_is_on_loopback(
    people: People, client: Any
) -> None:
    """The test server's ICE host address is 127.0.0.1: loopback is the server's own kind."""
    therapist = await in_media(people)
    ack = await therapist.call("candidate", {"candidate": line("127.0.0.1"), "pc": 0})
    assert ack == {"ok": True}
    assert ("127.0.0.1", 9) in remote_candidates(client, people, "therapist")


@pytest.mark.room_settings(ice_allow_private_candidates=True)
async def test_private_candidates_are_taken_when_the_setting_allows_them(
    people: People, client: Any
) -> None:
    therapist = await in_media(people)
    assert await therapist.call("candidate", {"candidate": line("10.0.0.1"), "pc": 0}) == {
        "ok": True
    }
    assert ("10.0.0.1", 9) in remote_candidates(client, people, "therapist")
    # Link-local stays refused whatever the private setting says.
    ack = await therapist.call("candidate", {"candidate": line("169.254.1.1"), "pc": 0})
    assert ack["error"]["code"] == "candidate_address_refused"


@pytest.mark.room_settings(ice_max_remote_candidates=3)
async def test_a_peer_connection_takes_only_so_many_candidates(people: People, client: Any) -> None:
    therapist = await in_media(people)
    for port in (9001, 9002, 9003):
        ack = await therapist.call("candidate", {"candidate": line("127.0.0.1", port), "pc": 0})
        assert ack == {"ok": True}
    taken = remote_candidates(client, people, "therapist")
    assert len(taken) == 3
    ack = await therapist.call("candidate", {"candidate": line("127.0.0.1", 9004), "pc": 0})
    assert ack["error"]["code"] == "candidates_exhausted"
    assert remote_candidates(client, people, "therapist") == taken
    # A new peer connection has a budget of its own.
    assert (await therapist.call("media-restart", {"pc": 0}))["pc"] == 1
    await therapist.wait_event("signal", lambda s: s["pc"] == 1)
    ack = await therapist.call("candidate", {"candidate": line("127.0.0.1", 9005), "pc": 1})
    assert ack == {"ok": True}
    assert remote_candidates(client, people, "therapist") == (("127.0.0.1", 9005),)
