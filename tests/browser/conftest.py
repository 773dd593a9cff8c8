"""The browser suite: the app on a loopback port chosen before the app is built (the Socket.IO
server accepts browsers only from `TRIAD_PUBLIC_BASE_URL`, so the settings must name the real
origin), and Debian's Chromium driven by Playwright with a fake camera and microphone.

Never a downloaded browser: Chromium is `/usr/bin/chromium` (or `TRIAD_TEST_CHROMIUM`); without
it the suite skips, unless the run requires every service (CI), when it fails.

Every test runs against two deployments of the server, one worker and two
(`tests/browser/deployment.py`); the tests do not say which. Two ways to get one: per test
(`deployment`, and through it `origin`, `api`, `platform`, `consult`, ... of tests/conftest.py;
a module's extra settings are its `deployment_settings`), or shared by a module whose tests are
the steps of one consult (`module_browser`, `live_app`; the module runs on one event loop:
`pytestmark = pytest.mark.asyncio(loop_scope="module")`)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, async_playwright

from server.api.context import SERVICES
from tests.apiclient import Api
from tests.browser.deployment import DEPLOYMENTS, Deployment, deployed
from tests.conftest import PlatformKey, consult_body, new_platform
from tests.databases import services_required

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("TRIAD_TEST_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(os.environ.get("TRIAD_TEST_ARTIFACTS", ROOT / "test-artifacts"))

CHROMIUM_ARGS = [
    "--use-fake-device-for-media-stream",  # a synthetic camera picture and a beeping microphone
    "--use-fake-ui-for-media-stream",  # the permission prompt answers yes
    "--allow-loopback-in-peer-connection",  # ICE candidates on 127.0.0.1
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
    "--no-sandbox",  # CI runs as root
]

# Keeps the test's media on loopback: the page trickles only its 127.0.0.1 / ::1 candidates (the
# server advertises only 127.0.0.1 in these tests), not those of the machine's other interfaces.
LOOPBACK_CANDIDATES_ONLY = """
(() => {
  const proto = RTCPeerConnection.prototype;
  const add = proto.addEventListener;
  proto.addEventListener = function (type, listener, options) {
    if (type === "icecandidate" && typeof listener === "function") {
      const inner = listener;
      listener = function (event) {
        const c = event.candidate;
        if (c && c.candidate && !["127.0.0.1", "::1"].includes(c.address)) return undefined;
        return inner.call(this, event);
      };
    }
    return add.call(this, type, listener, options);
  };
})();
"""


def require_chromium() -> Path:
    if not CHROMIUM.is_file():
        reason = f"Chromium is not installed at {CHROMIUM} (Debian package: chromium)"
        if services_required():
            pytest.fail(reason + ", and this run requires every service")
        pytest.skip(reason)
    if not (ROOT / "web" / "dist" / "join.js").is_file():
        pytest.fail("the web client is not built (web/dist): run scripts/install")
    return CHROMIUM


@pytest.fixture
def chromium() -> Path:
    return require_chromium()


@pytest.fixture
def deployment_settings() -> dict[str, Any]:
    """Settings every worker of a test's deployment takes (a module overrides this)."""
    return {}


@pytest.fixture(params=DEPLOYMENTS)
async def deployment(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    sqlite_template_path: Path,
    deployment_settings: dict[str, Any],
) -> AsyncIterator[Deployment]:
    """The test's own server, on one worker and on two (`tests/browser/deployment.py`)."""
    require_chromium()  # no server to start when the browser suite is skipped
    async with deployed(
        request.param,
        tmp_path,
        sqlite_template=sqlite_template_path,
        postgres=lambda: request.getfixturevalue("postgres"),
        **deployment_settings,
    ) as started:
        yield started


@pytest.fixture
def origin(deployment: Deployment) -> str:
    """Where the test's pages are loaded from (the join links name it)."""
    return deployment.origin


@pytest.fixture
def client(deployment: Deployment) -> TestClient[Any, Any]:
    """The first worker's (`services`, and through it `platform`, of tests/conftest.py)."""
    return deployment.workers[0].client


@pytest.fixture
def api(deployment: Deployment) -> Api:
    """The deployment's REST API (`consult`, `seated_consult` of tests/conftest.py use it)."""
    return deployment.api


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_browser() -> AsyncIterator[Browser]:
    """One Chromium for every test of a module."""
    chromium = require_chromium()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await asyncio.wait_for(launched.close(), 30)


@dataclass
class LiveApp:
    """A deployment (`tests/browser/deployment.py`) for a whole module, with a platform key."""

    deployment: Deployment
    platform: PlatformKey

    @property
    def origin(self) -> str:
        return self.deployment.origin

    @property
    def api(self) -> Api:
        return self.deployment.api

    @property
    def app(self) -> web.Application:
        return self.deployment.app

    async def new_consult(self, **overrides: Any) -> dict[str, Any]:
        answer = await self.api.call(
            "POST",
            "/api/v1/consults",
            bearer=self.platform.secret,
            json_body=consult_body(**overrides),
        )
        assert answer.status == 201, answer.body
        body: dict[str, Any] = answer.body
        return body


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=DEPLOYMENTS)
async def live_app(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template_path: Path,
) -> AsyncIterator[LiveApp]:
    require_chromium()  # no server to start when the browser suite is skipped
    # A cut network sends no close: the server notices by heartbeat, so the steps that cut one
    # (20 s each) use short heartbeats rather than race the default 10 s + 10 s.
    async with deployed(
        request.param,
        tmp_path_factory.mktemp("live-app"),
        sqlite_template=sqlite_template_path,
        postgres=lambda: request.getfixturevalue("postgres"),
        socket_ping_interval_seconds=3,
        socket_ping_timeout_seconds=5,
    ) as started:
        platform = await new_platform(started.app[SERVICES], "Acme Health")
        yield LiveApp(started, platform)


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    """Screenshots and other things worth looking at after a run (gitignored), one directory
    per deployment (the same test runs on each)."""
    callspec = getattr(request.node, "callspec", None)
    params = callspec.params if callspec is not None else {}
    where = params.get("deployment", params.get("live_app", "one-worker"))
    path = ARTIFACTS / "browser" / str(where)
    path.mkdir(parents=True, exist_ok=True)
    return path


class PageProblems:
    """Console errors, CSP violations and uncaught exceptions of the pages of a test.

    Chromium logs every 4xx/5xx answer to a fetch as a console error; answers the test expects
    (a 404 `brief_not_found` is how the server says there is no brief) are named by a part of
    their URL in `expected_failures`."""

    def __init__(self, expected_failures: tuple[str, ...] = ()) -> None:
        self.messages: list[str] = []
        self.expected_failures = expected_failures

    def _expected(self, msg: ConsoleMessage) -> bool:
        url = msg.location.get("url", "")
        return msg.text.startswith("Failed to load resource") and any(
            part in url for part in self.expected_failures
        )

    def watch(self, label: str, page: Page) -> None:
        page.on(
            "console",
            lambda msg: (
                self.messages.append(
                    f"{label} console.{msg.type}: {msg.text} ({msg.location.get('url', '')})"
                )
                if (msg.type == "error" or "Content Security Policy" in msg.text)
                and not self._expected(msg)
                else None
            ),
        )
        page.on("pageerror", lambda exc: self.messages.append(f"{label} pageerror: {exc}"))


async def new_page(
    browser: Browser, origin: str, problems: PageProblems, label: str, **context_args: Any
) -> tuple[BrowserContext, Page]:
    """A page in a context of its own (its own sessionStorage), camera and microphone allowed."""
    context = await browser.new_context(**context_args)
    await context.grant_permissions(["camera", "microphone"], origin=origin)
    await context.add_init_script(LOOPBACK_CANDIDATES_ONLY)
    page = await context.new_page()
    problems.watch(label, page)
    return context, page
