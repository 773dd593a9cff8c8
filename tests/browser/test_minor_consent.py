"""A minor's consult in Debian's Chromium: the guardian's page asks the guardian's consent on the
minor's behalf (and no check-in), the minor's page asks the minor's own agreement (assent: not
required, "Not now" goes on without it), and the hosts' page says who consented and the minor's
assent, names the guardian's consent on the lobby badge, and says whose withdrawal stopped
sharing. What each page says is checked against what the REST API has on record."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.apiclient import Api
from tests.browser.conftest import PageProblems, new_page
from tests.browser.roomsteps import STEP_MS, enter
from tests.conftest import participant

PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 900}
# Answers the room expects (a consult without a hand-off brief), logged by Chromium as errors.
EXPECTED_FAILURES = ("/session/brief",)
NO_SIDEWAYS_SCROLL = "() => document.documentElement.scrollWidth <= window.innerWidth"


async def session_get(api: Api, consult: dict[str, Any], role: str, path: str) -> Any:
    token = participant(consult, role)["join"]["token"]
    answer = await api.call("GET", f"/api/v1/consults/{consult['id']}/session{path}", bearer=token)
    assert answer.status == 200, answer.body
    return answer.body


async def open_and_enter(page: Page, consult: dict[str, Any], role: str) -> None:
    await page.goto(participant(consult, role)["join"]["join_url"])
    await enter(page)


async def tick_both_and_submit(page: Page) -> None:
    await page.locator('input[name="consent-session"]').check()
    await page.locator('input[name="consent-sharing"]').check()
    await page.locator("#consent-submit").click()


async def host_in_room(
    browser: Browser, origin: str, consult: dict[str, Any], problems: PageProblems
) -> tuple[BrowserContext, Page]:
    context, page = await new_page(browser, origin, problems, "therapist", viewport=DESKTOP)
    await open_and_enter(page, consult, "therapist")
    await expect(page.locator("#room")).to_be_visible(timeout=STEP_MS)
    return context, page


@pytest.mark.timeout(150)
async def test_the_guardian_consents_the_minor_assents_and_the_hosts_read_whose(
    browser: Browser, origin: str, seated_consult: dict[str, Any], api: Api, artifacts: Path
) -> None:
    consult = seated_consult
    client_name = participant(consult, "client")["name"]
    ids = {p["role"]: p["id"] for p in consult["participants"]}
    problems = PageProblems(EXPECTED_FAILURES)
    contexts: list[BrowserContext] = []
    try:
        context, therapist = await host_in_room(browser, origin, consult, problems)
        contexts.append(context)
        notice = therapist.locator("#room-notice")
        # From the join state: nobody consented yet, and the hosts read it as the guardian's.
        await expect(notice).to_have_text(
            "The guardian has not consented yet. The client's assent: not given yet.",
            timeout=STEP_MS,
        )

        # The guardian's page: told they consent for the minor, asked on the minor's behalf.
        context, guardian = await new_page(browser, origin, problems, "guardian", viewport=PHONE)
        contexts.append(context)
        await guardian.goto(participant(consult, "guardian")["join"]["join_url"])
        await expect(guardian.locator("#role-note")).to_contain_text(
            f"give your consent for {client_name}", timeout=STEP_MS
        )
        await expect(guardian.locator("#role-note")).not_to_contain_text("co-host")
        await enter(guardian)
        form = guardian.locator("#consent-form")
        await expect(form).to_be_visible(timeout=STEP_MS)
        await expect(form).to_have_attribute("data-mode", "guardian")
        await expect(guardian.locator("#consent-heading")).to_have_text(
            f"Your consent for {client_name}"
        )
        await expect(guardian.locator("#consent-intro")).to_contain_text("on their behalf")
        await expect(guardian.locator("#consent-skip")).to_be_hidden()  # consent is needed
        await guardian.locator('input[name="consent-session"]').check()
        await guardian.locator("#consent-submit").click()
        await expect(guardian.locator("#consent-error")).to_contain_text(
            f"before {client_name} can join"
        )
        assert (await session_get(api, consult, "guardian", "/consent"))["records"] == []
        assert await guardian.evaluate(NO_SIDEWAYS_SCROLL)
        await guardian.screenshot(path=artifacts / "consent-guardian-phone.png", full_page=True)
        await tick_both_and_submit(guardian)
        # No check-in for the guardian (the client's own): straight to the lobby.
        await expect(guardian.locator("#lobby-wait")).to_be_visible(timeout=STEP_MS)
        recorded = await session_get(api, consult, "guardian", "/consent")
        assert recorded["consenting_role"] == "guardian"
        assert {(r["scope"], r["given_by"]) for r in recorded["records"]} == {
            ("session", ids["guardian"]),
            ("information_sharing", ids["guardian"]),
        }
        assert recorded["assent"] == []
        await expect(notice).to_have_text(
            "The guardian consented for the client. The client's assent: not given yet.",
            timeout=STEP_MS,
        )

        # The minor's page: their own agreement, which they could leave for now.
        context, minor = await new_page(browser, origin, problems, "client", viewport=PHONE)
        contexts.append(context)
        await open_and_enter(minor, consult, "client")
        form = minor.locator("#consent-form")
        await expect(form).to_be_visible(timeout=STEP_MS)
        await expect(form).to_have_attribute("data-mode", "assent")
        await expect(minor.locator("#consent-heading")).to_have_text("Do you agree?")
        await expect(minor.locator("#consent-intro")).to_contain_text("Your guardian gives consent")
        await expect(minor.locator("#consent-skip")).to_be_visible()
        await minor.screenshot(path=artifacts / "assent-minor-phone.png", full_page=True)
        await tick_both_and_submit(minor)
        await expect(minor.locator("#checkin-skip")).to_be_visible(timeout=STEP_MS)
        await minor.locator("#checkin-skip").click()
        await expect(minor.locator("#lobby-wait")).to_be_visible(timeout=STEP_MS)
        recorded = await session_get(api, consult, "client", "/consent")
        assert {(a["scope"], a["given_by"]) for a in recorded["assent"]} == {
            ("session", ids["client"]),
            ("information_sharing", ids["client"]),
        }
        assert {r["given_by"] for r in recorded["records"]} == {ids["guardian"]}  # unchanged
        await expect(notice).to_have_text(
            "The guardian consented for the client. The client's assent: given.", timeout=STEP_MS
        )

        # The lobby: the badge on the client's entry is the guardian's consent; both admitted.
        lobby = therapist.locator("#lobby-list")
        waiting_client = lobby.locator(f'[data-participant-id="{ids["client"]}"]')
        await expect(waiting_client.locator(".lobby-consent")).to_have_text(
            "Guardian's consent given", timeout=STEP_MS
        )
        await therapist.screenshot(path=artifacts / "minor-lobby-therapist.png")
        for role in ("client", "guardian"):
            item = lobby.locator(f'[data-participant-id="{ids[role]}"]')
            await item.locator('[data-action="admit"]').click()
            await expect(item).to_have_count(0, timeout=STEP_MS)
        for page in (minor, guardian):
            await expect(page.locator("#room")).to_be_visible(timeout=STEP_MS)
        # The minor's and the guardian's pages show neither the notice nor the clinicians' tab.
        for page in (minor, guardian):
            await expect(page.locator("#room-notice")).to_have_text("")
            await expect(page.locator("#notes-tab-clinicians")).to_have_count(0)

        # The minor withdraws their assent to sharing: the hosts read it was the minor's, and
        # the clinicians' notes close saying so, although the guardian's consent stands.
        withdrawn = await api.call(
            "POST",
            f"/api/v1/consults/{consult['id']}/session/consent/withdraw",
            bearer=participant(consult, "client")["join"]["token"],
            json_body={"scopes": ["information_sharing"]},
        )
        assert withdrawn.status == 200, withdrawn.body
        assert all(r["withdrawn_at"] is None for r in withdrawn.body["records"])
        await expect(notice).to_have_text(
            "The client withdrew their assent to sharing information between their clinicians: "
            "the brief is hidden and the clinicians' notes are closed.",
            timeout=STEP_MS,
        )
        panel = therapist.locator("#notes-panel-clinicians")
        await expect(panel).to_have_attribute("data-closed", "true", timeout=STEP_MS)
        await expect(panel.locator(".notes-closed")).to_contain_text(
            "The client withdrew their assent"
        )
        state = await therapist.evaluate("window.triadDebug.state().consent")
        assert state["consenting_role"] == "guardian"
        assert state["assent"] == {"session": "given", "information_sharing": "withdrawn"}
        await therapist.screenshot(path=artifacts / "minor-assent-withdrawn-therapist.png")
        assert problems.messages == []
    finally:
        await asyncio.gather(*(c.close() for c in contexts))


@pytest.mark.timeout(120)
async def test_a_minor_may_go_on_without_assent_and_the_guardian_withdraws_from_their_page(
    browser: Browser, origin: str, seated_consult: dict[str, Any], api: Api, artifacts: Path
) -> None:
    consult = seated_consult
    client_name = participant(consult, "client")["name"]
    ids = {p["role"]: p["id"] for p in consult["participants"]}
    problems = PageProblems(EXPECTED_FAILURES)
    contexts: list[BrowserContext] = []
    try:
        # The guardian consents on their page; back later, the page shows it with the minor's
        # own word (none yet) and a way to withdraw.
        context, guardian = await new_page(browser, origin, problems, "guardian", viewport=PHONE)
        contexts.append(context)
        await open_and_enter(guardian, consult, "guardian")
        await expect(guardian.locator("#consent-form")).to_be_visible(timeout=STEP_MS)
        await tick_both_and_submit(guardian)
        await expect(guardian.locator("#lobby-wait")).to_be_visible(timeout=STEP_MS)

        # The minor leaves their agreement for now and goes on: nothing is recorded.
        context, minor = await new_page(browser, origin, problems, "client", viewport=PHONE)
        contexts.append(context)
        await open_and_enter(minor, consult, "client")
        await expect(minor.locator("#consent-form")).to_have_attribute(
            "data-mode", "assent", timeout=STEP_MS
        )
        await minor.locator("#consent-skip").click()
        await expect(minor.locator("#checkin-skip")).to_be_visible(timeout=STEP_MS)
        await minor.locator("#checkin-skip").click()
        await expect(minor.locator("#lobby-wait")).to_be_visible(timeout=STEP_MS)
        assert (await session_get(api, consult, "client", "/consent"))["assent"] == []
        # Back on the join step, the minor has nothing on record to show.
        await minor.reload()
        await expect(minor.locator("#enter")).to_be_enabled(timeout=STEP_MS)
        await expect(minor.locator("#consent-status")).to_be_hidden()

        await guardian.reload()
        await expect(guardian.locator("#enter")).to_be_enabled(timeout=STEP_MS)
        status = guardian.locator("#consent-status")
        await expect(status).to_have_attribute("data-mode", "guardian", timeout=STEP_MS)
        await expect(status.locator("h2")).to_have_text(f"Your consent for {client_name}")
        await expect(status.locator('li[data-state="given"]')).to_have_count(2)
        await expect(status.locator(".consent-minor")).to_have_attribute("data-assent", "none")
        await expect(status.locator(".consent-minor")).to_have_text(
            f"{client_name} has not said they agree yet."
        )
        await status.locator("summary").click()
        await status.locator('input[name="withdraw-scope"][value="information_sharing"]').check()
        await status.locator('[data-action="withdraw"]').click()
        await expect(status.locator('li[data-scope="information_sharing"]')).to_have_attribute(
            "data-state", "withdrawn", timeout=STEP_MS
        )
        after = await session_get(api, consult, "guardian", "/consent")
        sharing = next(r for r in after["records"] if r["scope"] == "information_sharing")
        assert sharing["withdrawn_by"] == ids["guardian"]
        assert after["sharing_withdrawn"] is True
        assert await guardian.evaluate(NO_SIDEWAYS_SCROLL)
        await guardian.screenshot(path=artifacts / "consent-guardian-withdrawn-phone.png")
        # Entering again asks the guardian's consent again (the minor's is not asked of them).
        await guardian.locator("#enter").click()
        await expect(guardian.locator("#consent-form")).to_have_attribute(
            "data-mode", "guardian", timeout=STEP_MS
        )
        assert problems.messages == []
    finally:
        await asyncio.gather(*(c.close() for c in contexts))
