"""One consult in Debian's Chromium, step by step (the tests of this module run in order and
share the server, the browser and the three pages; a step after a failed one is skipped):

1. the client, therapist and psychiatrist open their links; the client consents and waits in the
   lobby; the therapist admits; every page plays the two others' video and audio;
2. the clinicians type into the same plan section at once and every page converges; the client
   writes a question; the clinicians' private notes never reach the client's page;
3. the psychiatrist mutes and the others see it; the therapist leaves and rejoins, and video plays
   again;
4. the therapist's network drops: the page says so, keeps the edits made meanwhile, reconnects
   by itself and sends them;
5. the psychiatrist ends the consult: every page shows the saved plan, which the REST API returns
   with the typed text; the client downloads it as Markdown.

Every wait has a deadline (Playwright's expect / wait_for_function), never a fixed sleep. The
pages' test hook is `window.triadDebug` (docs/web.md)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, WebSocket, WebSocketRoute, expect

from tests.browser.conftest import LiveApp, PageProblems, new_page
from tests.browser.roomsteps import (
    AUDIO_ARRIVING,
    FRAMES_ADVANCED,
    ROLES,
    STEP_MS,
    TWO_REMOTES_PLAYING,
    client_reaches_lobby,
    enter,
    hook_state,
    wait_for,
)
from tests.conftest import participant

pytestmark = pytest.mark.asyncio(loop_scope="module")

SECRET = "Clinicians-only 7f3a: consider a second opinion"
THERAPIST_TYPES = "Low mood since spring, sleeping badly."
PSYCHIATRIST_TYPES = "No psychotic features; appetite reduced."
CLIENT_QUESTION = "Will the medication make me drowsy?"
OFFLINE_TEXT = "Behavioural activation, typed while offline"
FOLLOW_UP = "in four weeks"
SAFETY_TEXT = "No current risk; plan agreed."
DIAGNOSIS = "Major depressive disorder"
MEASURED = re.compile(r"^(good|fair|poor)$")


def section(page: Page, doc: str, key: str) -> Any:
    return page.locator(f'.notes-section[data-doc="{doc}"][data-section="{key}"]')


@dataclass
class NetworkSwitch:
    """The therapist page's Socket.IO connection through Playwright's WebSocket routing: `cut()`
    drops it as a lost network does (both ends close, so the server sees it at once), and
    refuses new connections until `restore()`."""

    online: bool = True
    routes: list[tuple[WebSocketRoute, WebSocketRoute]] = field(default_factory=list)

    async def handle(self, route: WebSocketRoute) -> None:
        if not self.online:
            await route.close(code=1011, reason="offline")
            return
        self.routes.append((route, route.connect_to_server()))

    async def cut(self) -> None:
        self.online = False
        routes, self.routes = self.routes, []
        for page_side, server_side in routes:
            await server_side.close(code=1011, reason="network lost")
            await page_side.close(code=1011, reason="network lost")

    def restore(self) -> None:
        self.online = True


@dataclass
class Consult:
    live: LiveApp
    body: dict[str, Any]
    problems: PageProblems = field(default_factory=PageProblems)
    pages: dict[str, Page] = field(default_factory=dict)
    contexts: list[BrowserContext] = field(default_factory=list)
    client_frames: list[str | bytes] = field(default_factory=list)
    network: NetworkSwitch = field(default_factory=NetworkSwitch)
    broken: bool = False

    def id(self, role: str) -> str:
        value: str = participant(self.body, role)["id"]
        return value

    def name(self, role: str) -> str:
        value: str = participant(self.body, role)["name"]
        return value

    def tile(self, page: Page, role: str) -> Any:
        return page.locator(f'.tile[data-participant-id="{self.id(role)}"]')

    @asynccontextmanager
    async def step(self) -> AsyncIterator[None]:
        if self.broken:
            pytest.skip("an earlier step of this consult failed")
        try:
            yield
            assert self.problems.messages == [], self.problems.messages
        except BaseException:
            self.broken = True
            raise


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def consult(live_app: LiveApp, module_browser: Browser) -> AsyncIterator[Consult]:
    state = Consult(live_app, await live_app.new_consult())
    try:
        yield state
    finally:
        state.network.restore()
        # A bounded teardown: a page stuck after a failed step must not hang the run.
        await asyncio.wait_for(asyncio.gather(*(c.close() for c in state.contexts)), 30)


def keep_frames(frames: list[str | bytes]) -> Callable[[WebSocket], None]:
    def on_socket(socket: WebSocket) -> None:
        socket.on("framereceived", lambda payload: frames.append(payload))

    return on_socket


async def test_three_pages_meet_after_consent_and_admission(
    consult: Consult, module_browser: Browser, artifacts: Path
) -> None:
    async with consult.step():
        for role in ROLES:
            context, page = await new_page(
                module_browser,
                consult.live.origin,
                consult.problems,
                role,
                viewport={"width": 1280, "height": 860},
            )
            consult.contexts.append(context)
            consult.pages[role] = page
            if role == "client":
                page.on("websocket", keep_frames(consult.client_frames))
            if role == "therapist":
                await page.route_web_socket("**/socket.io/**", consult.network.handle)
            await page.goto(participant(consult.body, role)["join"]["join_url"])
            await expect(page.locator("#you-name")).to_have_text(
                consult.name(role), timeout=STEP_MS
            )

        client, therapist, psychiatrist = (consult.pages[r] for r in ROLES)
        for host in (therapist, psychiatrist):
            await enter(host)
            await expect(host.locator("#room")).to_be_visible(timeout=STEP_MS)

        await enter(client)
        await client_reaches_lobby(client)
        waiting = therapist.locator(f'#lobby-list [data-participant-id="{consult.id("client")}"]')
        await expect(waiting).to_contain_text(consult.name("client"), timeout=STEP_MS)
        if await waiting.get_attribute("data-consent") is not None:  # the server says
            await expect(waiting).to_have_attribute("data-consent", "true")
            await expect(waiting.locator(".lobby-consent")).to_have_text("Consent given")
        await therapist.screenshot(path=artifacts / "room-lobby-therapist.png")
        await waiting.locator('[data-action="admit"]').click()
        await expect(client.locator("#room")).to_be_visible(timeout=STEP_MS)
        await expect(therapist.locator("#host-lobby")).to_be_hidden(timeout=STEP_MS)

        for role, page in consult.pages.items():
            for other in ROLES:
                tile = consult.tile(page, other)
                await expect(tile).to_have_attribute("data-role", other, timeout=STEP_MS)
                await expect(tile.locator(".tile-name")).to_have_text(consult.name(other))
            await expect(page.locator(".tile")).to_have_count(3)
            await wait_for(page, TWO_REMOTES_PLAYING)
            before = await page.evaluate("window.triadDebug.remoteVideos()")
            await wait_for(page, FRAMES_ADVANCED, before)
            others = [consult.id(r) for r in ROLES if r != role]
            await wait_for(page, AUDIO_ARRIVING, others)
            # Connection quality measured from getStats for the others and for yourself.
            for other in ROLES:
                await expect(consult.tile(page, other)).to_have_attribute(
                    "data-quality", MEASURED, timeout=STEP_MS
                )
            # Only hosts may remove, and never themselves.
            removable = 2 if role != "client" else 0
            await expect(page.locator('.tile [data-action="remove"]')).to_have_count(removable)
            assert (await hook_state(page))["errors"] == []

        # The notes are synced on every page; only the hosts have the clinicians' tab.
        for role, page in consult.pages.items():
            await wait_for(page, "() => window.triadDebug.state().notes?.docs.plan.synced")
            tabs = page.locator("#notes-tab-clinicians")
            await expect(tabs).to_have_count(0 if role == "client" else 1)
        await therapist.screenshot(path=artifacts / "room-three-way-therapist.png")
        await client.screenshot(path=artifacts / "room-three-way-client.png")
        # A phone: the tiles, the controls and the notes in one column, nothing wider.
        await client.set_viewport_size({"width": 360, "height": 780})
        await expect(consult.tile(client, "therapist")).to_be_visible()
        assert await client.evaluate("document.documentElement.scrollWidth") <= 360
        await expect(client.locator("#toggle-audio")).to_be_in_viewport()
        await client.screenshot(path=artifacts / "room-three-way-client-phone.png", full_page=True)
        await client.set_viewport_size({"width": 1280, "height": 860})


async def test_clinicians_type_at_once_and_every_page_converges(
    consult: Consult, artifacts: Path
) -> None:
    async with consult.step():
        client, therapist, psychiatrist = (consult.pages[r] for r in ROLES)
        t_summary = section(therapist, "plan", "summary").locator("textarea")
        p_summary = section(psychiatrist, "plan", "summary").locator("textarea")
        await t_summary.click()
        await p_summary.click()
        await asyncio.gather(
            t_summary.press_sequentially(THERAPIST_TYPES),
            p_summary.press_sequentially(PSYCHIATRIST_TYPES),
        )

        # Each person's run of characters stays whole, in one text, on all three pages.
        converged = """
        ([a, b]) => {
          const notes = window.triadDebug.state().notes;
          const text = notes && notes.docs.plan.content.summary;
          return notes.pending === 0 && typeof text === "string"
            && text.includes(a) && text.includes(b);
        }
        """
        for page in consult.pages.values():
            await wait_for(page, converged, [THERAPIST_TYPES, PSYCHIATRIST_TYPES])
        summaries = {
            role: (await hook_state(page))["notes"]["docs"]["plan"]["content"]["summary"]
            for role, page in consult.pages.items()
        }
        assert len(set(summaries.values())) == 1, summaries
        text = summaries["client"]
        assert len(text) == len(THERAPIST_TYPES) + len(PSYCHIATRIST_TYPES), text
        assert await t_summary.input_value() == text
        assert await p_summary.input_value() == text
        # The client reads the plan live, as text.
        await expect(section(client, "plan", "summary").locator(".notes-prose")).to_have_text(text)
        await expect(section(client, "plan", "summary").locator("textarea")).to_have_count(0)

        # Presence: the psychiatrist is still in the summary; the others see who and where.
        chip = f'.presence-chip[data-participant-id="{consult.id("psychiatrist")}"]'
        for page in (therapist, client):
            await expect(section(page, "plan", "summary").locator(chip)).to_contain_text(
                consult.name("psychiatrist"), timeout=STEP_MS
            )
        await expect(section(therapist, "plan", "summary").locator(".caret-marker")).to_have_count(
            1
        )
        await section(therapist, "plan", "summary").screenshot(
            path=artifacts / "room-notes-presence-therapist.png"
        )

        # Lists: the therapist adds a diagnosis, the psychiatrist a medication.
        diagnoses = section(therapist, "plan", "diagnoses")
        await diagnoses.locator('[data-action="add"]').click()
        await diagnoses.locator('[data-field="name"]').last.fill(DIAGNOSIS)
        await diagnoses.locator('[data-field="icd10"]').last.fill("F32.1")
        medications = section(psychiatrist, "plan", "medications")
        await medications.locator('[data-action="add"]').click()
        await medications.locator('[data-field="name"]').last.fill("Sertraline")
        await medications.locator('[data-field="dose"]').last.fill("50 mg")
        await medications.locator('[data-field="action"]').last.select_option("start")
        await expect(section(client, "plan", "diagnoses")).to_contain_text(
            "Major depressive disorder · F32.1 · provisional", timeout=STEP_MS
        )
        await expect(
            section(psychiatrist, "plan", "diagnoses").locator('[data-field="icd10"]')
        ).to_have_value("F32.1", timeout=STEP_MS)
        await expect(section(client, "plan", "medications")).to_contain_text(
            "Sertraline · 50 mg · start", timeout=STEP_MS
        )

        # The client writes a question; the clinicians see it (read-only for them).
        await client.locator("#notes-tab-client").click()
        questions = section(client, "client", "questions")
        await questions.locator('[data-action="add"]').click()
        await questions.locator("input").last.press_sequentially(CLIENT_QUESTION)
        await therapist.locator("#notes-tab-client").click()
        await expect(section(therapist, "client", "questions")).to_contain_text(
            CLIENT_QUESTION, timeout=STEP_MS
        )

        # Keystrokes are coalesced: 29 edits in one task leave as one notes-update.
        safety = section(therapist, "plan", "safety").locator("textarea")
        await wait_for(therapist, "() => window.triadDebug.state().notes.pending === 0")
        sent_before = (await hook_state(therapist))["notes"]["counters"]["updatesSent"]
        await safety.evaluate(
            """(area, text) => {
              for (const ch of text) {
                area.value += ch;
                area.dispatchEvent(new InputEvent("input", {inputType: "insertText", data: ch}));
              }
            }""",
            SAFETY_TEXT,
        )
        await wait_for(therapist, "() => window.triadDebug.state().notes.pending === 0")
        counters = (await hook_state(therapist))["notes"]["counters"]
        assert counters["updatesSent"] == sent_before + 1, counters
        await expect(section(client, "plan", "safety")).to_contain_text(
            SAFETY_TEXT, timeout=STEP_MS
        )

        # The clinicians' private notes: between the two of them only.
        await therapist.locator("#notes-tab-clinicians").click()
        await section(therapist, "clinicians", "notes").locator("textarea").fill(SECRET)
        await psychiatrist.locator("#notes-tab-clinicians").click()
        await expect(
            section(psychiatrist, "clinicians", "notes").locator("textarea")
        ).to_have_value(SECRET, timeout=STEP_MS)
        await therapist.locator("#notes-tab-plan").click()
        await therapist.screenshot(path=artifacts / "room-notes-therapist.png")
        await therapist.set_viewport_size({"width": 360, "height": 780})
        assert await therapist.evaluate("document.documentElement.scrollWidth") <= 360
        await section(therapist, "plan", "medications").scroll_into_view_if_needed()
        await therapist.screenshot(path=artifacts / "room-notes-therapist-phone.png")
        await therapist.set_viewport_size({"width": 1280, "height": 860})
        await client.locator("#notes-tab-plan").click()
        await client.screenshot(path=artifacts / "room-notes-client.png")
        assert_client_never_saw_clinicians(consult)
        assert SECRET not in await client.content()


def assert_client_never_saw_clinicians(consult: Consult) -> None:
    """Not a byte of `clinicians` in what the client's page received: no sync, update or
    awareness for it, and not the notes' text."""
    secret = SECRET.encode()
    # The capture sees the plan's bytes (a diagnosis filled in at once travels as one string),
    # so it would see the clinicians' too.
    assert any(DIAGNOSIS.encode() in raw(frame) for frame in consult.client_frames)
    for frame in consult.client_frames:
        assert secret not in raw(frame)
        assert b'"clinicians"' not in raw(frame), raw(frame)[:200]


def raw(frame: str | bytes) -> bytes:
    return frame if isinstance(frame, bytes) else frame.encode()


async def test_mute_shows_elsewhere_and_a_rejoin_restores_video(consult: Consult) -> None:
    async with consult.step():
        client, therapist, psychiatrist = (consult.pages[r] for r in ROLES)
        mute = psychiatrist.locator("#toggle-audio")
        await mute.click()
        await expect(mute).to_have_attribute("aria-pressed", "true")
        for page in (therapist, client):
            tile = consult.tile(page, "psychiatrist")
            await expect(tile.locator(".badge-muted")).to_be_visible(timeout=STEP_MS)
            await expect(tile).to_have_attribute("data-audio", "off")

        # The last keystroke and Leave in one task (before the 50 ms batch would go): leaving
        # sends it first.
        await (
            section(therapist, "plan", "follow_up")
            .locator('[data-field="when"]')
            .evaluate(
                """(field) => {
              field.value = FOLLOW_UP;
              field.dispatchEvent(new InputEvent("input", {inputType: "insertText"}));
              document.getElementById("leave").click();
            }""".replace("FOLLOW_UP", json.dumps(FOLLOW_UP))
            )
        )
        await expect(therapist.locator("#finished-heading")).to_have_text("You left the consult")
        await expect(
            section(psychiatrist, "plan", "follow_up").locator('[data-field="when"]')
        ).to_have_value(FOLLOW_UP, timeout=STEP_MS)
        for page in (client, psychiatrist):
            await expect(consult.tile(page, "therapist")).to_have_count(0, timeout=STEP_MS)
        await therapist.locator("#rejoin").click()
        await enter(therapist)
        await expect(therapist.locator("#room")).to_be_visible(timeout=STEP_MS)
        await wait_for(therapist, TWO_REMOTES_PLAYING)
        before = await therapist.evaluate("window.triadDebug.remoteVideos()")
        await wait_for(therapist, FRAMES_ADVANCED, before)
        for page in (client, psychiatrist):
            await expect(consult.tile(page, "therapist")).to_have_count(1, timeout=STEP_MS)
            await wait_for(page, TWO_REMOTES_PLAYING)
            before = await page.evaluate("window.triadDebug.remoteVideos()")
            await wait_for(page, FRAMES_ADVANCED, before)
        # The rejoined page has the plan again, and still sees the psychiatrist muted.
        await expect(section(therapist, "plan", "summary").locator("textarea")).to_have_value(
            (await hook_state(client))["notes"]["docs"]["plan"]["content"]["summary"],
            timeout=STEP_MS,
        )
        await expect(consult.tile(therapist, "psychiatrist")).to_have_attribute("data-audio", "off")


async def test_edits_made_offline_are_sent_on_reconnect(consult: Consult) -> None:
    async with consult.step():
        client, therapist, psychiatrist = (consult.pages[r] for r in ROLES)
        pc_before = (await hook_state(therapist))["pc"]
        await consult.network.cut()
        await expect(therapist.locator("#banner")).to_contain_text("Reconnecting", timeout=STEP_MS)
        await expect(consult.tile(psychiatrist, "therapist")).to_have_attribute(
            "data-connected", "false", timeout=STEP_MS
        )

        focus = section(therapist, "plan", "therapy_focus").locator("textarea")
        await focus.click()
        await focus.press_sequentially(OFFLINE_TEXT)
        await expect(therapist.locator(".notes-status")).to_have_attribute("data-state", "offline")
        state = await hook_state(therapist)
        assert state["notes"]["online"] is False, state["notes"]
        assert state["notes"]["pending"] > 0, state["notes"]

        consult.network.restore()
        await expect(therapist.locator("#banner")).to_be_hidden(timeout=STEP_MS)
        await wait_for(therapist, "() => window.triadDebug.state().notes.pending === 0")
        for page in (client, psychiatrist):
            await wait_for(
                page,
                "(t) => window.triadDebug.state().notes.docs.plan.content.therapy_focus === t",
                OFFLINE_TEXT,
            )
            await expect(consult.tile(page, "therapist")).to_have_attribute(
                "data-connected", "true"
            )
        # The server gave the returning page a new peer connection; video plays on it.
        assert (await hook_state(therapist))["pc"] > pc_before
        await wait_for(therapist, TWO_REMOTES_PLAYING)
        before = await therapist.evaluate("window.triadDebug.remoteVideos()")
        await wait_for(therapist, FRAMES_ADVANCED, before)


async def test_the_end_shows_everyone_the_saved_plan(consult: Consult, artifacts: Path) -> None:
    async with consult.step():
        client, therapist, psychiatrist = (consult.pages[r] for r in ROLES)
        summary = (await hook_state(client))["notes"]["docs"]["plan"]["content"]["summary"]

        await psychiatrist.locator("#end").click()
        dialog = psychiatrist.locator("#confirm-dialog")
        await expect(dialog).to_be_visible()
        await expect(dialog).to_contain_text("End the consult for everyone?")
        await dialog.locator('[data-action="confirm"]').click()

        plan_ids = set()
        for role, page in consult.pages.items():
            await expect(page.locator("#finished-heading")).to_have_text(
                "The consult has ended", timeout=STEP_MS
            )
            saved = page.locator("#saved-plan")
            await expect(saved).to_have_attribute("data-state", "shown", timeout=STEP_MS)
            await expect(saved).to_contain_text(summary)
            await expect(saved).to_contain_text("Major depressive disorder (F32.1)")
            await expect(saved).to_contain_text(CLIENT_QUESTION)
            await expect(saved).to_contain_text(OFFLINE_TEXT)
            plan_ids.add(await saved.get_attribute("data-plan-id"))
            if role == "client":
                await expect(saved.locator("h2")).to_have_text("Your treatment plan")
                assert SECRET not in await page.content()
            else:
                await expect(saved.locator("h2")).to_have_text("Saved plan · version 1")
                await expect(saved.locator(".plan-private")).to_contain_text(SECRET)
        assert len(plan_ids) == 1, plan_ids
        assert None not in plan_ids
        assert_client_never_saw_clinicians(consult)

        await client.set_viewport_size({"width": 390, "height": 844})
        await client.screenshot(path=artifacts / "room-ended-client-phone.png", full_page=True)
        await therapist.screenshot(path=artifacts / "room-ended-therapist.png", full_page=True)

        async with client.expect_download() as download_info:
            await client.locator("#download-plan").click()
        download = await download_info.value
        # The Markdown escapes punctuation typed in the consult (`\.`); read it as written.
        saved_file = await download.path()
        markdown = re.sub(r"\\(.)", r"\1", await asyncio.to_thread(Path(saved_file).read_text))
        assert markdown.startswith("# Treatment plan")
        assert summary in markdown
        assert CLIENT_QUESTION in markdown
        assert SECRET not in markdown

        live = consult.live
        answer = await live.api.call(
            "GET", f"/api/v1/consults/{consult.body['id']}/plan", bearer=live.platform.secret
        )
        assert answer.status == 200, answer.body
        content = answer.body["content"]
        assert content["summary"] == summary
        assert THERAPIST_TYPES in content["summary"]
        assert PSYCHIATRIST_TYPES in content["summary"]
        assert content["therapy"]["focus"] == OFFLINE_TEXT
        assert content["safety"] == SAFETY_TEXT
        assert [d["icd10"] for d in content["diagnoses"]] == ["F32.1"]
        assert [(m["name"], m["dose"], m["action"]) for m in content["medications"]] == [
            ("Sertraline", "50 mg", "start")
        ]
        assert content["client"]["questions"] == [CLIENT_QUESTION]
        assert content["follow_up"]["when"] == FOLLOW_UP
        assert SECRET not in json.dumps(answer.body)
