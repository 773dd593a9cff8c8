"""The clinicians' side of the care workflow in Debian's Chromium: a follow-up consult with a
hand-off brief and a check-in whose PHQ-9 item 9 is above 0. The clinicians see the safety
banner (from the join state, then live from `safety-flag`), the brief, the questionnaire trend
and what changed since the previous plan; the client sees none of it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.apiclient import Api
from tests.browser.conftest import PageProblems, new_page
from tests.browser.roomsteps import STEP_MS, client_reaches_lobby, enter, hook_state, hosts_in_room
from tests.conftest import PlatformKey, consult_body, participant

QUESTION = "Is an SSRI reasonable given the sleep problems?"
NEW_QUESTION = "Would sleep restriction come first?"
PHQ9_ITEM9_TWO = [2, 2, 1, 1, 2, 1, 1, 0, 2]  # total 12, moderate; item 9 answered 2
PHQ9_ITEM9_ONE = [1, 1, 1, 1, 1, 1, 1, 0, 1]
GAD7 = [1, 2, 1, 1, 0, 1, 1]


def token_of(consult: dict[str, Any], role: str) -> str:
    fragment = urlsplit(participant(consult, role)["join"]["join_url"]).fragment
    return parse_qs(fragment)["token"][0]


async def follow_up(api: Api, platform: PlatformKey) -> dict[str, Any]:
    """A consult whose plan is saved (ended over the API), and a follow-up of it with a brief."""
    first = await api.call(
        "POST", "/api/v1/consults", bearer=platform.secret, json_body=consult_body()
    )
    assert first.status == 201, first.body
    ended = await api.call(
        "POST", f"/api/v1/consults/{first.body['id']}/end", bearer=platform.secret
    )
    assert ended.status == 200, ended.body
    second = await api.call(
        "POST",
        "/api/v1/consults",
        bearer=platform.secret,
        json_body=consult_body(follows=first.body["id"]),
    )
    assert second.status == 201, second.body
    consult: dict[str, Any] = second.body
    brief = await api.call(
        "PUT",
        f"/api/v1/consults/{consult['id']}/session/brief",
        bearer=token_of(consult, "therapist"),
        json_body={"seen_in_therapy": "Six sessions of CBT", "question": QUESTION},
    )
    assert brief.status in (200, 201), brief.body
    return consult


async def record(api: Api, consult: dict[str, Any], instrument: str, answers: list[int]) -> None:
    answer = await api.call(
        "POST",
        f"/api/v1/consults/{consult['id']}/session/measures",
        bearer=token_of(consult, "client"),
        json_body={"instrument": instrument, "answers": answers},
    )
    assert answer.status == 201, answer.body


async def test_clinicians_see_the_safety_flag_brief_trend_and_changes(
    browser: Browser, origin: str, api: Api, platform: PlatformKey, artifacts: Path
) -> None:
    consult = await follow_up(api, platform)
    await record(api, consult, "phq9", PHQ9_ITEM9_TWO)
    await record(api, consult, "gad7", GAD7)
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
        therapist, psychiatrist = pages["therapist"], pages["psychiatrist"]

        # A late joiner sees the flag from the join state; a new one arrives live.
        for page in (therapist, psychiatrist):
            banner = page.locator("#safety-banner")
            await expect(banner).to_be_visible(timeout=STEP_MS)
            await expect(banner).to_contain_text(
                "PHQ-9 item 9 (thoughts of self-harm) answered 2 (more than half the days)"
            )
        await record(api, consult, "phq9", PHQ9_ITEM9_ONE)
        for page in (therapist, psychiatrist):
            banner = page.locator("#safety-banner")
            # The milder new answer is counted; the worse one still leads.
            await expect(banner).to_contain_text("2 answers flagged", timeout=STEP_MS)
            await expect(banner).to_contain_text("answered 2 (more than half the days)")

        # The psychiatrist reads the therapist's brief.
        await psychiatrist.locator("#notes-tab-brief").click()
        brief = psychiatrist.locator("#notes-panel-brief")
        await expect(brief).to_contain_text(QUESTION, timeout=STEP_MS)
        await expect(brief).to_contain_text("Six sessions of CBT")
        # The therapist saves a new brief: the open tab reads it again (`brief-updated`).
        saved = await api.call(
            "PUT",
            f"/api/v1/consults/{consult['id']}/session/brief",
            bearer=token_of(consult, "therapist"),
            json_body={"seen_in_therapy": "Eight sessions of CBT", "question": NEW_QUESTION},
        )
        assert saved.status in (200, 201), saved.body
        await expect(brief).to_contain_text(NEW_QUESTION, timeout=STEP_MS)
        await expect(brief).to_contain_text("Eight sessions of CBT")
        await expect(brief).not_to_contain_text(QUESTION)

        # History: the trend by date, and the plan against the previous consult's.
        await therapist.locator("#notes-tab-plan").click()
        diagnoses = therapist.locator('.notes-section[data-section="diagnoses"]')
        await diagnoses.locator('[data-action="add"]').click()
        await diagnoses.locator('[data-field="name"]').last.fill("Generalised anxiety disorder")
        await expect(therapist.locator(".notes-status")).to_have_attribute(
            "data-state", "saved", timeout=STEP_MS
        )
        await psychiatrist.locator("#notes-tab-history").click()
        history = psychiatrist.locator("#notes-panel-history")
        trend = history.locator(".care-trend")
        await expect(trend).to_be_visible(timeout=STEP_MS)
        await expect(trend.locator("thead")).to_contain_text("PHQ-9")
        await expect(trend.locator("thead")).to_contain_text("GAD-7")
        # One row for today: the day's latest PHQ-9 (8, not the earlier 12) and the GAD-7.
        await expect(trend.locator("tbody td")).to_have_text(["8 · mild", "7 · mild"])
        await expect(history.locator(".care-changes")).to_have_attribute("data-state", "follow-up")
        await expect(history.locator(".care-changes-list")).to_contain_text(
            "Diagnoses · Generalised anxiety disorder: added"
        )
        await psychiatrist.screenshot(path=artifacts / "room-care-psychiatrist.png")

        # The client: consent, lobby, admitted; no banner, no care tabs, no clinicians' tab.
        context, client = await new_page(browser, origin, problems, "client")
        contexts.append(context)
        await client.goto(participant(consult, "client")["join"]["join_url"])
        await enter(client)
        await client_reaches_lobby(client)
        waiting = therapist.locator(
            f'#lobby-list [data-participant-id="{participant(consult, "client")["id"]}"]'
        )
        await waiting.locator('[data-action="admit"]').click()
        await expect(client.locator("#room")).to_be_visible(timeout=STEP_MS)
        await expect(client.locator("#notes-panel")).to_be_visible(timeout=STEP_MS)
        await expect(client.locator("#safety-banner")).to_be_hidden()
        for tab in ("brief", "history", "clinicians"):
            await expect(client.locator(f"#notes-tab-{tab}")).to_have_count(0)
        assert (await client.evaluate("window.triadDebug.state()"))["safetyFlags"] == []
        assert QUESTION not in await client.content()

        # The end: the saved plan's monitoring section lists this consult's check-in scores.
        await psychiatrist.locator("#end").click()
        await psychiatrist.locator('#confirm-dialog [data-action="confirm"]').click()
        for page in (client, psychiatrist):
            saved = page.locator("#saved-plan")
            await expect(saved).to_have_attribute("data-state", "shown", timeout=STEP_MS)
            monitoring = saved.locator('[data-section="Monitoring"]')
            await expect(monitoring).to_contain_text("PHQ-9 check-in: 8 (mild)")
            await expect(monitoring).to_contain_text("GAD-7 check-in: 7 (mild)")
        await client.screenshot(path=artifacts / "plan-saved-follow-up-client.png", full_page=True)
        assert problems.messages == []
    finally:
        await asyncio.gather(*(c.close() for c in contexts))


async def test_without_a_brief_the_tab_says_so(
    browser: Browser, origin: str, consult: dict[str, Any]
) -> None:
    # The server answers 404 brief_not_found, which Chromium logs as a failed resource.
    problems = PageProblems(("/session/brief",))
    context, page = await new_page(browser, origin, problems, "psychiatrist")
    try:
        await page.goto(participant(consult, "psychiatrist")["join"]["join_url"])
        await enter(page)
        await expect(page.locator("#room")).to_be_visible(timeout=STEP_MS)
        await page.locator("#notes-tab-brief").click()
        brief = page.locator("#notes-panel-brief")
        await expect(brief).to_have_attribute("data-state", "brief_not_found", timeout=STEP_MS)
        await expect(brief).to_contain_text("No brief attached to this consult.")
        await page.locator("#notes-tab-history").click()
        history = page.locator("#notes-panel-history")
        await expect(history.locator(".care-changes")).to_have_attribute(
            "data-state", "first", timeout=STEP_MS
        )
        await expect(history.locator(".care-measures")).to_contain_text(
            "No questionnaires recorded yet."
        )
        assert problems.messages == []
    finally:
        await context.close()


async def consent(api: Api, consult: dict[str, Any]) -> None:
    """The client consents over REST, with the wording the server shows."""
    path = f"/api/v1/consults/{consult['id']}/session/consent"
    wording = await api.call("GET", path, bearer=token_of(consult, "client"))
    assert wording.status == 200, wording.body
    given = await api.call(
        "POST",
        path,
        bearer=token_of(consult, "client"),
        json_body={
            "wording_version": wording.body["wording"]["version"],
            "scopes": ["session", "information_sharing"],
        },
    )
    assert given.status == 201, given.body


async def test_a_withdrawal_closes_the_clinicians_notes_and_the_brief(
    browser: Browser, origin: str, api: Api, platform: PlatformKey
) -> None:
    consult = await follow_up(api, platform)
    await consent(api, consult)
    # The psychiatrist's brief is refused 403 consent_withdrawn, which Chromium logs.
    problems = PageProblems(("/session/brief",))
    contexts, pages = await hosts_in_room(browser, origin, consult, problems)
    try:
        therapist, psychiatrist = pages["therapist"], pages["psychiatrist"]
        await therapist.locator("#notes-tab-clinicians").click()
        notes = therapist.locator("#notes-panel-clinicians textarea")
        await notes.fill("Before the withdrawal")
        await expect(therapist.locator(".notes-status")).to_have_attribute(
            "data-state", "saved", timeout=STEP_MS
        )

        withdrawn = await api.call(
            "POST",
            f"/api/v1/consults/{consult['id']}/session/consent/withdraw",
            bearer=token_of(consult, "client"),
            json_body={"scopes": ["information_sharing"]},
        )
        assert withdrawn.status == 200, withdrawn.body
        for page in (therapist, psychiatrist):
            await expect(page.locator("#room-notice")).to_contain_text(
                "withdrew consent", timeout=STEP_MS
            )
            panel = page.locator("#notes-panel-clinicians")
            await expect(panel).to_have_attribute("data-closed", "true")
            await expect(panel.locator("textarea")).to_have_count(0)
            await expect(panel.locator(".notes-prose")).to_have_text("Before the withdrawal")
        await psychiatrist.locator("#notes-tab-brief").click()
        brief = psychiatrist.locator("#notes-panel-brief")
        await expect(brief).to_have_attribute("data-state", "consent_withdrawn", timeout=STEP_MS)
        await expect(brief).not_to_contain_text(QUESTION)
        assert (await hook_state(therapist))["errors"] == []
        assert problems.messages == []
    finally:
        await asyncio.gather(*(c.close() for c in contexts))
