"""Registering webhook endpoints over REST: the secret once, hostile URLs and bodies refused
with a stable code and nothing changed, another platform's endpoints invisible."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from server.services import Services
from tests.apiclient import Api
from tests.conftest import PlatformKey, new_platform
from tests.databases import snapshot
from tests.webhooks.conftest import ALL_TYPES, register
from tests.webhooks.receiver import Receiver

ENDPOINTS = "/api/v1/webhook-endpoints"


async def test_the_secret_is_answered_once_and_never_read_again(
    api: Api, platform: PlatformKey, receiver: Receiver
) -> None:
    created = await register(api, platform, receiver.url, ["consult.ended"])
    secret = created["secret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    endpoint = created["endpoint"]
    assert (endpoint["url"], endpoint["event_types"]) == (receiver.url, ["consult.ended"])
    assert endpoint["previous_secret_until"] is None
    listed = await api.call("GET", ENDPOINTS, bearer=platform.secret)
    read = await api.call("GET", f"{ENDPOINTS}/{endpoint['id']}", bearer=platform.secret)
    assert listed.body == {"endpoints": [endpoint]}
    assert read.body == endpoint
    for answer in (listed, read):
        assert secret not in str(answer.body)
        assert "secret" not in str(answer.body).replace("previous_secret_until", "")


REFUSED_URLS = [
    "ftp://hooks.example.com/x",
    "hooks.example.com/x",
    "https://user:pass@hooks.example.com/x",
    "https://hooks.example.com/x#frag",
    "https://127.0.0.1/hooks",
    "https://[::1]/hooks",
    "https://[::ffff:127.0.0.1]/hooks",
    "https://10.1.2.3/hooks",
    "https://192.168.0.10/hooks",
    "https://169.254.169.254/latest/meta-data",
    "https://100.64.0.1/hooks",
    "https://0.0.0.0/hooks",
    "https://224.0.0.1/hooks",
    "https://localhost/hooks",
    "https://api.localhost/hooks",
    "https://intranet/hooks",
    "https://hooks.example.com/\u00e9",
    "https://hooks.example.com/a b",
    "https://hooks.example.com/" + "a" * 2048,
    "https:///nohost",
]


@pytest.mark.room_settings(webhook_allow_private_addresses=False)
@pytest.mark.parametrize("url", REFUSED_URLS)
async def test_hostile_urls_are_refused_and_change_nothing(
    api: Api, platform: PlatformKey, services: Services, url: str
) -> None:
    before = await snapshot(services.db)
    answer = await api.call(
        "POST",
        ENDPOINTS,
        bearer=platform.secret,
        json_body={"url": url, "event_types": ["consult.ended"]},
    )
    assert answer.status == 422, answer.body
    assert answer.code in ("webhook_url_refused", "validation_failed")
    assert await snapshot(services.db) == before


@pytest.mark.room_settings(webhook_allow_private_addresses=False)
async def test_a_public_https_url_is_accepted(api: Api, platform: PlatformKey) -> None:
    created = await register(api, platform, "https://hooks.example.com/triad?x=1")
    assert created["endpoint"]["url"] == "https://hooks.example.com/triad?x=1"


BAD_BODIES: list[Any] = [
    {"url": "https://hooks.example.com/x", "event_types": []},
    {"url": "https://hooks.example.com/x", "event_types": ["consult.started"]},
    {"url": "https://hooks.example.com/x", "event_types": "consult.ended"},
    {"url": "https://hooks.example.com/x", "event_types": [1]},
    {"url": "https://hooks.example.com/x", "event_types": ["consult.ended"] * 9},
    {"url": "", "event_types": ["consult.ended"]},
    {"url": ["https://hooks.example.com/x"], "event_types": ["consult.ended"]},
    {"event_types": ["consult.ended"]},
    {"url": "https://hooks.example.com/x", "event_types": ["consult.ended"], "secret": "x"},
    [],
]


@pytest.mark.parametrize("body", BAD_BODIES, ids=range(len(BAD_BODIES)))
async def test_bad_bodies_are_refused_and_change_nothing(
    api: Api, platform: PlatformKey, services: Services, body: Any
) -> None:
    before = await snapshot(services.db)
    answer = await api.call("POST", ENDPOINTS, bearer=platform.secret, json_body=body)
    assert answer.status == 422, answer.body
    assert answer.code == "validation_failed"
    assert await snapshot(services.db) == before


@pytest.mark.room_settings(webhook_max_endpoints=2)
async def test_a_platform_holds_at_most_the_limit(
    api: Api, platform: PlatformKey, services: Services, receiver: Receiver
) -> None:
    await register(api, platform, receiver.url)
    second = await register(api, platform, receiver.url)
    before = await snapshot(services.db)
    third = await api.call(
        "POST",
        ENDPOINTS,
        bearer=platform.secret,
        json_body={"url": receiver.url, "event_types": ALL_TYPES},
    )
    assert (third.status, third.code) == (409, "webhook_endpoints_limit_reached")
    assert await snapshot(services.db) == before
    # A deleted one frees its place.
    gone = await api.call(
        "DELETE", f"{ENDPOINTS}/{second['endpoint']['id']}", bearer=platform.secret
    )
    assert gone.status == 204
    await register(api, platform, receiver.url)


async def test_another_platforms_endpoint_is_not_found_by_any_call(
    api: Api, platform: PlatformKey, services: Services, receiver: Receiver
) -> None:
    theirs = await register(api, platform, receiver.url)
    endpoint_id = theirs["endpoint"]["id"]
    other = await new_platform(services, "Other Clinic")
    before = await snapshot(services.db)
    calls = [
        ("GET", f"{ENDPOINTS}/{endpoint_id}", None),
        ("DELETE", f"{ENDPOINTS}/{endpoint_id}", None),
        ("POST", f"{ENDPOINTS}/{endpoint_id}/secret", {"overlap_seconds": 0}),
        ("GET", f"{ENDPOINTS}/{endpoint_id}/deliveries", None),
        ("GET", f"{ENDPOINTS}/{endpoint_id}/attempts", None),
        ("POST", f"{ENDPOINTS}/{endpoint_id}/deliveries/msg_x/redeliver", None),
    ]
    for method, path, body in calls:
        answer = await api.call(method, path, bearer=other.secret, json_body=body)
        assert (answer.status, answer.code) == (404, "webhook_endpoint_not_found"), path
    listed = await api.call("GET", ENDPOINTS, bearer=other.secret)
    assert listed.body == {"endpoints": []}
    assert await snapshot(services.db) == before


async def test_a_deleted_endpoint_is_gone(
    api: Api, platform: PlatformKey, receiver: Receiver
) -> None:
    created = await register(api, platform, receiver.url)
    path = f"{ENDPOINTS}/{created['endpoint']['id']}"
    assert (await api.call("DELETE", path, bearer=platform.secret)).status == 204
    for method in ("GET", "DELETE"):
        answer = await api.call(method, path, bearer=platform.secret)
        assert (answer.status, answer.code) == (404, "webhook_endpoint_not_found")


@pytest.mark.parametrize("overlap", [-1, 7 * 24 * 3600 + 1, "60", 1.5, True])
async def test_bad_overlaps_are_refused_and_change_nothing(
    api: Api, platform: PlatformKey, services: Services, receiver: Receiver, overlap: Any
) -> None:
    created = await register(api, platform, receiver.url)
    before = await snapshot(services.db)
    answer = await api.call(
        "POST",
        f"{ENDPOINTS}/{created['endpoint']['id']}/secret",
        bearer=platform.secret,
        json_body={"overlap_seconds": overlap},
    )
    assert (answer.status, answer.code) == (422, "validation_failed")
    assert await snapshot(services.db) == before


@pytest.mark.parametrize(
    "query", [{"limit": "0"}, {"limit": "201"}, {"after": "-1"}, {"state": "lost"}, {"x": "1"}]
)
async def test_bad_history_queries_are_refused(
    api: Api, platform: PlatformKey, receiver: Receiver, query: dict[str, str]
) -> None:
    created = await register(api, platform, receiver.url)
    answer = await api.call(
        "GET",
        f"{ENDPOINTS}/{created['endpoint']['id']}/deliveries",
        bearer=platform.secret,
        query=query,
    )
    assert (answer.status, answer.code) == (422, "validation_failed")
