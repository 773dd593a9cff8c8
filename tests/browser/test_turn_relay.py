"""Chromium through coturn: a page made to relay only (`iceTransportPolicy: "relay"`, as a
network that lets nothing else through would force) joins with the TURN servers and the
credential of its join state, and video plays both ways through the relay; with a secret coturn
does not know, coturn refuses the credential (401) and the page says why (`turn_refused`).

coturn (tests/coturn.py) listens on loopback and relays only to 127.0.0.1, where the SFU is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests import coturn as coturn_module
from tests.browser.conftest import PageProblems, new_page
from tests.browser.roomsteps import (
    FRAMES_ADVANCED,
    ONE_REMOTE_PLAYING,
    STEP_MS,
    enter,
    hook_state,
    wait_for,
)
from tests.conftest import participant
from tests.coturn import Coturn, CoturnConfig
from tests.waiting import wait_for as wait_until

# Only relayed candidates, as on a network that blocks everything but the TURN server; and
# the peer connections kept for the test to read which candidate pair carries the media.
RELAY_ONLY = """
(() => {
  const Native = window.RTCPeerConnection;
  window.__peerConnections = [];
  window.RTCPeerConnection = function (config, ...rest) {
    const pc = new Native({ ...(config || {}), iceTransportPolicy: "relay" }, ...rest);
    window.__peerConnections.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Native.prototype;
})();
"""

SELECTED_LOCAL_CANDIDATE = """
async () => {
  const stats = await window.__peerConnections.at(-1).getStats();
  let pair = null;
  stats.forEach((r) => {
    if (r.type === "transport" && r.selectedCandidatePairId) {
      pair = stats.get(r.selectedCandidatePairId);
    }
  });
  if (!pair) return null;
  const local = stats.get(pair.localCandidateId);
  return { type: local.candidateType, relayProtocol: local.relayProtocol || null };
}
"""


@pytest.fixture
async def coturn(tmp_path: Path) -> AsyncIterator[Coturn]:
    coturn_module.require()
    async with Coturn.running(tmp_path, CoturnConfig()) as server:
        yield server


@pytest.fixture
def turn_secret(coturn: Coturn) -> str:
    """The server's TURN secret: coturn's (a test overrides it with one coturn does not know)."""
    return coturn.config.secret


@pytest.fixture
def deployment_settings(coturn: Coturn, turn_secret: str) -> dict[str, Any]:
    return {"turn_urls": list(coturn.urls()), "turn_secret": turn_secret}


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_a_relay_only_page_joins_through_coturn(
    browser: Browser,
    origin: str,
    consult: dict[str, Any],
    coturn: Coturn,
    transport: str,
) -> None:
    """The therapist's page relays only; the psychiatrist's connects directly. Each case hands
    the page only the join state's TURN URL of its transport (`tcp`: as if UDP to coturn were
    blocked). Given all three, Chromium relays over whichever answers first: under load that
    was once TCP with UDP offered too (the join state's order is tests/turn/test_policy.py's)."""
    problems = PageProblems()
    pages: dict[str, Page] = {}
    contexts: list[BrowserContext] = []
    try:
        for role in ("therapist", "psychiatrist"):
            context, page = await new_page(browser, origin, problems, role)
            contexts.append(context)
            if role == "therapist":
                # Keep only the plain `turn:` URL of this transport from the join state's entry.
                script = RELAY_ONLY.replace(
                    "{ ...(config || {}),",
                    "{ ...(config || {}), iceServers: (config?.iceServers || []).map((s) => "
                    "({ ...s, urls: [].concat(s.urls).filter((u) => "
                    f"u.includes('transport={transport}') && u.startsWith('turn:')) }}))"
                    ".filter((s) => s.urls.length),",
                )
                assert script != RELAY_ONLY
                await page.add_init_script(script)
            await page.goto(participant(consult, role)["join"]["join_url"])
            await enter(page)
            await expect(page.locator("#room")).to_be_visible(timeout=STEP_MS)
            pages[role] = page
        for page in pages.values():
            await wait_for(page, ONE_REMOTE_PLAYING)
        therapist = pages["therapist"]
        selected = await therapist.evaluate(SELECTED_LOCAL_CANDIDATE)
        assert selected == {"type": "relay", "relayProtocol": transport}, selected
        therapist_id = participant(consult, "therapist")["id"]
        granted = [line for line in coturn.allocations() if f":{therapist_id}>" in line]
        assert granted, coturn.log_tail()
        assert (await hook_state(therapist))["errors"] == []
        assert problems.messages == []
    finally:
        await asyncio.gather(*(c.close() for c in contexts))


@pytest.mark.parametrize("turn_secret", ["a-secret-coturn-does-not-know"])
async def test_a_refused_turn_credential_is_said_in_the_room(
    browser: Browser, origin: str, consult: dict[str, Any], coturn: Coturn
) -> None:
    problems = PageProblems()
    context, page = await new_page(browser, origin, problems, "therapist")
    try:
        await page.add_init_script(RELAY_ONLY)
        await page.goto(participant(consult, "therapist")["join"]["join_url"])
        await enter(page)
        await expect(page.locator("#room")).to_be_visible(timeout=STEP_MS)
        await wait_for(
            page,
            "() => window.triadDebug.state().errors.some((e) => e.code === 'turn_refused')",
        )
        await expect(page.locator("#room-error")).to_contain_text("turn_refused")
        assert not coturn.allocations()
        assert "401" in coturn.log_text()
    finally:
        await context.close()


FAIL_CURRENT_PEER_CONNECTION = """
() => {
  const pc = window.__peerConnections.at(-1);
  Object.defineProperty(pc, "connectionState", { get: () => "failed" });
  pc.dispatchEvent(new Event("connectionstatechange"));
}
"""


async def test_a_relayed_page_restarts_with_the_credential_its_new_offer_brought(
    browser: Browser, origin: str, consult: dict[str, Any], coturn: Coturn
) -> None:
    """The page's new peer connection (`media-restart` over the live socket) allocates its relay
    with the TURN credential of the new offer, not the join's (which may have expired)."""
    problems = PageProblems()
    contexts: list[BrowserContext] = []
    pages: dict[str, Page] = {}
    try:
        for role in ("therapist", "psychiatrist"):
            context, page = await new_page(browser, origin, problems, role)
            contexts.append(context)
            if role == "therapist":
                await page.add_init_script(RELAY_ONLY)
            await page.goto(participant(consult, role)["join"]["join_url"])
            await enter(page)
            await expect(page.locator("#room")).to_be_visible(timeout=STEP_MS)
            pages[role] = page
        for page in pages.values():
            await wait_for(page, ONE_REMOTE_PLAYING)
        therapist = pages["therapist"]
        therapist_id = participant(consult, "therapist")["id"]

        def users() -> set[str]:
            granted = [line for line in coturn.allocations() if f":{therapist_id}>" in line]
            return {line.split("user <")[1].split(">")[0] for line in granted}

        (first,) = users()
        # Credentials name whole seconds: one minted later differs once the clock moved on.
        minted = int(first.split(":")[0]) - 3600  # the default TTL
        await wait_until(lambda: time.time() > minted + 1, 10, "the next second")
        await therapist.evaluate(FAIL_CURRENT_PEER_CONNECTION)
        await wait_for(therapist, "() => window.triadDebug.state().pc === 1")
        await wait_until(lambda: len(users()) == 2, 20, "an allocation with a second credential")
        before = await therapist.evaluate("window.triadDebug.remoteVideos()")
        await wait_for(therapist, FRAMES_ADVANCED, before)
        selected = await therapist.evaluate(SELECTED_LOCAL_CANDIDATE)
        assert selected is not None
        assert selected["type"] == "relay", selected
        assert problems.messages == []
    finally:
        await asyncio.gather(*(c.close() for c in contexts))
