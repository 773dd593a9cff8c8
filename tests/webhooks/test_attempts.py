"""One attempt against a real receiver: where it may not go, a receiver too slow, a redirect
not followed; the backoff's bounds."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from aiohttp import web

from server.app import keyring_for, utc_now
from server.services import Services, webhook_dispatcher
from server.settings import Settings
from server.webhooks.dispatcher import Claim, Outcome, WebhookDispatcher
from server.webhooks.history import AttemptError
from server.webhooks.policy import DeliveryPolicy
from server.webhooks.urls import AddressRefused, PublicOnlyResolver, UrlRefused, check_url
from tests.ports import held_ports
from tests.webhooks.receiver import Receiver, receiving

SECRET = "whsec_" + "A" * 43 + "="


@pytest.fixture
async def dispatcher(settings: Settings, services: Services) -> AsyncIterator[WebhookDispatcher]:
    running = webhook_dispatcher(
        settings.model_copy(update={"webhook_timeout_seconds": 0.5}),
        services.db,
        keyring_for(settings),
        utc_now,
    )
    running.start()  # its HTTP client; its loop finds no endpoint
    yield running
    await running.close()


def claim_for(url: str) -> Claim:
    return Claim(
        delivery_id=1,
        lease="l",
        message_id="msg_test",
        event_type="consult.ended",
        created_at=datetime.now(UTC),
        data={"consult_id": "c_x"},
        url=url,
        secrets=(SECRET,),
        manual=False,
    )


async def test_a_2xx_succeeds_and_the_receiver_verifies_it(
    dispatcher: WebhookDispatcher, receiver: Receiver
) -> None:
    receiver.secrets = [SECRET]
    assert await dispatcher.attempt(claim_for(receiver.url)) == Outcome(True, 200, None)
    assert [r.message_id for r in receiver.requests] == ["msg_test"]


async def test_a_slow_receiver_times_out(dispatcher: WebhookDispatcher, receiver: Receiver) -> None:
    receiver.secrets = [SECRET]
    receiver.delay = 2.0
    outcome = await dispatcher.attempt(claim_for(receiver.url))
    assert outcome == Outcome(False, None, AttemptError.TIMEOUT)


async def test_a_closed_port_fails_to_connect(dispatcher: WebhookDispatcher) -> None:
    (sock,) = held_ports(1)  # bound, never listening
    try:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/hooks"
        outcome = await dispatcher.attempt(claim_for(url))
    finally:
        sock.close()
    assert outcome == Outcome(False, None, AttemptError.CONNECT_FAILED)


async def test_a_redirect_is_not_followed(dispatcher: WebhookDispatcher) -> None:
    async with receiving() as target:
        target.secrets = [SECRET]

        async def redirect(_request: web.Request) -> web.Response:
            raise web.HTTPTemporaryRedirect(target.url)

        app = web.Application()
        app.router.add_post("/hooks", redirect)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        (sock,) = held_ports(1)
        await web.SockSite(runner, sock).start()
        try:
            url = f"http://127.0.0.1:{sock.getsockname()[1]}/hooks"
            outcome = await dispatcher.attempt(claim_for(url))
        finally:
            await runner.cleanup()
        assert outcome == Outcome(False, 307, AttemptError.HTTP_STATUS)
        assert target.requests == []


@pytest.mark.room_settings(webhook_allow_private_addresses=False)
async def test_a_private_address_is_refused_at_delivery_too(
    dispatcher: WebhookDispatcher, receiver: Receiver
) -> None:
    # Registered while private addresses were allowed; the setting changed since.
    outcome = await dispatcher.attempt(claim_for(receiver.url))
    assert outcome == Outcome(False, None, AttemptError.ADDRESS_REFUSED)
    assert receiver.requests == []


async def test_a_name_that_resolves_only_to_private_addresses_does_not_resolve() -> None:
    resolver = PublicOnlyResolver()
    try:
        with pytest.raises(AddressRefused):
            await resolver.resolve("localhost", 443)
    finally:
        await resolver.close()


@pytest.mark.parametrize(
    ("url", "https", "private"),
    [
        ("http://hooks.example.com/x", True, False),
        ("http://127.0.0.1:9/x", False, False),
        ("https://[fe80::1]/x", False, False),
        ("https://[fc00::1]/x", False, False),
    ],
)
def test_urls_refused_by_rule(url: str, https: bool, private: bool) -> None:
    with pytest.raises(UrlRefused):
        check_url(url, require_https=https, allow_private=private)


def test_urls_allowed_by_rule() -> None:
    assert check_url("http://127.0.0.1:9/x", require_https=False, allow_private=True)
    assert check_url("https://8.8.8.8/x", require_https=True, allow_private=False)
    assert check_url("https://hooks.example.com/x", require_https=True, allow_private=False)


def test_the_backoff_doubles_to_its_cap_with_jitter_and_spans_the_window() -> None:
    policy = DeliveryPolicy(
        timeout=10,
        retry_base=5,
        retry_cap=3600,
        retry_window=24 * 3600,
        poll=1,
        concurrency=1,
        require_https=True,
        allow_private=False,
    )
    rng = random.Random(7)  # noqa: S311 (a seeded jitter, not a secret)
    for failed in range(1, 40):
        step = min(3600, 5 * 2 ** (failed - 1))
        delay = policy.retry_delay(failed, rng).total_seconds()
        assert step / 2 <= delay <= step
    # Attempts keep coming for the whole window: at most an hour apart, so a receiver back
    # within the window hears within the hour.
    assert policy.retry_delay(1000, rng).total_seconds() <= 3600
    with pytest.raises(ValueError, match="retry_cap"):
        replace(policy, retry_cap=1)
