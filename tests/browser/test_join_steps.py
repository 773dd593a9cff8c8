"""The steps before the room in Debian's Chromium, on a phone-sized screen: the client's consent
(the server's wording and version, both boxes needed, shown again on return and withdrawable),
the optional PHQ-9 / GAD-7 check-in with the band shown back, and same-room mode (a therapist
with the client beside them attests the client's spoken consent). What the page says is checked
against what the REST API has on record."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.apiclient import Api
from tests.browser.conftest import PageProblems, new_page
from tests.conftest import PlatformKey, participant

STEP_MS = 20_000
PHONE = {"width": 360, "height": 740}
# Answers the room expects (a consult without a hand-off brief), logged by Chromium as errors.
EXPECTED_FAILURES = ("/session/brief",)

# PHQ-9 totalling 5 (mild) with item 9 answered "Several days"; GAD-7 totalling 10 (moderate).
PHQ9 = [1, 1, 1, 1, 0, 0, 0, 0, 1]
GAD7 = [2, 2, 2, 2, 2, 0, 0]

NO_SIDEWAYS_SCROLL = "() => document.documentElement.scrollWidth <= window.innerWidth"


async def open_link(page: Page, consult: dict[str, Any], role: str) -> None:
    await page.goto(participant(consult, role)["join"]["join_url"])
    await expect(page.locator("#enter")).to_be_enabled(timeout=STEP_MS)


async def session_get(api: Api, consult: dict[str, Any], role: str, path: str) -> Any:
    token = participant(consult, role)["join"]["token"]
    answer = await api.call("GET", f"/api/v1/consults/{consult['id']}/session{path}", bearer=token)
    assert answer.status == 200, answer.body
    return answer.body


async def answer_questions(page: Page, instrument: str, answers: list[int]) -> None:
    for item, value in enumerate(answers, start=1):
        await page.locator(f'input[name="{instrument}-{item}"][value="{value}"]').check()


@pytest.mark.timeout(120)
async def test_the_client_consents_checks_in_and_can_withdraw(
    browser: Browser, origin: str, consult: dict[str, Any], api: Api, artifacts: Path
) -> None:
    problems = PageProblems(EXPECTED_FAILURES)
    context, page = await new_page(browser, origin, problems, "client", viewport=PHONE)
    try:
        await open_link(page, consult, "client")
        assert await page.locator("#consent-status").is_hidden()  # nothing on record yet
        await page.locator("#enter").click()

        # The consent step shows the server's wording and version.
        form = page.locator("#consent-form")
        await expect(form).to_be_visible(timeout=STEP_MS)
        consent = await session_get(api, consult, "client", "/consent")
        assert consent["records"] == []
        texts = {s["scope"]: s["text"] for s in consent["wording"]["scopes"]}
        await expect(form.locator("#consent-heading")).to_have_text("Your consent")
        for name, scope in (
            ("consent-session", "session"),
            ("consent-sharing", "information_sharing"),
        ):
            label = form.locator("label", has=page.locator(f'input[name="{name}"]'))
            await expect(label).to_have_text(texts[scope])
        await expect(page.locator("#consent-version")).to_have_text(consent["wording"]["version"])
        assert await page.evaluate(NO_SIDEWAYS_SCROLL)
        await page.screenshot(path=artifacts / "consent-client-phone.png", full_page=True)

        # One box is not enough: the page says so and records nothing.
        await page.locator('input[name="consent-session"]').check()
        await page.locator("#consent-submit").click()
        await expect(page.locator("#consent-error")).to_contain_text("Both are needed")
        assert (await session_get(api, consult, "client", "/consent"))["records"] == []

        await page.locator('input[name="consent-sharing"]').check()
        await page.locator("#consent-submit").click()

        # The check-in: a half-answered questionnaire is refused on the page; then both.
        checkin = page.locator("#checkin")
        await expect(checkin).to_be_visible(timeout=STEP_MS)
        recorded = await session_get(api, consult, "client", "/consent")
        assert recorded["complete"] is True
        assert {r["scope"] for r in recorded["records"]} == {"session", "information_sharing"}
        assert all(r["attested_by"] is None for r in recorded["records"])
        await expect(checkin.locator('[data-instrument="phq9"] .item')).to_have_count(9)
        await expect(checkin.locator('[data-instrument="gad7"] .item')).to_have_count(7)
        await expect(checkin.locator('[data-item="1"] .answer').first).to_have_text("Not at all")
        await answer_questions(page, "phq9", PHQ9[:4])
        await page.locator("#checkin-submit").click()
        await expect(page.locator("#checkin-error")).to_contain_text("answer every question")
        await answer_questions(page, "phq9", PHQ9)
        await answer_questions(page, "gad7", GAD7)
        assert await page.evaluate(NO_SIDEWAYS_SCROLL)
        await page.screenshot(path=artifacts / "checkin-client-phone.png", full_page=True)
        await page.locator("#checkin-submit").click()

        # The bands come back from the server; item 9 brings a note of where to get help.
        scores = page.locator("#checkin-scores")
        await expect(scores.locator('[data-instrument="phq9"]')).to_have_text(
            "Mood (PHQ-9): 5 of 27, mild", timeout=STEP_MS
        )
        await expect(scores.locator('[data-instrument="gad7"]')).to_have_text(
            "Anxiety (GAD-7): 10 of 21, moderate"
        )
        await expect(page.locator("#checkin-safety")).to_be_visible()
        measures = (await session_get(api, consult, "client", "/measures"))["measures"]
        assert [(m["instrument"], m["answers"]) for m in measures] == [
            ("phq9", PHQ9),
            ("gad7", GAD7),
        ]
        await page.screenshot(path=artifacts / "checkin-result-phone.png", full_page=True)
        await page.locator("#checkin-continue").click()
        await expect(page.locator("#lobby-wait")).to_be_visible(timeout=STEP_MS)

        # Back on the page later: the consent on record is shown, and no step is asked again.
        await page.reload()
        await expect(page.locator("#enter")).to_be_enabled(timeout=STEP_MS)
        status = page.locator("#consent-status")
        await expect(status.locator('li[data-state="given"]')).to_have_count(2, timeout=STEP_MS)
        await page.locator("#enter").click()
        await expect(page.locator("#lobby-wait")).to_be_visible(timeout=STEP_MS)

        # Withdrawal from the small link: the sharing scope only.
        await page.reload()
        await expect(page.locator("#enter")).to_be_enabled(timeout=STEP_MS)
        await status.locator("summary").click()
        await status.locator('input[name="withdraw-scope"][value="information_sharing"]').check()
        await status.locator('[data-action="withdraw"]').click()
        await expect(status.locator('li[data-scope="information_sharing"]')).to_have_attribute(
            "data-state", "withdrawn", timeout=STEP_MS
        )
        await expect(status.locator('li[data-scope="session"]')).to_have_attribute(
            "data-state", "given"
        )
        after = await session_get(api, consult, "client", "/consent")
        assert after["complete"] is False
        withdrawn = {r["scope"]: r["withdrawn_at"] for r in after["records"]}
        assert withdrawn["information_sharing"] is not None
        assert withdrawn["session"] is None
        assert await page.evaluate(NO_SIDEWAYS_SCROLL)
        await page.screenshot(path=artifacts / "consent-withdrawn-phone.png", full_page=True)

        # Entering now asks for consent again.
        await page.locator("#enter").click()
        await expect(page.locator("#consent-form")).to_be_visible(timeout=STEP_MS)
        assert problems.messages == []
    finally:
        await context.close()


@pytest.mark.timeout(120)
async def test_a_therapist_with_the_client_beside_them_attests_spoken_consent(
    browser: Browser,
    origin: str,
    consult: dict[str, Any],
    api: Api,
    platform: PlatformKey,
    artifacts: Path,
) -> None:
    problems = PageProblems(EXPECTED_FAILURES)
    contexts: list[BrowserContext] = []
    ids = {role: participant(consult, role)["id"] for role in ("client", "therapist")}
    client_name = participant(consult, "client")["name"]
    try:
        context, therapist = await new_page(browser, origin, problems, "therapist", viewport=PHONE)
        contexts.append(context)
        await open_link(therapist, consult, "therapist")

        # The device check lists the others of the consult; ticking the client is recorded.
        choices = therapist.locator('input[name="present-with"]')
        await expect(choices).to_have_count(2)
        await therapist.locator(f'input[name="present-with"][value="{ids["client"]}"]').check()
        await expect(therapist.locator("#present-with-note")).to_have_text(
            f"Saved: {client_name} is with you.", timeout=STEP_MS
        )
        assert await therapist.evaluate(NO_SIDEWAYS_SCROLL)
        await therapist.screenshot(
            path=artifacts / "present-with-therapist-phone.png", full_page=True
        )
        # The client confirms it from their own link: the therapist's word alone would not let
        # them attest the client's consent (docs/api.md, same-room mode).
        confirmed = await api.call(
            "POST",
            f"/api/v1/consults/{consult['id']}/session/present-with/confirmations",
            bearer=participant(consult, "client")["join"]["token"],
            json_body={"declarer_id": ids["therapist"], "participant_id": ids["client"]},
        )
        assert confirmed.status == 200, confirmed.body

        # Enter: the consent step in its attest form.
        await therapist.locator("#enter").click()
        form = therapist.locator("#consent-form")
        await expect(form).to_be_visible(timeout=STEP_MS)
        await expect(form.locator("#consent-heading")).to_contain_text("spoken consent")
        await expect(therapist.locator("#consent-submit")).to_have_text(
            "I confirm the client gave spoken consent"
        )
        await expect(therapist.locator("#consent-intro")).to_contain_text(client_name)
        await therapist.locator('input[name="consent-session"]').check()
        await therapist.locator('input[name="consent-sharing"]').check()
        await therapist.locator("#consent-submit").click()

        # The check-in is offered for the client; skipped here, and the room follows.
        await expect(therapist.locator("#checkin")).to_be_visible(timeout=STEP_MS)
        await expect(therapist.locator("#checkin-intro")).to_contain_text(client_name)
        await therapist.locator("#checkin-skip").click()
        await expect(therapist.locator("#room")).to_be_visible(timeout=STEP_MS)

        answer = await api.call(
            "GET", f"/api/v1/consults/{consult['id']}/consent", bearer=platform.secret
        )
        assert answer.body["complete"] is True
        assert {r["attested_by"] for r in answer.body["records"]} == {ids["therapist"]}
        assert {r["given_by"] for r in answer.body["records"]} == {ids["client"]}

        # The psychiatrist, alone at their device, goes straight in: no consent step for them.
        context, psychiatrist = await new_page(browser, origin, problems, "psychiatrist")
        contexts.append(context)
        await open_link(psychiatrist, consult, "psychiatrist")
        await psychiatrist.locator("#enter").click()
        await expect(psychiatrist.locator("#room")).to_be_visible(timeout=STEP_MS)
        assert await psychiatrist.locator("#consent-form").is_hidden()
        assert problems.messages == []
    finally:
        await asyncio.gather(*(c.close() for c in contexts))
