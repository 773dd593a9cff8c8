"""Debian's Chromium when the worker that serves its consult goes: two nodes of one worker each
as real processes, the pages loaded from the node that stays, their sockets at the other.

- killed (kill -9): each page's socket cannot reconnect, so it reads the session again;
- stopped (SIGTERM) with a drain time shorter than the consult: each socket is told
  `worker_leaving`, and reads the session again at once.

Either way it learns the consult's new worker, connects there with the same token, and both
clinicians see each other again on a new peer connection."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, expect

from server.cluster.entry import ClusterKeys
from tests.browser.conftest import PageProblems, new_page
from tests.browser.roomsteps import FRAMES_ADVANCED, ONE_REMOTE_PLAYING, STEP_MS, enter, poll
from tests.browser.roomsteps import wait_for as page_wait_for
from tests.cluster.processes import placed_on, single_worker_nodes

MOVED = """
(worker) => {
  const state = window.triadDebug.state();
  return state.relocations >= 1 && !state.reconnecting && state.view === "room";
}
"""


@pytest.mark.parametrize("how", ["killed", "drained"])
async def test_pages_find_the_consults_new_worker_when_theirs_goes(
    how: str,
    tmp_path: Path,
    cluster_database: str,
    redis_url: str,
    keys: ClusterKeys,
    browser: Browser,
) -> None:
    async with single_worker_nodes(
        tmp_path,
        cluster_database,
        [redis_url, redis_url],
        keys,
        udp_base=47500,
        TRIAD_DRAIN_SECONDS="2",
    ) as nodes:
        consult = await nodes[0].new_consult()
        owner, survivor = await placed_on(nodes, consult)
        problems = PageProblems()
        contexts: list[BrowserContext] = []
        try:
            pages = {}
            for role in ("therapist", "psychiatrist"):
                context, page = await new_page(browser, survivor.base_url, problems, role)
                contexts.append(context)
                pages[role] = page
                token = consult.seat(role).token
                await page.goto(f"{survivor.base_url}/c/{consult.consult_id}#token={token}")
            for page in pages.values():
                await enter(page)
                await expect(page.locator("#room")).to_be_visible(timeout=STEP_MS)
            for page in pages.values():
                await page_wait_for(page, ONE_REMOTE_PLAYING)
            sockets_at = await pages["therapist"].evaluate("window.triadDebug.state().workerMoves")
            assert sockets_at == 0

            if how == "killed":
                owner.process.kill()
            else:
                owner.send_signal(signal.SIGTERM)
                assert await owner.exited(3 * STEP_MS / 1000) == 0

            for page in pages.values():
                assert await poll(page, MOVED, timeout_ms=3 * STEP_MS), "the page moved"
            for page in pages.values():
                before = await page.evaluate("window.triadDebug.remoteVideos()")
                await page_wait_for(page, FRAMES_ADVANCED, before)
            view = await survivor.get(f"/api/v1/consults/{consult.consult_id}")
            assert view["status"] == "live"
            # Failed WebSocket attempts at the dead worker are expected console errors; nothing
            # else (no CSP violation, no uncaught exception).
            assert [m for m in problems.messages if "WebSocket connection" not in m] == []
        finally:
            for context in contexts:
                await context.close()
