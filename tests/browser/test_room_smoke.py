"""Smoke test of the browser room in Debian's Chromium: three pages join from their links, the
therapist admits the client from the lobby, everyone sees and hears the other two, mute shows
on the other pages, and the psychiatrist ends the consult for all.

Every wait has a deadline (Playwright's wait_for_function / expect), never a fixed sleep. The
pages' test hook is `window.triadDebug` (docs/web.md); tiles carry data attributes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Dialog, Page, expect
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from tests.apiclient import Api
from tests.browser.conftest import PageProblems, new_page
from tests.conftest import PlatformKey, participant

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

ROLES = ("client", "therapist", "psychiatrist")
STEP_MS = 20_000  # a deadline for each step (Chromium on two cores, VP8 in software)

ONE_REMOTE_PLAYING = """
() => {
  const videos = window.triadDebug.remoteVideos();
  return videos.length === 1 && videos[0].videoWidth > 0 && videos[0].frames > 5;
}
"""

TWO_REMOTES_PLAYING = """
() => {
  const videos = window.triadDebug.remoteVideos();
  return videos.length === 2 && videos.every(
    (v) => v.videoWidth > 0 && v.frames > 0 && !v.paused && v.audioTrack === "live"
  );
}
"""

FRAMES_ADVANCED = """
(before) => window.triadDebug.remoteVideos().every((v) => {
  const was = before.find((b) => b.participant_id === v.participant_id);
  return was && v.frames >= was.frames + 10 && v.currentTime > was.currentTime;
})
"""

DEBUG_REPORT = """
async () => ({
  state: window.triadDebug.state(),
  videos: window.triadDebug.remoteVideos(),
  inbound: await window.triadDebug.inboundRtp(),
})
"""

AUDIO_ARRIVING = """
async (others) => {
  const stats = await window.triadDebug.inboundRtp();
  return others.every((pid) => stats.some(
    (s) => s.participant_id === pid && s.kind === "audio" && s.packetsReceived > 20
  ));
}
"""


async def wait_for(page: Page, predicate: str, arg: Any = None) -> None:
    """`page.wait_for_function` with the step deadline; on a timeout, fail with what the page's
    test hook says (the room state, the remote videos and the inbound RTP counters)."""
    try:
        await page.wait_for_function(predicate, arg=arg, timeout=STEP_MS)
    except PlaywrightTimeoutError:
        report = await page.evaluate(DEBUG_REPORT)
        pytest.fail(f"timed out waiting for {predicate.strip()[:80]!r} on {page.url}: {report}")


async def enter(page: Page) -> None:
    enter_button = page.locator("#enter")
    await expect(enter_button).to_be_enabled(timeout=STEP_MS)
    assert await page.evaluate("window.triadDebug.devices().status") == "ok"
    await enter_button.click()


async def accept(dialog: Dialog) -> None:
    assert "End the consult" in dialog.message
    await dialog.accept()


@pytest.mark.timeout(120)
async def test_three_way_room_in_chromium(
    browser: Browser,
    origin: str,
    consult: dict[str, Any],
    api: Api,
    platform: PlatformKey,
    artifacts: Path,
) -> None:
    problems = PageProblems()
    contexts: list[BrowserContext] = []
    pages: dict[str, Page] = {}
    ids = {role: participant(consult, role)["id"] for role in ROLES}
    names = {role: participant(consult, role)["name"] for role in ROLES}
    try:
        for role in ROLES:
            context, page = await new_page(
                browser, origin, problems, role, viewport={"width": 1280, "height": 800}
            )
            contexts.append(context)
            pages[role] = page
            await page.goto(participant(consult, role)["join"]["join_url"])
            # The token left the address bar for sessionStorage.
            await expect(page.locator("#consult")).to_be_visible(timeout=STEP_MS)
            assert "#" not in page.url
            await expect(page.locator("#you-name")).to_have_text(names[role])

        client, therapist, psychiatrist = (pages[r] for r in ROLES)
        for host in (therapist, psychiatrist):
            await enter(host)
            await expect(host.locator("#room")).to_be_visible(timeout=STEP_MS)
        for host in (therapist, psychiatrist):  # the two hosts see each other
            await wait_for(host, ONE_REMOTE_PLAYING)

        # The client waits in the lobby; the therapist sees them there and admits them.
        await expect(client.locator("#enter")).to_be_enabled(timeout=STEP_MS)
        await client.screenshot(path=artifacts / "join-client.png", full_page=True)
        await enter(client)
        lobby = client.locator("#lobby-wait")
        await expect(lobby).to_be_visible(timeout=STEP_MS)
        await expect(lobby).to_contain_text("Your therapist will let you in")
        waiting = therapist.locator(f'#lobby-list [data-participant-id="{ids["client"]}"]')
        await expect(waiting).to_contain_text(names["client"], timeout=STEP_MS)
        await therapist.screenshot(path=artifacts / "lobby-therapist.png")
        await waiting.locator('[data-action="admit"]').click()
        await expect(client.locator("#room")).to_be_visible(timeout=STEP_MS)
        await expect(therapist.locator("#host-lobby")).to_be_hidden(timeout=STEP_MS)

        # Each page: three labelled tiles, two remote videos playing, remote audio arriving.
        for role, page in pages.items():
            for other in ROLES:
                tile = page.locator(f'.tile[data-participant-id="{ids[other]}"]')
                await expect(tile).to_have_attribute("data-role", other, timeout=STEP_MS)
                await expect(tile.locator(".tile-name")).to_have_text(names[other])
            await expect(page.locator(".tile")).to_have_count(3)
            await wait_for(page, TWO_REMOTES_PLAYING)
            before = await page.evaluate("window.triadDebug.remoteVideos()")
            await wait_for(page, FRAMES_ADVANCED, before)
            await wait_for(page, AUDIO_ARRIVING, [ids[r] for r in ROLES if r != role])
            assert (await page.evaluate("window.triadDebug.state()"))["errors"] == []

        await therapist.screenshot(path=artifacts / "room-therapist.png")
        await client.set_viewport_size({"width": 390, "height": 844})  # a phone
        await expect(client.locator(".tile").first).to_be_visible()
        await client.screenshot(path=artifacts / "room-client-phone.png", full_page=True)

        # The psychiatrist mutes: the other two pages show it on the psychiatrist's tile.
        mute = psychiatrist.locator("#toggle-audio")
        await mute.click()
        await expect(mute).to_have_attribute("aria-pressed", "true")
        for page in (therapist, client):
            tile = page.locator(f'.tile[data-participant-id="{ids["psychiatrist"]}"]')
            await expect(tile.locator(".badge-muted")).to_be_visible(timeout=STEP_MS)
            await expect(tile).to_have_attribute("data-audio", "off")

        # The psychiatrist ends the consult (confirming); every page shows the end and the plan.
        psychiatrist.once("dialog", accept)
        await psychiatrist.locator("#end").click()
        plan_ids = set()
        for page in pages.values():
            await expect(page.locator("#finished-heading")).to_have_text(
                "The consult has ended", timeout=STEP_MS
            )
            plan_ids.add(await page.locator("#plan-id").text_content())
        assert len(plan_ids) == 1, plan_ids
        assert plan_ids != {""}
        await client.screenshot(path=artifacts / "ended-client-phone.png", full_page=True)
        await therapist.screenshot(path=artifacts / "ended-therapist.png")

        answer = await api.call("GET", f"/api/v1/consults/{consult['id']}", bearer=platform.secret)
        assert answer.body["status"] == "ended"
        assert problems.messages == []
    finally:
        await asyncio.gather(*(c.close() for c in contexts))


@pytest.mark.timeout(120)
async def test_a_reload_returns_to_the_same_seat_with_a_new_peer_connection(
    browser: Browser, origin: str, consult: dict[str, Any]
) -> None:
    """The server offers the returning page a new `pc` before it acknowledges the join; the page
    waits for the ICE servers, answers on a new RTCPeerConnection, and video plays again."""
    problems = PageProblems()
    contexts: list[BrowserContext] = []
    pages: dict[str, Page] = {}
    try:
        for role in ("therapist", "psychiatrist"):
            context, page = await new_page(browser, origin, problems, role)
            contexts.append(context)
            pages[role] = page
            await page.goto(participant(consult, role)["join"]["join_url"])
            await enter(page)
            await expect(page.locator("#room")).to_be_visible(timeout=STEP_MS)
        therapist = pages["therapist"]
        await wait_for(therapist, ONE_REMOTE_PLAYING)
        assert (await therapist.evaluate("window.triadDebug.state()"))["pc"] == 0

        await therapist.reload()  # the token comes back from sessionStorage
        await enter(therapist)
        await expect(therapist.locator("#room")).to_be_visible(timeout=STEP_MS)
        await wait_for(therapist, ONE_REMOTE_PLAYING)
        assert (await therapist.evaluate("window.triadDebug.state()"))["pc"] == 1
        # The psychiatrist's page keeps its peer connection and sees the therapist again.
        psychiatrist = pages["psychiatrist"]
        before = await psychiatrist.evaluate("window.triadDebug.remoteVideos()")
        await wait_for(psychiatrist, FRAMES_ADVANCED, before)
        assert (await psychiatrist.evaluate("window.triadDebug.state()"))["pc"] == 0
        assert problems.messages == []
    finally:
        await asyncio.gather(*(c.close() for c in contexts))
