"""Debian's Chromium against a node of two workers (two apps on their own loopback ports, one
PostgreSQL, one Redis): each page is loaded from the worker that does not serve the consult,
so its socket crosses origins to the one that does; one page read its session while the
consult was placed elsewhere, is answered `wrong_worker` at its first join, follows it, and
both clinicians see and hear each other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.async_api import Browser, BrowserContext, expect
from redis.asyncio import Redis

from server.api.context import SERVICES
from server.cluster.entry import ClusterKeys
from server.ids import ConsultId
from tests.browser.conftest import PageProblems, new_page
from tests.browser.roomsteps import ONE_REMOTE_PLAYING, STEP_MS, enter, hook_state, wait_for
from tests.cluster.inprocess import node_workers
from tests.conftest import consult_body, new_platform, participant


async def test_pages_of_one_worker_join_the_consult_on_another_and_follow_a_move(
    keys: ClusterKeys,  # first: its cleanup runs after the apps (aiohttp_client) stopped
    redis: Redis,
    aiohttp_client: Any,
    tmp_path: Path,
    cluster_database: str,
    redis_url: str,
    browser: Browser,
) -> None:
    node = await node_workers(aiohttp_client, tmp_path, cluster_database, redis_url, keys)
    platform = await new_platform(node[0].client.app[SERVICES], "Acme Health")
    made = await node[0].api.call(
        "POST", "/api/v1/consults", bearer=platform.secret, json_body=consult_body()
    )
    consult = made.body
    placement = keys.placement(ConsultId(consult["id"]))
    owner, other = node
    await redis.set(placement, other.id)  # for now: the psychiatrist's page reads this

    problems = PageProblems()
    contexts: list[BrowserContext] = []
    try:
        pages = {}
        for role in ("psychiatrist", "therapist"):
            context, page = await new_page(browser, other.url, problems, role)
            contexts.append(context)
            pages[role] = page
            link = participant(consult, role)["join"]["join_url"]
            await page.goto(link.replace(node[0].url, other.url, 1))  # a page of `other`
            await expect(page.locator("#enter")).to_be_enabled(timeout=STEP_MS)
            # The psychiatrist's page has read its session; the consult then settles on `owner`.
            await redis.set(placement, owner.id)
        for page in pages.values():
            await enter(page)
            await expect(page.locator("#room")).to_be_visible(timeout=STEP_MS)
        for page in pages.values():
            await wait_for(page, ONE_REMOTE_PLAYING)
        assert (await hook_state(pages["psychiatrist"]))["workerMoves"] == 1
        assert (await hook_state(pages["therapist"]))["workerMoves"] == 0
        room = owner.client.app[SERVICES].rooms.get(ConsultId(consult["id"]))
        assert room is not None
        assert room.connected_count == 2
        assert other.client.app[SERVICES].rooms.get(ConsultId(consult["id"])) is None
        assert problems.messages == []
    finally:
        for context in contexts:
            await context.close()
