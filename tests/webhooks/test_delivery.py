"""Delivery end to end: a whole consult's events reach a real receiver, verified with the
`standardwebhooks` library, in order; retries after failures keep the `webhook-id`."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from tests.apiclient import Api
from tests.care.test_measures_api import PHQ9_FLAGGED, measures_path
from tests.conftest import PlatformKey
from tests.metricsread import Scrape, parse
from tests.rooms.conftest import People
from tests.rooms.test_metrics_consult import grew
from tests.waiting import wait_for
from tests.webhooks.conftest import register
from tests.webhooks.receiver import Receiver, receiving

# What a whole consult says, in order (docs/api.md, "Webhooks").
CONSULT_EVENTS = [
    "consent.given",  # the session
    "consent.given",  # sharing between the clinicians
    "consult.live",  # the first admission
    "participant.admitted",  # the therapist
    "participant.admitted",  # the psychiatrist
    "participant.admitted",  # the client
    "safety_flag.raised",
    "consent.withdrawn",
    "participant.left",  # the client
    "consult.ended",
    "plan.saved",
]
# Every key an event's data may hold: ids and codes.
DATA_KEYS = {
    "consult_id",
    "participant_id",
    "role",
    "reason",
    "ended_by",
    "plan_id",
    "version",
    "consent_id",
    "kind",
    "measure_id",
}


async def run_consult(people: People, api: Api) -> None:
    """Consent, everyone in, a flagged check-in, sharing withdrawn, the client leaves and a
    host ends the consult (which saves the plan)."""
    therapist, _psychiatrist, client = await people.all_in_room()
    answer = await api.call(
        "POST",
        measures_path(people),
        bearer=people.token("client"),
        json_body={"instrument": "phq9", "answers": PHQ9_FLAGGED},
    )
    assert answer.status == 201, answer.body
    withdrawn = await api.call(
        "POST",
        f"/api/v1/consults/{people.consult['id']}/session/consent/withdraw",
        bearer=people.token("client"),
        json_body={"scopes": ["information_sharing"]},
    )
    assert withdrawn.status == 200, withdrawn.body
    assert (await client.call("leave"))["ok"]
    ended = await therapist.call("end")
    assert ended["ok"], ended


async def all_arrived(receiver: Receiver, consult_id: str, count: int) -> None:
    await wait_for(
        lambda: len(receiver.of_consult(consult_id)) >= count,
        what=f"{count} events of the consult",
        state=lambda: str(receiver.of_consult(consult_id)),
    )


async def test_a_whole_consult_reaches_the_receiver_in_order(
    people: People, api: Api, platform: PlatformKey, endpoint: dict[str, Any], receiver: Receiver
) -> None:
    await run_consult(people, api)
    consult_id = people.consult["id"]
    await all_arrived(receiver, consult_id, len(CONSULT_EVENTS))
    assert receiver.of_consult(consult_id) == CONSULT_EVENTS
    assert receiver.unverified == 0
    assert receiver.accepted_twice() == []
    delivered = receiver.delivered()
    names = {p["name"] for p in people.consult["participants"]}
    for item in delivered:
        assert set(item.data) <= DATA_KEYS, item
        assert not names & {str(v) for v in item.data.values()}, item
    # Each body is what the OpenAPI document's `webhooks` say it is.
    document = (await api.call("GET", "/api/v1/openapi.json")).body
    for item in delivered:
        operation = document["webhooks"][item.type]["post"]
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        jsonschema.Draft202012Validator(schema).validate(item.body)
    # ... and would refuse one that said more (a name, say).
    leaky = {**delivered[0].body, "data": {**delivered[0].data, "name": "Alex Rivera"}}
    schema = document["webhooks"][delivered[0].type]["post"]["requestBody"]["content"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema["application/json"]["schema"]).validate(leaky)
    by_type = {item.type: item.data for item in delivered}
    assert by_type["participant.left"] == {
        "consult_id": consult_id,
        "participant_id": people.id("client"),
        "role": "client",
        "reason": "left",
    }
    assert by_type["safety_flag.raised"]["participant_id"] == people.id("client")
    assert by_type["plan.saved"]["version"] == 1
    # Every attempt is readable over REST: one each, all succeeded, each with its latency.
    answer = await api.call(
        "GET",
        f"/api/v1/webhook-endpoints/{endpoint['endpoint']['id']}/attempts",
        bearer=platform.secret,
    )
    assert answer.status == 200, answer.body
    attempts = answer.body["attempts"]
    assert [a["event_type"] for a in attempts] == CONSULT_EVENTS
    assert all(a["succeeded"] and a["status_code"] == 200 for a in attempts)


async def test_a_failing_receiver_gets_every_event_again_with_its_id_in_order(
    people: People, api: Api, platform: PlatformKey, endpoint: dict[str, Any], receiver: Receiver
) -> None:
    before = await scrape(api)
    receiver.failing = True
    await run_consult(people, api)
    consult_id = people.consult["id"]
    # Refused again and again: the first event is retried, nothing after it goes out first.
    await wait_for(lambda: len(receiver.requests) >= 4, what="several refused attempts")
    # The operator sees the failures, and events waiting longer and longer.
    await wait_for(
        lambda: scrape_grew(api, before, "triad_webhook_deliveries_total", 4, outcome="failed"),
        what="failed attempts counted",
    )
    ages = [(await scrape(api)).value("triad_webhook_outbox_oldest_age_seconds")]
    await wait_for(lambda: outbox_older(api, ages), what="the outbox's oldest event growing older")
    first = receiver.requests[0].message_id
    assert {r.message_id for r in receiver.requests} == {first}
    receiver.failing = False
    await all_arrived(receiver, consult_id, len(CONSULT_EVENTS))
    assert receiver.of_consult(consult_id) == CONSULT_EVENTS
    assert receiver.accepted_twice() == []
    assert receiver.delivered()[0].message_id == first
    refused = [r for r in receiver.requests if r.status == 500]
    assert len(refused) >= 4
    assert all(r.message_id == first for r in refused)
    # The attempts say so: refused ones with their status, then the success.
    path = f"/api/v1/webhook-endpoints/{endpoint['endpoint']['id']}/attempts"
    answer = await api.call("GET", path, bearer=platform.secret, query={"limit": 200})
    attempts = answer.body["attempts"]
    failed = [a for a in attempts if not a["succeeded"]]
    assert len(failed) == len(refused)
    assert {(a["status_code"], a["error"]) for a in failed} == {(500, "http_status")}
    assert sum(a["succeeded"] for a in attempts) == len(CONSULT_EVENTS)
    after = await scrape(api)
    delivered = grew(before, after, "triad_webhook_deliveries_total", outcome="delivered")
    assert delivered == len(CONSULT_EVENTS)
    assert grew(before, after, "triad_webhook_deliveries_total", outcome="failed") == len(refused)
    # Nothing waits any more.
    await wait_for(lambda: outbox_empty(api), what="the outbox's age back to 0")


async def scrape(api: Api) -> Scrape:
    answer = await api.call("GET", "/metrics")
    assert answer.status == 200, answer.body
    return parse(answer.body.decode())


async def scrape_grew(api: Api, before: Scrape, name: str, by: float, **labels: str) -> bool:
    return grew(before, await scrape(api), name, **labels) >= by


async def outbox_older(api: Api, ages: list[float]) -> bool:
    ages.append((await scrape(api)).value("triad_webhook_outbox_oldest_age_seconds"))
    return ages[-1] > ages[0] > 0


async def outbox_empty(api: Api) -> bool:
    return (await scrape(api)).value("triad_webhook_outbox_oldest_age_seconds") == 0


async def test_only_the_subscribed_types_go_to_an_endpoint(
    people: People, api: Api, platform: PlatformKey
) -> None:
    async with receiving() as ends_only:
        created = await register(api, platform, ends_only.url, ["consult.ended", "plan.saved"])
        ends_only.secrets = [created["secret"]]
        await run_consult(people, api)
        await all_arrived(ends_only, people.consult["id"], 2)
        assert ends_only.of_consult(people.consult["id"]) == ["consult.ended", "plan.saved"]


async def test_a_rotated_secret_signs_beside_the_old_one_for_the_overlap(
    people: People, api: Api, platform: PlatformKey, endpoint: dict[str, Any], receiver: Receiver
) -> None:
    endpoint_id = endpoint["endpoint"]["id"]
    rotated = await api.call(
        "POST",
        f"/api/v1/webhook-endpoints/{endpoint_id}/secret",
        bearer=platform.secret,
        json_body={"overlap_seconds": 3600},
    )
    assert rotated.status == 200, rotated.body
    assert rotated.body["secret"] != endpoint["secret"]
    assert rotated.body["endpoint"]["previous_secret_until"] is not None
    # Each delivery must verify with the old secret and with the new one.
    receiver.secrets = [endpoint["secret"], rotated.body["secret"]]
    await people.consent()
    await all_arrived(receiver, people.consult["id"], 2)
    assert receiver.unverified == 0

    # No overlap: the old secret no longer signs.
    again = await api.call(
        "POST",
        f"/api/v1/webhook-endpoints/{endpoint_id}/secret",
        bearer=platform.secret,
        json_body={"overlap_seconds": 0},
    )
    assert again.status == 200
    assert again.body["endpoint"]["previous_secret_until"] is not None
    receiver.secrets = [again.body["secret"]]
    receiver.stale_secrets = [endpoint["secret"], rotated.body["secret"]]
    await people.joined("therapist")
    await all_arrived(receiver, people.consult["id"], 4)  # live, the therapist admitted
    assert receiver.unverified == 0
    assert receiver.stale_verified == 0
