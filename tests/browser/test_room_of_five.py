"""A room of five in Debian's Chromium: the therapist's page, with the psychiatrist, the client
(a minor), their guardian and an interpreter as aiortc peers of the tests over Socket.IO (four
more Chromium pages would cost more than this machine's two cores give a test).

The therapist sees each waiting person by name and role, the client's consent (the guardian's,
for a minor) and nobody else's, and admits each one; the page then plays four remote videos and
hears four others, and lays the five tiles out to fit one screen on a desktop and on a 360 px
phone."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from tests.apiclient import Api
from tests.browser.conftest import PageProblems, new_page
from tests.browser.roomsteps import (
    AUDIO_ARRIVING,
    FRAMES_ADVANCED,
    STEP_MS,
    enter,
    hook_state,
    wait_for,
)
from tests.conftest import participant
from tests.media.peers import counts
from tests.rooms.conftest import People
from tests.rooms.mediapeople import MediaParticipant, close_all, sees_and_hears
from tests.rooms.mediapeople import enter as enter_with_media
from tests.waiting import wait_for as wait_until

DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 360, "height": 780}
WAITING = ("client", "guardian", "interpreter")
PICTURE = {"size": (320, 240), "fps": 15}

FOUR_REMOTES_PLAYING = """
() => {
  const videos = window.triadDebug.remoteVideos();
  return videos.length === 4 && videos.every(
    (v) => v.videoWidth > 0 && v.frames > 0 && !v.paused && v.audioTrack === "live"
  );
}
"""

TILE_BOXES = """
() => [...document.querySelectorAll("#tiles .tile")].map((tile) => {
  const box = tile.getBoundingClientRect();
  return {
    participant_id: tile.dataset.participantId,
    self: tile.dataset.self === "true",
    x: box.x, y: box.y, width: box.width, height: box.height,
  };
})
"""


async def tile_boxes(page: Page) -> list[dict[str, Any]]:
    await page.evaluate("window.scrollTo(0, 0)")
    boxes: list[dict[str, Any]] = await page.evaluate(TILE_BOXES)
    return boxes


def rows(boxes: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The tiles by row, top to bottom, each row left to right."""
    by_top: dict[int, list[dict[str, Any]]] = {}
    for box in boxes:
        by_top.setdefault(round(box["y"]), []).append(box)
    return [sorted(row, key=lambda b: b["x"]) for _, row in sorted(by_top.items())]


@pytest.mark.timeout(150)
async def test_a_host_admits_each_by_role_and_five_tiles_fit_a_desktop_and_a_phone(
    browser: Browser, origin: str, seated_consult: dict[str, Any], api: Api, artifacts: Any
) -> None:
    consult = seated_consult
    people = People(origin, consult, api)
    joined: dict[str, MediaParticipant] = {}
    problems = PageProblems()
    context, page = await new_page(browser, origin, problems, "therapist", viewport=DESKTOP)
    try:
        await page.goto(participant(consult, "therapist")["join"]["join_url"])
        await enter(page)
        await expect(page.locator("#room")).to_be_visible(timeout=STEP_MS)
        await enter_with_media(people, joined, "psychiatrist", "tone", **PICTURE)
        for role in WAITING:
            await enter_with_media(people, joined, role, "tone", **PICTURE)

        # Each waiting person by name and role; a consent badge for the client only.
        lobby = page.locator("#lobby-list")
        for role in WAITING:
            item = lobby.locator(f'[data-participant-id="{people.id(role)}"]')
            await expect(item.locator(".lobby-role")).to_have_text(
                role.capitalize(), timeout=STEP_MS
            )
            await expect(item.locator(".lobby-name")).to_have_text(
                participant(consult, role)["name"]
            )
        waiting_client = lobby.locator(f'[data-participant-id="{people.id("client")}"]')
        await expect(lobby.locator(".lobby-consent")).to_have_count(1)
        # A minor's: the badge is the guardian's consent.
        await expect(waiting_client.locator(".lobby-consent")).to_have_text(
            "Guardian's consent not given yet"
        )
        await page.screenshot(path=artifacts / "room-five-lobby-therapist.png")
        await people.consent()  # the guardian's, for the minor
        await expect(waiting_client.locator(".lobby-consent")).to_have_text(
            "Guardian's consent given", timeout=STEP_MS
        )
        for role in ("guardian", "interpreter", "client"):
            item = lobby.locator(f'[data-participant-id="{people.id(role)}"]')
            await item.locator('[data-action="admit"]').click()
            await joined[role].room.wait_event("admitted")
            await expect(item).to_have_count(0, timeout=STEP_MS)
        await expect(page.locator("#host-lobby")).to_be_hidden(timeout=STEP_MS)

        # Five tiles, named by role; four remote videos play and four others are heard.
        await expect(page.locator("#tiles .tile")).to_have_count(5, timeout=STEP_MS)
        await expect(page.locator("#tiles")).to_have_attribute("data-count", "5")
        for role in ("psychiatrist", *WAITING):
            tile = page.locator(f'.tile[data-participant-id="{people.id(role)}"]')
            await expect(tile).to_have_attribute("data-role", role)
            await expect(tile.locator(".tile-role")).to_have_text(role.capitalize())
        await wait_for(page, FOUR_REMOTES_PLAYING)
        before = await page.evaluate("window.triadDebug.remoteVideos()")
        await wait_for(page, FRAMES_ADVANCED, before)
        others = [people.id(role) for role in ("psychiatrist", *WAITING)]
        await wait_for(page, AUDIO_ARRIVING, others)
        # And each of the four decodes the page's video and the three others'.
        therapist_id = people.id("therapist")
        peers = {role: p.peer for role, p in joined.items()}

        def everyone_decodes() -> bool:
            return all(
                p.peer.decoded(therapist_id, "video") >= 10
                and sees_and_hears(p, [o for o in joined.values() if o is not p], 10)
                for p in joined.values()
            )

        await wait_until(everyone_decodes, 45, f"the peers to decode everyone {counts(peers)}")

        # A desktop: two rows of three, the four others first, all of it on the first screen.
        boxes = await tile_boxes(page)
        assert [len(row) for row in rows(boxes)] == [3, 2], boxes
        assert boxes[-1]["self"], boxes
        for box in boxes:
            assert box["y"] + box["height"] <= DESKTOP["height"], box
            assert box["width"] >= 200, box
        await page.screenshot(path=artifacts / "room-five-therapist.png")

        # A phone: the others two to a row, yourself below them, nothing wider than the screen,
        # the four others on the first screen and the controls within reach.
        await page.set_viewport_size(PHONE)
        await expect(page.locator("#toggle-audio")).to_be_in_viewport()
        assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        boxes = await tile_boxes(page)
        layout = rows(boxes)
        assert [len(row) for row in layout] == [2, 2, 1], boxes
        assert layout[-1][0]["self"], boxes
        for box in boxes:
            assert box["x"] >= 0, box
            assert box["x"] + box["width"] <= PHONE["width"], box
            if not box["self"]:
                assert box["width"] >= 150, box
                assert box["y"] + box["height"] <= PHONE["height"], box
        await page.screenshot(path=artifacts / "room-five-therapist-phone.png", full_page=True)

        # The interpreter leaves: four tiles, two by two on the phone, yourself beside the last.
        assert (await joined["interpreter"].room.call("leave"))["ok"]
        await expect(page.locator("#tiles .tile")).to_have_count(4, timeout=STEP_MS)
        await expect(page.locator("#tiles")).to_have_attribute("data-count", "4")
        layout = rows(await tile_boxes(page))
        assert [len(row) for row in layout] == [2, 2], layout
        assert layout[-1][1]["self"], layout
        assert (await hook_state(page))["errors"] == []
        assert problems.messages == []
    finally:
        await close_all(joined)
        await people.close()
        await context.close()
