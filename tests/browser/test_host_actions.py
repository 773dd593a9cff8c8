"""What the hosts do in Debian's Chromium besides admitting: see whether the client waiting has
consented (and be told plainly why they cannot be let in yet), see who sits at another's device,
and remove someone after confirming. The client here is a Socket.IO client of the tests that
joins without consenting, which the join page would never do."""

from __future__ import annotations

import asyncio
from typing import Any

from playwright.async_api import Browser, expect

from tests.apiclient import Api
from tests.browser.conftest import PageProblems
from tests.browser.roomsteps import STEP_MS, hook_state, hosts_in_room
from tests.conftest import participant
from tests.roomclient import RoomClient


async def test_consent_same_room_and_remove(
    browser: Browser, origin: str, consult: dict[str, Any], api: Api
) -> None:
    ids = {role: participant(consult, role)["id"] for role in ("client", "therapist")}
    problems = PageProblems()
    contexts, pages = await hosts_in_room(browser, origin, consult, problems)
    client = RoomClient(origin, participant(consult, "client")["join"]["token"], "client")
    try:
        therapist, psychiatrist = pages["therapist"], pages["psychiatrist"]
        await client.connect()
        state = await client.join()
        assert state["you"]["place"] == "lobby"

        # The lobby says the client has not consented; admitting is refused and says why.
        waiting = therapist.locator(f'#lobby-list [data-participant-id="{ids["client"]}"]')
        await expect(waiting).to_have_attribute("data-consent", "false", timeout=STEP_MS)
        await expect(waiting.locator(".lobby-consent")).to_have_text("Consent not given yet")
        await waiting.locator('[data-action="admit"]').click()
        error = therapist.locator("#room-error")
        await expect(error).to_have_attribute("data-code", "consent_required", timeout=STEP_MS)
        await expect(error).to_contain_text("Alex Rivera hasn't given consent yet")
        await expect(waiting).to_be_visible()  # still waiting

        # Same-room mode: the therapist declares the client beside them, the client confirms;
        # the others' tile says so.
        declared = await api.call(
            "PUT",
            f"/api/v1/consults/{consult['id']}/session/present-with",
            bearer=participant(consult, "therapist")["join"]["token"],
            json_body={"participant_ids": [ids["client"]]},
        )
        assert declared.status == 200, declared.body
        confirmed = await api.call(  # the client's own word makes it count
            "POST",
            f"/api/v1/consults/{consult['id']}/session/present-with/confirmations",
            bearer=participant(consult, "client")["join"]["token"],
            json_body={"declarer_id": ids["therapist"], "participant_id": ids["client"]},
        )
        assert confirmed.status == 200, confirmed.body
        tile = psychiatrist.locator(f'.tile[data-participant-id="{ids["therapist"]}"]')
        await expect(tile).to_have_attribute("data-same-room", "true", timeout=STEP_MS)
        await expect(tile.locator(".tile-role")).to_have_text("Therapist · with client")

        # Remove asks first; Escape keeps everyone, Remove removes.
        remove = tile.locator('[data-action="remove"]')
        await remove.click()
        dialog = psychiatrist.locator("#confirm-dialog")
        await expect(dialog).to_contain_text("Remove Sam Okafor?")
        await psychiatrist.keyboard.press("Escape")
        await expect(dialog).to_have_count(0)
        await expect(tile).to_be_visible()
        await remove.click()
        await dialog.locator('[data-action="confirm"]').click()
        await expect(therapist.locator('#problem [data-code="removed"]')).to_be_visible(
            timeout=STEP_MS
        )
        await expect(tile).to_have_count(0, timeout=STEP_MS)
        assert (await hook_state(psychiatrist))["errors"] == []
        assert [e["code"] for e in (await hook_state(therapist))["errors"]] == ["consent_required"]
        assert problems.messages == []
    finally:
        await client.close()
        await asyncio.gather(*(c.close() for c in contexts))
