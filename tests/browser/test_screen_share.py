"""Screen share in Debian's Chromium: the therapist's page shares a screen (Chromium's fake
capture: `--use-fake-device-for-media-stream` with `--use-fake-ui-for-media-stream` answers
getDisplayMedia with a moving 1280x720 picture), the psychiatrist's page shows it large above
the tiles and its picture changes, an aiortc client in the room decodes it too; stopping it
takes it away; the psychiatrist (a host) stops the therapist's next share from its stage; on a
360 px phone the share takes the whole width."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from tests.apiclient import Api
from tests.browser.conftest import PageProblems
from tests.browser.roomsteps import STEP_MS, hook_state, hosts_in_room, wait_for
from tests.conftest import participant
from tests.rooms.conftest import People
from tests.rooms.mediapeople import MediaParticipant, close_all
from tests.rooms.mediapeople import enter as enter_with_media
from tests.waiting import wait_for as wait_until

PHONE = {"width": 360, "height": 780}

SHARE_SHOWN = """
(pid) => {
  const share = window.triadDebug.shareVideo();
  return share && share.participant_id === pid && !share.hidden && share.videoWidth > 0
    && share.frames > 5 && share.track === "live";
}
"""

# A small picture of what the stage's <video> shows now (to tell one frame from the next).
SHARE_PICTURE = """
() => {
  const video = document.querySelector("#share-stage video");
  if (!video || !video.videoWidth) return null;
  const canvas = document.createElement("canvas");
  canvas.width = 64;
  canvas.height = 36;
  const context = canvas.getContext("2d");
  context.drawImage(video, 0, 0, 64, 36);
  return Array.from(context.getImageData(0, 0, 64, 36).data).join(",");
}
"""

PICTURE_CHANGED = """
(before) => {
  const video = document.querySelector("#share-stage video");
  const canvas = document.createElement("canvas");
  canvas.width = 64;
  canvas.height = 36;
  canvas.getContext("2d").drawImage(video, 0, 0, 64, 36);
  const now = Array.from(canvas.getContext("2d").getImageData(0, 0, 64, 36).data).join(",");
  return now !== before;
}
"""

SHARE_GONE = """
() => {
  const share = window.triadDebug.shareVideo();
  const tracks = window.triadDebug.state().tracks;
  return share && share.participant_id === null && share.hidden
    && tracks.every((t) => t.source !== "screen");
}
"""

LAYOUT = """
() => {
  const box = (node) => node.getBoundingClientRect();
  const stage = box(document.getElementById("share-stage"));
  const tiles = box(document.getElementById("tiles"));
  const video = box(document.querySelector("#share-stage video"));
  const first = document.getElementById("tiles").firstElementChild.id;
  const others = [...document.querySelectorAll("#tiles .tile")].map((t) => box(t).top);
  return {
    first, stage: {x: stage.x, width: stage.width, top: stage.top, bottom: stage.bottom},
    tiles: {x: tiles.x, width: tiles.width}, video: {width: video.width, height: video.height},
    tileTops: others, viewport: window.innerWidth,
  };
}
"""


async def layout(page: Page) -> dict[str, Any]:
    await page.evaluate("window.scrollTo(0, 0)")
    found: dict[str, Any] = await page.evaluate(LAYOUT)
    return found


def full_width_above_the_tiles(found: dict[str, Any]) -> None:
    stage, tiles = found["stage"], found["tiles"]
    assert found["first"] == "share-stage", found
    assert abs(stage["x"] - tiles["x"]) < 1, found
    assert abs(stage["width"] - tiles["width"]) < 1, found
    assert all(top >= stage["bottom"] - 1 for top in found["tileTops"]), found
    # The picture whole, 16:9, as wide as the stage.
    assert abs(found["video"]["width"] - stage["width"]) < 1, found
    assert abs(found["video"]["height"] * 16 / 9 - found["video"]["width"]) < 2, found


@pytest.mark.timeout(180)
async def test_a_clinician_shares_a_screen_the_others_see_it_move_and_it_goes_when_stopped(
    browser: Browser, origin: str, consult: dict[str, Any], api: Api, artifacts: Any
) -> None:
    problems = PageProblems()
    contexts, pages = await hosts_in_room(browser, origin, consult, problems)
    therapist, psychiatrist = pages["therapist"], pages["psychiatrist"]
    people = People(origin, consult, api)
    joined: dict[str, MediaParticipant] = {}
    try:
        t_id = (await hook_state(therapist))["you"]["participant_id"]
        # The client as an aiortc peer, admitted from the therapist's page.
        patient = await enter_with_media(
            people, joined, "client", "silence", size=(320, 240), fps=15
        )
        await people.consent()
        admit = therapist.locator(f'#lobby-list [data-participant-id="{people.id("client")}"]')
        await admit.locator('[data-action="admit"]').click(timeout=STEP_MS)
        await patient.room.wait_event("admitted")

        # The client's page would not offer to share before a host allows it; the hosts' do.
        share_button = therapist.locator("#share-screen")
        await expect(share_button).to_be_visible(timeout=STEP_MS)
        await expect(psychiatrist.locator("#share-screen")).to_be_visible()
        await expect(therapist.locator("#client-share")).to_have_text("Client may share: off")
        await share_button.click()
        await expect(share_button).to_have_attribute("aria-pressed", "true", timeout=STEP_MS)
        await expect(therapist.locator("#share-stage .share-caption")).to_have_text(
            "You are sharing your screen"
        )
        await expect(therapist.locator("#share-stage video")).to_be_hidden()
        await expect(psychiatrist.locator("#share-screen")).to_be_disabled(timeout=STEP_MS)

        # The psychiatrist's page shows it large, first, across the tiles, and it moves.
        await wait_for(psychiatrist, SHARE_SHOWN, t_id)
        stage = psychiatrist.locator("#share-stage")
        await expect(stage.locator(".share-caption")).to_have_text(
            f"{participant(consult, 'therapist')['name']} is sharing their screen"
        )
        await expect(stage.locator('[data-action="stop-share"]')).to_have_text("Stop their share")
        share = await psychiatrist.evaluate("window.triadDebug.shareVideo()")
        assert (share["videoWidth"], share["videoHeight"]) == (1280, 720), share
        before = await psychiatrist.evaluate(SHARE_PICTURE)
        assert before
        await wait_for(psychiatrist, PICTURE_CHANGED, before)
        full_width_above_the_tiles(await layout(psychiatrist))
        await psychiatrist.screenshot(path=artifacts / "share-psychiatrist.png")
        # The aiortc client decodes it beside the cameras.
        await wait_until(
            lambda: patient.peer.decoded(t_id, "screen") >= 10, 45, "the client to decode it"
        )
        assert patient.peer.screen_sizes[t_id] == {(1280, 720)}

        # On a 360 px phone the share takes the whole width, above the tiles.
        await psychiatrist.set_viewport_size(PHONE)
        found = await layout(psychiatrist)
        full_width_above_the_tiles(found)
        assert found["stage"]["width"] >= PHONE["width"] - 20, found
        await psychiatrist.screenshot(path=artifacts / "share-psychiatrist-phone.png")

        # The therapist stops it: it goes from every page and offer.
        await share_button.click()
        await wait_for(psychiatrist, SHARE_GONE)
        await wait_for(therapist, SHARE_GONE)
        await expect(share_button).to_have_attribute("aria-pressed", "false")
        await expect(psychiatrist.locator("#share-screen")).to_be_enabled()

        # Again (the same lines, reused); the psychiatrist stops it from its stage.
        await share_button.click()
        await wait_for(psychiatrist, SHARE_SHOWN, t_id)
        await stage.locator('[data-action="stop-share"]').click()
        await wait_for(therapist, SHARE_GONE)
        await wait_for(psychiatrist, SHARE_GONE)
        state = await hook_state(therapist)
        assert state["share"] == {"participant_id": None, "client_may_share": False}
        assert not (await therapist.evaluate("window.triadDebug.shareVideo()"))["sharing"]
        assert state["errors"] == [], state["errors"]
        assert (await hook_state(psychiatrist))["errors"] == []
        assert problems.messages == [], problems.messages
    finally:
        await close_all(joined)
        await people.close()
        for context in contexts:
            await context.close()
