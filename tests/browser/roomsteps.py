"""Steps the browser tests share: enter from the join step (with the client's consent and
check-in when the page asks), wait on the page's test hook with a deadline (a timeout fails
with what the hook says), and the JavaScript predicates the waits use."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import PageProblems, new_page
from tests.conftest import participant

STEP_MS = 20_000  # a deadline for each step (Chromium on two cores, VP8 in software)
ROLES = ("client", "therapist", "psychiatrist")
POLL_SECONDS = 0.1  # how often `poll` evaluates its predicate

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

AUDIO_ARRIVING = """
async (others) => {
  const stats = await window.triadDebug.inboundRtp();
  return others.every((pid) => stats.some(
    (s) => s.participant_id === pid && s.kind === "audio" && s.packetsReceived > 20
  ));
}
"""

DEBUG_REPORT = """
async () => ({
  state: window.triadDebug.state(),
  videos: window.triadDebug.remoteVideos(),
  inbound: await window.triadDebug.inboundRtp(),
})
"""


async def poll(page: Page, predicate: str, arg: Any = None, *, timeout_ms: int = STEP_MS) -> Any:
    """The first truthy value of `predicate` (a JavaScript function of `arg`, which may return a
    Promise), evaluated every `POLL_SECONDS` until the deadline; None at the deadline.

    Not `page.wait_for_function`: it does not await a Promise, which is truthy, so an async
    predicate (anything reading getStats) would pass at once whatever it resolves to."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_ms / 1000
    while True:
        value = await page.evaluate(predicate, arg)
        if value:
            return value
        if loop.time() >= deadline:
            return None
        await asyncio.sleep(POLL_SECONDS)


async def wait_for(page: Page, predicate: str, arg: Any = None) -> None:
    """`poll` with the step deadline; on a timeout, fail with what the page's test hook says
    (the room state, the remote videos and the inbound RTP counters)."""
    if not await poll(page, predicate, arg):
        report = await page.evaluate(DEBUG_REPORT)
        pytest.fail(f"timed out waiting for {predicate.strip()[:80]!r} on {page.url}: {report}")


async def enter(page: Page) -> None:
    enter_button = page.locator("#enter")
    await expect(enter_button).to_be_enabled(timeout=STEP_MS)
    assert await page.evaluate("window.triadDebug.devices().status") == "ok"
    await enter_button.click()


async def client_reaches_lobby(page: Page) -> None:
    """After Enter: the consent step (tick both, submit) and the optional check-in (skipped),
    when the page shows them, then the lobby."""
    lobby = page.locator("#lobby-wait")
    consent = page.locator("#consent-form")
    checkin = page.locator("#checkin-skip")
    shown = page.locator("#lobby-wait:visible, #consent-form:visible, #checkin-skip:visible")
    for _ in range(3):
        await expect(shown.first).to_be_visible(timeout=STEP_MS)
        if await lobby.is_visible():
            return
        if await consent.is_visible():
            await page.locator('input[name="consent-session"]').check()
            await page.locator('input[name="consent-sharing"]').check()
            await page.locator("#consent-submit").click()
            await expect(consent).to_be_hidden(timeout=STEP_MS)
        elif await checkin.is_visible():
            await checkin.click()
            await expect(checkin).to_be_hidden(timeout=STEP_MS)
    await expect(lobby).to_be_visible(timeout=STEP_MS)


async def hook_state(page: Page) -> dict[str, Any]:
    state: dict[str, Any] = await page.evaluate("window.triadDebug.state()")
    return state


async def hosts_in_room(
    browser: Browser,
    origin: str,
    consult: dict[str, Any],
    problems: PageProblems,
    *,
    init_scripts: dict[str, str] | None = None,
) -> tuple[list[BrowserContext], dict[str, Page]]:
    """The therapist and the psychiatrist in the room, each playing the other's video.
    `init_scripts` adds a script to a role's page before it loads."""
    contexts: list[BrowserContext] = []
    pages: dict[str, Page] = {}
    for role in ("therapist", "psychiatrist"):
        context, page = await new_page(browser, origin, problems, role)
        contexts.append(context)
        pages[role] = page
        if init_scripts and role in init_scripts:
            await page.add_init_script(init_scripts[role])
        await page.goto(participant(consult, role)["join"]["join_url"])
        await enter(page)
        await expect(page.locator("#room")).to_be_visible(timeout=STEP_MS)
    for page in pages.values():
        await wait_for(page, ONE_REMOTE_PLAYING)
    return contexts, pages
