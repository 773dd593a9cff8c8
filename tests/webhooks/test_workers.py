"""Several deliverers over one outbox: two dispatchers (as two workers run them) deliver each
event once and in order per consult; `triad serve` killed with SIGKILL between writing and
delivering loses nothing."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from server.app import keyring_for, utc_now
from server.db.engine import Database
from server.services import webhook_dispatcher
from server.settings import Settings
from tests.apiclient import Api
from tests.conftest import PlatformKey, consult_body
from tests.media.triadserver import TriadServer
from tests.waiting import wait_for, within
from tests.webhooks.conftest import ALL_TYPES, FAST_DELIVERY
from tests.webhooks.receiver import Receiver, receiving

CONSULTS = 10
SECOND = "Triad-Webhooks (second worker)"


def consult_events(receiver: Receiver, consult_ids: list[str]) -> dict[str, list[str]]:
    return {c: receiver.of_consult(c) for c in consult_ids}


@pytest.mark.room_settings(webhook_concurrency=2)
async def test_two_dispatchers_deliver_each_event_once_in_order(
    api: Api,
    platform: PlatformKey,
    settings: Settings,
    endpoint: dict[str, Any],
    receiver: Receiver,
) -> None:
    receiver.delay = 0.02  # each attempt takes a while: the two overlap
    # A second worker's dispatcher: its own connections to the same outbox.
    second_db = Database(settings.effective_database_url)
    second = webhook_dispatcher(
        settings, second_db, keyring_for(settings), utc_now, user_agent=SECOND
    )
    async with within(50, "two dispatchers delivering, then the second closing"):
        second.start()
        try:
            await deliver_ten(api, platform, receiver)
        finally:
            await second.close()
            await second_db.close()
    # Every request was a first: no event went out twice, not even as a retry.
    assert len(receiver.requests) == 2 * CONSULTS
    assert receiver.accepted_twice() == []
    assert receiver.unverified == 0
    # Both workers took part.
    assert SECOND in receiver.user_agents
    assert any(agent.startswith("Triad-Webhooks/") for agent in receiver.user_agents)


async def _call(
    http: aiohttp.ClientSession, server: TriadServer, method: str, path: str, body: Any = None
) -> Any:
    async with http.request(
        method,
        f"{server.base_url}{path}",
        json=body,
        headers={"Authorization": f"Bearer {server.api_key}"},
    ) as answer:
        assert answer.status < 300, await answer.text()
        return await answer.json(content_type=None)


async def test_a_server_killed_between_writing_and_delivering_loses_nothing(
    tmp_path: Path,
) -> None:
    settings = {f"TRIAD_{k.upper()}": str(v) for k, v in FAST_DELIVERY.items()}
    settings["TRIAD_WEBHOOK_TIMEOUT_SECONDS"] = "2"
    async with receiving() as receiver, TriadServer.running(tmp_path, **settings) as server:
        receiver.failing = True  # written, not delivered
        async with aiohttp.ClientSession() as http:
            created = await _call(
                http,
                server,
                "POST",
                "/api/v1/webhook-endpoints",
                {"url": receiver.url, "event_types": ALL_TYPES},
            )
        receiver.secrets = [created["secret"]]
        consult_ids = []
        for _ in range(3):
            consult = await server.new_consult()  # two consents each
            await server.end_consult(consult.consult_id)  # ended, plan saved
            consult_ids.append(consult.consult_id)
        await wait_for(lambda: len(receiver.requests) >= 3, what="refused attempts")
        # Accepting now, slowly: kill the server while it holds a delivery in flight.
        receiver.delay = 0.5
        receiver.failing = False
        await wait_for(lambda: receiver.holding > 0, what="a delivery in flight")
        server.send_signal(signal.SIGKILL)
        await server.exited()
        receiver.delay = 0.0
        await server.launch()  # the same database, a new process
        want = ["consent.given", "consent.given", "consult.ended", "plan.saved"]
        await wait_for(
            lambda: all(receiver.of_consult(c) == want for c in consult_ids),
            deadline=60,
            what="every event, after the kill",
            state=lambda: str(consult_events(receiver, consult_ids)),
        )
        # The idempotent view holds each event once, and nothing else.
        assert len(receiver.delivered()) == 4 * len(consult_ids)
        assert receiver.unverified == 0


async def deliver_ten(api: Api, platform: PlatformKey, receiver: Receiver) -> None:
    """Ten consults created and ended: each one's end, then its plan saved, at the receiver."""
    consult_ids = []
    for _ in range(CONSULTS):
        made = await api.call(
            "POST", "/api/v1/consults", bearer=platform.secret, json_body=consult_body()
        )
        consult_ids.append(made.body["id"])
        ended = await api.call(
            "POST", f"/api/v1/consults/{made.body['id']}/end", bearer=platform.secret
        )
        assert ended.status == 200
    # Each consult: its end, then its (empty) plan saved.
    want = {c: ["consult.ended", "plan.saved"] for c in consult_ids}
    await wait_for(
        lambda: consult_events(receiver, consult_ids) == want,
        what="every consult's events",
        state=lambda: str(consult_events(receiver, consult_ids)),
    )
