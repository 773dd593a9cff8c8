"""Lobby, co-hosts and roles over the real Socket.IO server."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import socketio

from tests.apiclient import Api
from tests.conftest import PlatformKey, consult_body
from tests.roomclient import RoomClient
from tests.rooms.conftest import People, scopes
from tests.waiting import wait_for

CONSENT_CHANGES = {"consent.given", "consent.withdrawn", "assent.given", "assent.withdrawn"}


def place_of(state: dict[str, Any]) -> str:
    place: str = state["you"]["place"]
    return place


async def audit_actions(api: Api, platform: PlatformKey, consult_id: str) -> list[dict[str, Any]]:
    answer = await api.call("GET", f"/api/v1/consults/{consult_id}/audit", bearer=platform.secret)
    assert answer.status == 200, answer.body
    events: list[dict[str, Any]] = answer.body["events"]
    return events


async def test_hosts_enter_at_once_and_the_client_waits_until_admitted(
    people: People, api: Api, platform: PlatformKey
) -> None:
    therapist = await people.connect("therapist")
    assert place_of(await therapist.join()) == "room"
    await therapist.wait_event("signal", lambda s: s["type"] == "offer")

    client = await people.connect("client")
    state = await client.join()
    assert place_of(state) == "lobby"
    assert state["lobby"] == []  # only hosts see the lobby list
    waiting = await therapist.wait_event(
        "lobby", lambda d: [p["participant_id"] for p in d["waiting"]] == [people.id("client")]
    )
    assert waiting["waiting"][0]["role"] == "client"
    assert waiting["waiting"][0]["consent"] is False
    # An offer to a lobby participant would have been sent before the join's ack on the same
    # socket, so none here means none at all.
    assert client.received("signal") == []
    refused = await client.call("notes-sync", {"doc": "plan", "state_vector": b"\x00"})
    assert refused["error"]["code"] == "not_admitted"

    # No consent on record yet: a host cannot let the client in.
    refused = await therapist.call("admit", {"participant_id": people.id("client")})
    assert refused["error"]["code"] == "consent_required"
    assert client.received("admitted") == []
    await people.consent()
    changed = await therapist.wait_event("consent-changed")
    assert changed == {
        "complete": True,
        "sharing_withdrawn": False,
        "consenting_role": "client",
        "consent": scopes("given", "given"),
        "assent": None,
    }
    await therapist.wait_event("lobby", lambda d: d["waiting"] and d["waiting"][0]["consent"])

    assert await therapist.call("admit", {"participant_id": people.id("client")}) == {"ok": True}
    admitted = await client.wait_event("admitted")
    assert admitted["state"]["you"]["place"] == "room"
    offer = await client.wait_event("signal")
    assert offer["type"] == "offer"
    assert offer["pc"] == 0
    await therapist.wait_event("lobby", lambda d: d["waiting"] == [])

    consult_id = people.consult["id"]
    events = await audit_actions(api, platform, consult_id)
    admitted_events = [e for e in events if e["action"] == "participant.admitted"]
    by_therapist = [
        e for e in admitted_events if e["details"]["participant_id"] == people.id("client")
    ]
    assert by_therapist[0]["actor_id"] == people.id("therapist")
    status = await api.call("GET", f"/api/v1/consults/{consult_id}", bearer=platform.secret)
    assert status.body["status"] == "live"


@pytest.fixture
async def auto_admit(base_url: str, api: Api, platform: PlatformKey) -> AsyncIterator[People]:
    """The people of a consult created with auto-admit."""
    created = await api.call(
        "POST", "/api/v1/consults", bearer=platform.secret, json_body=consult_body(auto_admit=True)
    )
    group = People(base_url, created.body, api)
    yield group
    await group.close()


async def test_auto_admit_lets_a_consented_client_in_without_a_host(auto_admit: People) -> None:
    await auto_admit.consent()
    client = await auto_admit.connect("client")
    assert place_of(await client.join()) == "room"
    await client.wait_event("signal")


async def test_auto_admit_waits_for_the_clients_consent(auto_admit: People) -> None:
    client = await auto_admit.connect("client")
    state = await client.join()
    assert place_of(state) == "lobby"
    assert state["consent"] == {
        "complete": False,
        "sharing_withdrawn": False,
        "consenting_role": "client",
        "consent": scopes(None, None),
        "assent": None,
    }
    await auto_admit.consent()  # consenting from the join page lets them in
    admitted = await client.wait_event("admitted")
    assert admitted["state"]["you"]["place"] == "room"
    await client.wait_event("signal")


async def test_a_denied_client_is_disconnected_with_a_code(people: People) -> None:
    psychiatrist = await people.joined("psychiatrist")
    client = await people.joined("client")
    await psychiatrist.wait_event("lobby", lambda d: len(d["waiting"]) == 1)

    assert await psychiatrist.call("deny", {"participant_id": people.id("client")}) == {"ok": True}
    error = await client.wait_event("error")
    assert error["code"] == "lobby_denied"
    await client.wait_disconnected()
    left = await psychiatrist.wait_event("peer-left")
    assert left == {"participant_id": people.id("client"), "reason": "denied"}
    assert client.received("signal") == []


@pytest.mark.parametrize("admitted", [False, True], ids=["in-lobby", "admitted"])
async def test_a_client_cannot_admit_deny_remove_or_end(people: People, admitted: bool) -> None:
    therapist = await people.joined("therapist")
    client = await people.joined("client")
    if admitted:
        await people.consent()
        assert (await therapist.call("admit", {"participant_id": people.id("client")}))["ok"]
        await client.wait_event("admitted")
    target = {"participant_id": people.id("therapist")}
    for event, payload in [("admit", target), ("deny", target), ("remove", target), ("end", {})]:
        ack = await client.call(event, payload)
        assert ack["ok"] is False, event
        assert ack["error"]["code"] == "forbidden_role", event
    # Nothing changed: the therapist is still in the room and the consult goes on.
    assert therapist.received("peer-left") == []
    assert therapist.received("ended") == []
    assert (await therapist.call("media-state", {"audio": False, "video": True}))["ok"]


@pytest.mark.parametrize("role", ["guardian", "interpreter"])
async def test_an_optional_seat_waits_in_the_lobby_until_a_host_admits_them_and_hosts_nothing(
    seated_people: People, role: str
) -> None:
    """Like the client, the guardian or interpreter waits in the lobby (the hosts see their
    role) until a host admits them; unlike the client, their entry does not wait for the
    consent that admits the client (the guardian's, here). In the lobby or in the room they can
    neither admit, deny, remove nor end."""
    people = seated_people
    therapist = await people.joined("therapist")
    client = await people.joined("client")
    seat = await people.connect(role)
    state = await seat.join()
    assert place_of(state) == "lobby"
    assert state["you"]["role"] == role
    assert state["lobby"] == []  # only hosts see the lobby list
    waiting = await therapist.wait_event("lobby", lambda d: len(d["waiting"]) == 2)
    seen = {p["participant_id"]: (p["role"], p["consent"]) for p in waiting["waiting"]}
    assert seen == {people.id("client"): ("client", False), people.id(role): (role, True)}
    assert seat.received("signal") == []
    refused = await seat.call("notes-sync", {"doc": "client", "state_vector": b"\x00"})
    assert refused["error"]["code"] == "not_admitted"
    target = {"participant_id": people.id("client")}
    for attempt in range(2):
        for event, payload in [
            ("admit", target),
            ("deny", target),
            ("remove", target),
            ("end", {}),
        ]:
            ack = await seat.call(event, payload)
            assert ack["ok"] is False, (attempt, event)
            assert ack["error"]["code"] == "forbidden_role", (attempt, event)
        assert client.received("admitted") == []
        if attempt == 0:
            assert (await therapist.call("admit", {"participant_id": people.id(role)}))["ok"]
            admitted = await seat.wait_event("admitted")
            assert admitted["state"]["you"]["place"] == "room"
            assert admitted["state"]["lobby"] == []
            assert (await seat.wait_event("signal"))["type"] == "offer"
    # The client still waits, and the consult goes on.
    assert therapist.received("peer-left") == []
    assert therapist.received("ended") == []
    lobby = await therapist.wait_event(
        "lobby", lambda d: [p["participant_id"] for p in d["waiting"]] == [people.id("client")]
    )
    assert lobby["waiting"][0]["role"] == "client"


async def test_the_trail_names_the_role_of_each_seat_it_records(
    seated_people: People, api: Api, platform: PlatformKey
) -> None:
    """Every event about a seat (a link minted, joined, admitted, denied, left) and every consent
    or assent given or withdrawn says the role beside the participant id: the guardian's and
    the interpreter's actions are told apart from the client's without a second lookup."""
    people = seated_people
    roles = {p["id"]: p["role"] for p in people.consult["participants"]}
    therapist = await people.joined("therapist")
    given = await people.consent()  # the guardian's
    assent = await people.api.call(
        "POST",
        f"/api/v1/consults/{people.consult['id']}/session/consent",
        bearer=people.token("client"),
        json_body={
            "wording_version": given["wording"]["version"],
            "scopes": ["session"],
        },
    )
    assert assent.status == 201, assent.body
    guardian = await people.connect("guardian")
    interpreter = await people.connect("interpreter")
    for seat in (guardian, interpreter):
        assert place_of(await seat.join()) == "lobby"
    await therapist.wait_event("lobby", lambda d: len(d["waiting"]) == 2)
    assert (await therapist.call("admit", {"participant_id": people.id("guardian")}))["ok"]
    await guardian.wait_event("admitted")
    assert (await therapist.call("deny", {"participant_id": people.id("interpreter")}))["ok"]
    await interpreter.wait_disconnected()
    assert (await guardian.call("leave", {}))["ok"]
    await therapist.wait_event("peer-left", lambda d: d["participant_id"] == people.id("guardian"))
    withdrawn = await people.api.call(
        "POST",
        f"/api/v1/consults/{people.consult['id']}/session/consent/withdraw",
        bearer=people.token("guardian"),
        json_body={"scopes": ["information_sharing"]},
    )
    assert withdrawn.status == 200, withdrawn.body

    events = await audit_actions(api, platform, people.consult["id"])
    seen = set()
    for event in events:
        details = event["details"]
        if event["action"].startswith(("participant.", "token.minted")):
            assert details["role"] == roles[details["participant_id"]], event
            seen.add((event["action"], details["role"]))
        elif event["action"] in CONSENT_CHANGES:
            assert details["role"] == roles[event["actor_id"]], event
            seen.add((event["action"], details["role"]))
    assert {
        ("token.minted", "guardian"),
        ("token.minted", "interpreter"),
        ("participant.joined", "therapist"),
        ("participant.joined", "guardian"),
        ("participant.joined", "interpreter"),
        ("participant.admitted", "therapist"),
        ("participant.admitted", "guardian"),
        ("participant.denied", "interpreter"),
        ("participant.left", "guardian"),
        ("consent.given", "guardian"),
        ("assent.given", "client"),
        ("consent.withdrawn", "guardian"),
    } <= seen


async def test_tokens_are_bound_to_their_consult(
    people: People, base_url: str, api: Api, platform: PlatformKey
) -> None:
    other = await api.call(
        "POST", "/api/v1/consults", bearer=platform.secret, json_body=consult_body()
    )
    stranger = RoomClient(base_url, people.token("therapist"))
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await stranger.connect(
                {"token": people.token("therapist"), "consult_id": other.body["id"]}
            )
        assert stranger.connect_error["data"]["code"] == "token_wrong_consult"
    finally:
        await stranger.close()

    for auth, code in [
        ({"token": "not-a-jwt"}, "token_invalid"),
        ({}, "token_invalid"),
        ("a string", "token_invalid"),
        ({"token": people.token("client")[:-4] + "AAAA"}, "token_invalid"),
    ]:
        refused = RoomClient(base_url, "")
        try:
            with pytest.raises(socketio.exceptions.ConnectionError):
                await refused.connect(auth)
            assert refused.connect_error["data"]["code"] == code, auth
        finally:
            await refused.close()


async def test_remove_disconnects_and_a_return_knocks_from_the_lobby(
    people: People, platform: PlatformKey
) -> None:
    therapist = await people.joined("therapist")
    psychiatrist = await people.joined("psychiatrist")
    assert (await therapist.call("remove", {"participant_id": people.id("psychiatrist")}))["ok"]
    error = await psychiatrist.wait_event("error")
    assert error["code"] == "removed"
    await psychiatrist.wait_disconnected()
    await therapist.wait_event("peer-left", lambda d: d["reason"] == "removed")

    # Removal revoked the old link; the platform mints a new one to let them back.
    back = await people.connect(
        "psychiatrist", await people.new_link("psychiatrist", platform.secret)
    )
    assert place_of(await back.join()) == "lobby"  # even a host, once removed
    assert (await therapist.call("admit", {"participant_id": people.id("psychiatrist")}))["ok"]
    await back.wait_event("admitted")


# No STUN URL here: the server's own peer connections would use it (off loopback). TURN is only
# handed to browsers.
@pytest.mark.room_settings(
    turn_urls=["turn:turn.example.test:3478?transport=udp"],
    turn_secret="coturn-static-auth-secret",
    turn_credential_ttl_seconds=600,
)
async def test_each_participant_gets_ice_servers_with_their_own_turn_credential(
    people: People,
) -> None:
    """The list is only handed to the browser; nothing here contacts those hosts."""
    state = await (await people.connect("psychiatrist")).join()
    (turn,) = state["ice_servers"]
    assert turn["urls"] == ["turn:turn.example.test:3478?transport=udp"]
    expiry, participant_id = turn["username"].split(":")
    assert participant_id == people.id("psychiatrist")
    assert int(expiry) > time.time()
    digest = hmac.new(b"coturn-static-auth-secret", turn["username"].encode(), hashlib.sha1)
    assert turn["credential"] == base64.b64encode(digest.digest()).decode()


@pytest.mark.room_settings(
    turn_urls=[
        "turns:turn.example.test:5349?transport=tcp",
        "turn:turn.example.test:3478?transport=tcp",
        "turn:turn.example.test:3478?transport=udp",
    ],
    turn_secret="coturn-static-auth-secret",
    turn_credential_ttl_seconds=600,
)
async def test_a_reconnecting_socket_gets_fresh_turn_credentials_in_the_order_to_try(
    people: People,
) -> None:
    first = await people.connect("psychiatrist")
    (turn,) = (await first.join())["ice_servers"]
    assert turn["urls"] == [
        "turn:turn.example.test:3478?transport=udp",
        "turn:turn.example.test:3478?transport=tcp",
        "turns:turn.example.test:5349?transport=tcp",
    ]
    expiry = int(turn["username"].split(":")[0])
    await first.close()
    # Credentials name whole seconds: the next one is later once the clock has moved on.
    await wait_for(lambda: time.time() + 600 >= expiry + 1, what="the next second")
    again = await people.connect("psychiatrist")
    (fresh,) = (await again.join())["ice_servers"]
    assert int(fresh["username"].split(":")[0]) > expiry
    assert fresh["credential"] != turn["credential"]


@pytest.mark.room_settings(
    turn_urls=["turn:turn.example.test:3478?transport=udp"],
    turn_secret="coturn-static-auth-secret",
    turn_credential_ttl_seconds=600,
)
async def test_each_new_peer_connection_is_offered_with_fresh_turn_credentials(
    people: People,
) -> None:
    """A restart over a live socket may come hours after the join: its offer carries TURN
    credentials minted with it, for the page's new RTCPeerConnection."""
    therapist = await people.connect("therapist")
    (joined,) = (await therapist.join())["ice_servers"]
    first = await therapist.wait_event("signal", lambda s: s["type"] == "offer" and s["pc"] == 0)
    (offered,) = first["ice_servers"]
    assert offered["urls"] == joined["urls"]
    assert offered["username"].endswith(f":{people.id('therapist')}")
    expiry = int(offered["username"].split(":")[0])
    await wait_for(lambda: time.time() + 600 >= expiry + 1, what="the next second")
    assert (await therapist.call("media-restart", {"pc": 0}))["pc"] == 1
    second = await therapist.wait_event("signal", lambda s: s["type"] == "offer" and s["pc"] == 1)
    (fresh,) = second["ice_servers"]
    assert int(fresh["username"].split(":")[0]) > expiry
    digest = hmac.new(b"coturn-static-auth-secret", fresh["username"].encode(), hashlib.sha1)
    assert fresh["credential"] == base64.b64encode(digest.digest()).decode()
