"""Getting the video back in Debian's Chromium: a reload returns to the same seat on a new peer
connection, and a page whose own peer connection fails while its socket lives asks the server
for a new one (`media-restart`) and plays again. The three-way consult, the notes and a dropped
network are in test_room.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from playwright.async_api import Browser, expect

from tests.browser.conftest import PageProblems
from tests.browser.roomsteps import (
    FRAMES_ADVANCED,
    ONE_REMOTE_PLAYING,
    STEP_MS,
    enter,
    hook_state,
    hosts_in_room,
    wait_for,
)

# Keeps the page's peer connections reachable, so the test can make one report `failed` as
# Chromium does when ICE consent is lost (which takes ~30 s of blocked traffic to happen for real).
KEEP_PEER_CONNECTIONS = """
(() => {
  const Native = window.RTCPeerConnection;
  window.__peerConnections = [];
  window.RTCPeerConnection = function (...args) {
    const pc = new Native(...args);
    window.__peerConnections.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Native.prototype;
})();
"""

FAIL_CURRENT_PEER_CONNECTION = """
() => {
  const pc = window.__peerConnections.at(-1);
  Object.defineProperty(pc, "connectionState", { get: () => "failed" });
  pc.dispatchEvent(new Event("connectionstatechange"));
}
"""


async def test_a_reload_returns_to_the_same_seat_with_a_new_peer_connection(
    browser: Browser, origin: str, consult: dict[str, Any]
) -> None:
    """The server offers the returning page a new `pc` before it acknowledges the join; the page
    waits for the ICE servers, answers on a new RTCPeerConnection, and video plays again."""
    problems = PageProblems()
    contexts, pages = await hosts_in_room(browser, origin, consult, problems)
    try:
        therapist = pages["therapist"]
        assert (await hook_state(therapist))["pc"] == 0

        await therapist.reload()  # the token comes back from sessionStorage
        await enter(therapist)
        await expect(therapist.locator("#room")).to_be_visible(timeout=STEP_MS)
        await wait_for(therapist, ONE_REMOTE_PLAYING)
        assert (await hook_state(therapist))["pc"] == 1
        # The psychiatrist's page keeps its peer connection and sees the therapist again.
        psychiatrist = pages["psychiatrist"]
        before = await psychiatrist.evaluate("window.triadDebug.remoteVideos()")
        await wait_for(psychiatrist, FRAMES_ADVANCED, before)
        assert (await hook_state(psychiatrist))["pc"] == 0
        assert problems.messages == []
    finally:
        await asyncio.gather(*(c.close() for c in contexts))


async def test_a_failed_peer_connection_is_replaced_while_the_socket_lives(
    browser: Browser, origin: str, consult: dict[str, Any]
) -> None:
    problems = PageProblems()
    contexts, pages = await hosts_in_room(
        browser, origin, consult, problems, init_scripts={"therapist": KEEP_PEER_CONNECTIONS}
    )
    try:
        therapist = pages["therapist"]
        assert (await hook_state(therapist))["pc"] == 0
        await therapist.evaluate(RECORD_BANNER)
        await therapist.evaluate(FAIL_CURRENT_PEER_CONNECTION)
        # Shown while the new peer connection comes up: recorded as it is shown, since a
        # restart on a quiet machine can be over before a poll would see it.
        await wait_for(
            therapist, "() => window.__bannerShown.some((t) => t.includes('Reconnecting'))"
        )
        await wait_for(therapist, "() => window.triadDebug.state().pc === 1")
        await expect(therapist.locator("#banner")).to_be_hidden(timeout=STEP_MS)
        state = await hook_state(therapist)
        assert state["mediaRestarts"] == 1, state
        assert state["errors"] == [], state
        before = await therapist.evaluate("window.triadDebug.remoteVideos()")
        await wait_for(therapist, FRAMES_ADVANCED, before)
        psychiatrist = pages["psychiatrist"]
        before = await psychiatrist.evaluate("window.triadDebug.remoteVideos()")
        await wait_for(psychiatrist, FRAMES_ADVANCED, before)
        assert problems.messages == []
    finally:
        await asyncio.gather(*(c.close() for c in contexts))


RECORD_BANNER = """
() => {
  const banner = document.getElementById("banner");
  window.__bannerShown = [];
  const seen = () => {
    if (!banner.hidden && banner.textContent) window.__bannerShown.push(banner.textContent);
  };
  new MutationObserver(seen).observe(banner, {
    attributes: true, childList: true, characterData: true, subtree: true,
  });
}
"""


SET_CURRENT_PEER_CONNECTION_STATE = """
(state) => {
  const pc = window.__peerConnections.at(-1);
  Object.defineProperty(pc, "connectionState", { get: () => state, configurable: true });
  pc.dispatchEvent(new Event("connectionstatechange"));
}
"""


@pytest.mark.parametrize("change", ["offline-then-online", "disconnected-for-the-grace"])
async def test_a_network_change_gets_a_new_peer_connection_on_the_same_seat(
    browser: Browser, origin: str, consult: dict[str, Any], change: str
) -> None:
    """A network change (Wi-Fi to cellular: Chromium fires `offline` then `online`; the test
    dispatches them, it cannot move Chromium's network) or a peer connection that stays
    `disconnected` past the grace gets the page a new peer connection, exactly one, on the
    same seat, and video plays both ways again. On `offline` socket.io closes the socket and
    its reconnect's join brings the new peer connection; a `disconnected` one is replaced over
    the live socket (`media-restart`)."""
    problems = PageProblems()
    contexts, pages = await hosts_in_room(
        browser, origin, consult, problems, init_scripts={"therapist": KEEP_PEER_CONNECTIONS}
    )
    try:
        therapist = pages["therapist"]
        seat = (await hook_state(therapist))["you"]
        assert (await hook_state(therapist))["pc"] == 0
        if change == "offline-then-online":
            await therapist.evaluate("window.dispatchEvent(new Event('offline'))")
            assert (await hook_state(therapist))["mediaRestarts"] == 0  # nothing until online
            await therapist.evaluate("window.dispatchEvent(new Event('online'))")
            restarts = 0  # the socket's rejoin brought the new peer connection
        else:
            await therapist.evaluate(SET_CURRENT_PEER_CONNECTION_STATE, "disconnected")
            restarts = 1
        await wait_for(therapist, "() => window.triadDebug.state().pc === 1")
        await expect(therapist.locator("#banner")).to_be_hidden(timeout=STEP_MS)
        state = await hook_state(therapist)
        assert state["mediaRestarts"] == restarts, state
        assert state["errors"] == [], state
        assert state["you"] == seat  # the same seat: no rejoin, no lobby
        before = await therapist.evaluate("window.triadDebug.remoteVideos()")
        await wait_for(therapist, FRAMES_ADVANCED, before)
        psychiatrist = pages["psychiatrist"]
        before = await psychiatrist.evaluate("window.triadDebug.remoteVideos()")
        await wait_for(psychiatrist, FRAMES_ADVANCED, before)
        assert (await hook_state(therapist))["pc"] == 1  # one new peer connection, not two
        assert problems.messages == []
    finally:
        await asyncio.gather(*(c.close() for c in contexts))
