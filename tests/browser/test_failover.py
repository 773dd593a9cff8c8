"""Debian's Chromium when the worker that serves its consult is killed (kill -9): two nodes of
one worker each as real processes, the pages loaded from the node that survives, their sockets
at the other. Each page's socket cannot reconnect, so it reads the session again, learns the
consult's new worker, connects there with the same token, and both clinicians see each
other again on a new peer connection."""

from __future__ import annotations

from pathlib import Path

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


async def test_pages_find_the_consults_new_worker_after_a_kill(
    tmp_path: Path, cluster_database: str, redis_url: str, keys: ClusterKeys, browser: Browser
) -> None:
    async with single_worker_nodes(
        tmp_path, cluster_database, [redis_url, redis_url], keys, udp_base=47500
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

            owner.process.kill()

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
