"""The embed SDK in Debian's Chromium: platform pages on another loopback origin mount the room
with `Triad.mount` (the classic script and the ES module), receive its events, drive it with
commands, and nobody else can: a page whose origin is not in TRIAD_ALLOWED_ORIGINS cannot frame
the room, and messages from a third window are ignored on both sides.

The host pages are served by tests/browser/hostpage.py on `localhost` ports (another site than
the server's 127.0.0.1); the third party is a frame on yet another origin."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Frame, Page, expect

from tests.apiclient import Api
from tests.browser.conftest import PageProblems, new_page
from tests.browser.hostpage import HostSite, bound_socket, events_named, origin_of, serve_host
from tests.conftest import PlatformKey, participant
from tests.rooms.conftest import People
from tests.waiting import wait_for

STEP_MS = 20_000


@pytest.fixture
def allowed_socket() -> Iterator[socket.socket]:
    sock = bound_socket()
    yield sock
    sock.close()


@pytest.fixture
def blocked_socket() -> Iterator[socket.socket]:
    sock = bound_socket()
    yield sock
    sock.close()


@pytest.fixture
def deployment_settings(allowed_socket: socket.socket) -> dict[str, Any]:
    """The allowed host page's origin as the one embedder."""
    return {"allowed_origins": [origin_of(allowed_socket)]}


# Answers the room expects (a consult without a hand-off brief), which Chromium logs as errors.
EXPECTED_FAILURES = ("/session/brief",)


async def host_page(
    browser: Browser,
    origin: str,
    site: HostSite,
    path: str,
    problems: PageProblems,
    label: str,
) -> tuple[BrowserContext, Page]:
    context, page = await new_page(
        browser, origin, problems, label, viewport={"width": 1100, "height": 900}
    )
    await context.grant_permissions(["camera", "microphone"], origin=site.origin)
    await page.goto(site.url(path))
    await page.wait_for_function("() => Boolean(window.TriadSdk && window.mountRoom)")
    return context, page


async def wait_for_event(page: Page, name: str, **detail: Any) -> dict[str, Any]:
    """The first `name` event whose detail has these values (within the step deadline)."""
    handle = await page.wait_for_function(
        """([name, detail]) => window.hostEvents.find((e) => e.name === name &&
             Object.entries(detail).every(([k, v]) => e.detail[k] === v))""",
        arg=[name, detail],
        timeout=STEP_MS,
    )
    found: dict[str, Any] = await handle.json_value()
    return found["detail"]


async def enter_embedded(page: Page) -> None:
    room = page.frame_locator("#slot iframe")
    await expect(room.locator("#enter")).to_be_enabled(timeout=STEP_MS)
    await room.locator("#enter").click()
    await expect(room.locator("#room")).to_be_visible(timeout=STEP_MS)


def room_frame(page: Page, triad_origin: str) -> Frame:
    frames = [f for f in page.frames if f.url.startswith(triad_origin)]
    assert len(frames) == 1, [f.url for f in page.frames]
    return frames[0]


@pytest.mark.timeout(150)
async def test_a_platform_page_mounts_the_room_and_drives_it(
    browser: Browser,
    origin: str,
    consult: dict[str, Any],
    api: Api,
    platform: PlatformKey,
    allowed_socket: socket.socket,
    blocked_socket: socket.socket,
) -> None:
    problems = PageProblems(EXPECTED_FAILURES)
    contexts: list[BrowserContext] = []
    ids = {role: participant(consult, role)["id"] for role in ("therapist", "psychiatrist")}
    async with (
        serve_host(allowed_socket, origin) as site,
        serve_host(blocked_socket, origin, host="127.0.0.1") as third_party,
    ):
        try:
            # The therapist's platform uses the classic script; the psychiatrist's the module.
            context, therapist = await host_page(
                browser, origin, site, "/classic", problems, "therapist host"
            )
            contexts.append(context)
            context, psychiatrist = await host_page(
                browser, origin, site, "/module", problems, "psychiatrist host"
            )
            contexts.append(context)
            for page, role in ((therapist, "therapist"), (psychiatrist, "psychiatrist")):
                join_url = participant(consult, role)["join"]["join_url"]
                await page.evaluate("(url) => window.mountRoom(url)", join_url)
                await wait_for_event(page, "ready")
                iframe = page.locator("#slot iframe")
                await expect(iframe).to_have_attribute(
                    "allow", "camera; microphone; autoplay; display-capture"
                )
                await enter_embedded(page)
                joined = await wait_for_event(page, "joined", participant_id=ids[role])
                assert joined["role"] == role
                await wait_for_event(page, "admitted", participant_id=ids[role])
                # The camera works inside the frame (the allow attribute delegates it).
                frame = room_frame(page, origin)
                assert await frame.evaluate("window.triadDebug.devices().status") == "ok"
                # The fragment left the frame's address too.
                assert "#" not in frame.url
            await wait_for_event(
                therapist, "participant-joined", participant_id=ids["psychiatrist"]
            )

            therapist_tile = psychiatrist.frame_locator("#slot iframe").locator(
                f'.tile[data-participant-id="{ids["therapist"]}"]'
            )
            await expect(therapist_tile).to_have_attribute("data-audio", "on", timeout=STEP_MS)

            # A third party framed on the therapist's platform page posts a mute command to
            # the room and a forged `ended` to the SDK. The room ignores the command (it says so
            # on its console) and the SDK drops the event (the "done" marker the sibling posts
            # after it has reached the host page, so the forged message was handled before).
            warned = asyncio.get_running_loop().create_future()

            def on_console(message: ConsoleMessage) -> None:
                ignored = "ignored an embed message from " + third_party.origin
                if ignored in message.text and not warned.done():
                    warned.set_result(message.text)

            therapist.on("console", on_console)
            await therapist.evaluate("(url) => window.addSibling(url)", third_party.url("/sibling"))
            sibling = next(f for f in therapist.frames if f.url.startswith(third_party.origin))
            await sibling.evaluate(
                """() => {
                  const room = [...Array(parent.frames.length).keys()]
                    .map((i) => parent.frames[i]).find((w) => w !== window);
                  const mute = {triad: 1, type: "command", id: 1, command: "toggle-audio"};
                  room.postMessage(mute, "*");
                  parent.postMessage(
                    {triad: 1, type: "event", event: "ended", detail: {plan_id: "forged"}}, "*");
                  parent.postMessage("sibling-done", "*");
                }"""
            )
            await asyncio.wait_for(warned, STEP_MS / 1000)
            await therapist.wait_for_function(
                "() => window.hostMessages.some((m) => m.data === 'sibling-done')", timeout=STEP_MS
            )
            assert events_named(await therapist.evaluate("window.hostEvents"), "ended") == []
            frame = room_frame(therapist, origin)
            assert await frame.locator("#toggle-audio").get_attribute("aria-pressed") == "false"

            # The same command from the platform page itself is obeyed, and the others see it.
            assert await therapist.evaluate("window.room.toggleAudio()") == {"audio": False}
            await expect(frame.locator("#toggle-audio")).to_have_attribute("aria-pressed", "true")
            await expect(therapist_tile).to_have_attribute("data-audio", "off", timeout=STEP_MS)

            # A command the room does not know is answered with a code and not acted on.
            code = await therapist.evaluate(
                """() => new Promise((resolve) => {
                  const frame = document.querySelector("#slot iframe");
                  const origin = new URL(frame.src).origin;
                  const onReply = (event) => {
                    if (event.source === frame.contentWindow && event.data?.type === "result") {
                      window.removeEventListener("message", onReply);
                      resolve(event.data.code);
                    }
                  };
                  window.addEventListener("message", onReply);
                  const unknown = {triad: 1, type: "command", id: 77, command: "dance"};
                  frame.contentWindow.postMessage(unknown, origin);
                })"""
            )
            assert code == "unknown_command"

            # The therapist leaves: their platform hears `left`, the psychiatrist's
            # `participant-left`.
            assert await therapist.evaluate("window.room.leave()") == {}
            await wait_for_event(therapist, "left")
            await wait_for_event(psychiatrist, "participant-left", participant_id=ids["therapist"])

            # The psychiatrist's platform ends the consult: `ended` with the saved plan's id.
            answer = await psychiatrist.evaluate("window.room.end()")
            ended = await wait_for_event(psychiatrist, "ended")
            assert ended["plan_id"]
            assert ended["plan_id"] == answer["plan_id"]
            await expect(
                psychiatrist.frame_locator("#slot iframe").locator("#finished-heading")
            ).to_have_text("The consult has ended", timeout=STEP_MS)
            plan = await api.call(
                "GET", f"/api/v1/consults/{consult['id']}/plan", bearer=platform.secret
            )
            assert plan.status == 200
            assert plan.body["id"] == ended["plan_id"]
            assert problems.messages == []
        finally:
            await asyncio.gather(*(c.close() for c in contexts))


@pytest.mark.timeout(90)
async def test_ending_over_rest_reaches_the_embedder_with_the_plan_id(
    browser: Browser,
    origin: str,
    consult: dict[str, Any],
    api: Api,
    platform: PlatformKey,
    allowed_socket: socket.socket,
) -> None:
    problems = PageProblems(EXPECTED_FAILURES)
    async with serve_host(allowed_socket, origin) as site:
        context, page = await host_page(browser, origin, site, "/module", problems, "host")
        try:
            join_url = participant(consult, "therapist")["join"]["join_url"]
            await page.evaluate("(url) => window.mountRoom(url)", join_url)
            await enter_embedded(page)
            await wait_for_event(page, "joined")
            answer = await api.call(
                "POST", f"/api/v1/consults/{consult['id']}/end", bearer=platform.secret
            )
            assert answer.status == 200, answer.body
            ended = await wait_for_event(page, "ended")
            plan = await api.call(
                "GET", f"/api/v1/consults/{consult['id']}/plan", bearer=platform.secret
            )
            assert ended["plan_id"] == plan.body["id"]
            assert problems.messages == []
        finally:
            await context.close()


@pytest.mark.timeout(90)
async def test_a_page_from_an_origin_not_allowed_cannot_frame_the_room(
    browser: Browser,
    origin: str,
    consult: dict[str, Any],
    allowed_socket: socket.socket,
    blocked_socket: socket.socket,
) -> None:
    """The same SDK and host page on two origins that differ only in the port: the allowed one
    gets the room, the other gets Chromium's refusal of the frame and never a byte of the app."""
    problems = PageProblems(EXPECTED_FAILURES)
    join_url = participant(consult, "therapist")["join"]["join_url"]
    async with (
        serve_host(allowed_socket, origin) as allowed,
        serve_host(blocked_socket, origin) as blocked,
    ):
        assert blocked.origin.startswith("http://localhost:")
        contexts: list[BrowserContext] = []
        try:
            context, page = await host_page(browser, origin, allowed, "/classic", problems, "ok")
            contexts.append(context)
            await page.evaluate("(url) => window.mountRoom(url)", join_url)
            await wait_for_event(page, "ready")
            room = page.frame_locator("#slot iframe")
            await expect(room.locator("#consult")).to_be_visible(timeout=STEP_MS)

            context, page = await host_page(
                browser, origin, blocked, "/classic", PageProblems(EXPECTED_FAILURES), "blocked"
            )
            contexts.append(context)
            async with page.expect_console_message(
                lambda m: "frame-ancestors" in m.text and "blocked" in m.text,
                timeout=STEP_MS,
            ):
                await page.evaluate("(url) => window.mountRoom(url)", join_url)
            # Chromium shows its own error page in the frame: no app, no SDK event.
            frames = [f for f in page.frames if f is not page.main_frame]
            assert len(frames) == 1
            await wait_for(
                lambda: frames[0].url.startswith("chrome-error:"),
                STEP_MS / 1000,
                "Chromium's error page in the refused frame",
            )
            assert await frames[0].evaluate("document.getElementById('consult')") is None
            assert await page.evaluate("window.hostEvents") == []
            assert problems.messages == []
        finally:
            await asyncio.gather(*(c.close() for c in contexts))


@pytest.mark.timeout(150)
async def test_the_sdk_hears_the_optional_seats_and_the_screen_share(
    browser: Browser,
    origin: str,
    seated_consult: dict[str, Any],
    api: Api,
    allowed_socket: socket.socket,
) -> None:
    """A minor's consult: the embedded therapist's platform hears the guardian and the
    interpreter come and go with their roles (the lobby counts, a denial is a leaving), and the
    screen share start and stop, each with ids and roles only."""
    consult = seated_consult
    problems = PageProblems(EXPECTED_FAILURES)
    ids = {p["role"]: p["id"] for p in consult["participants"]}
    people = People(origin, consult, api)
    async with serve_host(allowed_socket, origin) as site:
        context, page = await host_page(browser, origin, site, "/module", problems, "therapist")
        try:
            await page.evaluate(
                "(url) => window.mountRoom(url)",
                participant(consult, "therapist")["join"]["join_url"],
            )
            await enter_embedded(page)
            await wait_for_event(page, "joined", participant_id=ids["therapist"])

            guardian = await people.joined("guardian")
            interpreter = await people.joined("interpreter")
            for role in ("guardian", "interpreter"):
                joined = await wait_for_event(page, "participant-joined", participant_id=ids[role])
                assert joined == {"participant_id": ids[role], "role": role}

            room = page.frame_locator("#slot iframe")
            lobby = room.locator("#lobby-list")
            await lobby.locator(
                f'[data-participant-id="{ids["guardian"]}"] [data-action="admit"]'
            ).click()
            await guardian.wait_event("admitted")
            await lobby.locator(
                f'[data-participant-id="{ids["interpreter"]}"] [data-action="deny"]'
            ).click()
            denied = await wait_for_event(
                page, "participant-left", participant_id=ids["interpreter"]
            )
            assert denied == {"participant_id": ids["interpreter"], "reason": "denied"}
            await interpreter.wait_disconnected()

            # The therapist shares a screen (Chromium's fake capture), then stops.
            await room.locator("#share-screen").click()
            started = await wait_for_event(page, "share-started")
            assert started == {"participant_id": ids["therapist"], "role": "therapist"}
            await expect(room.locator("#share-screen")).to_have_attribute(
                "aria-pressed", "true", timeout=STEP_MS
            )
            await room.locator("#share-screen").click()
            stopped = await wait_for_event(page, "share-stopped")
            assert stopped == {"participant_id": ids["therapist"], "role": "therapist"}

            assert (await guardian.call("leave", {}))["ok"]
            left = await wait_for_event(page, "participant-left", participant_id=ids["guardian"])
            assert left == {"participant_id": ids["guardian"], "reason": "left"}

            # Nothing but ids, roles and codes reached the platform's page.
            events = await page.evaluate("window.hostEvents")
            names = {p["name"] for p in consult["participants"]}
            assert not any(name in json.dumps(events) for name in names)
            assert [e["name"] for e in events if e["name"].startswith("share-")] == [
                "share-started",
                "share-stopped",
            ]
            assert problems.messages == []
        finally:
            await context.close()
            await people.close()
