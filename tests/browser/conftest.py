"""The browser suite: the app on a loopback port chosen before the app is built (the Socket.IO
server accepts browsers only from `TRIAD_PUBLIC_BASE_URL`, so the settings must name the real
origin), and Debian's Chromium driven by Playwright with a fake camera and microphone.

Never a downloaded browser: Chromium is `/usr/bin/chromium` (or `TRIAD_TEST_CHROMIUM`); without
it the suite skips, unless the run requires every service (CI), when it fails.

Two ways to get them: per test (`browser`, `client`, `consult`, ... from tests/conftest.py), or
shared by a module whose tests are the steps of one consult (`module_browser`, `live_app`; the
module runs on one event loop: `pytestmark = pytest.mark.asyncio(loop_scope="module")`)."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, get_port_socket
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, async_playwright

from server.api.context import SERVICES
from server.api.routes import OPENAPI_KEY
from server.app import create_app
from server.settings import Settings
from tests.apiclient import Api
from tests.conftest import PlatformKey, consult_body, make_settings, new_platform
from tests.databases import services_required, sqlite_copy

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
def listening_socket() -> Iterator[socket.socket]:
    """A loopback socket bound before the app exists, so the app can name its own origin."""
    sock = get_port_socket("127.0.0.1", 0, socket.AF_INET)
    yield sock
    sock.close()


@pytest.fixture
def origin(listening_socket: socket.socket) -> str:
    port = listening_socket.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def settings(tmp_path: Path, database_url: str, origin: str) -> Settings:
    return make_settings(tmp_path, database_url, public_base_url=origin)


@pytest.fixture
async def client(
    aiohttp_client: Any, app: web.Application, listening_socket: socket.socket
) -> TestClient[Any, Any]:
    """The app served on `listening_socket` (the `api`, `platform` and `consult` fixtures of
    tests/conftest.py use it unchanged)."""
    server = TestServer(
        app,
        host="127.0.0.1",
        port=listening_socket.getsockname()[1],
        socket_factory=lambda *_: listening_socket,
    )
    test_client: TestClient[Any, Any] = await aiohttp_client(server)
    return test_client


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
    """The app served on a loopback port for a whole module, with a platform key."""

    origin: str
    client: TestClient[Any, Any]
    api: Api
    platform: PlatformKey

    @property
    def app(self) -> web.Application:
        app: web.Application = self.client.app
        return app

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


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live_app(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template_path: Path
) -> AsyncIterator[LiveApp]:
    require_chromium()  # no server to start when the browser suite is skipped
    directory = tmp_path_factory.mktemp("live-app")
    sock = get_port_socket("127.0.0.1", 0, socket.AF_INET)
    port = sock.getsockname()[1]
    origin = f"http://127.0.0.1:{port}"
    database_url = sqlite_copy(sqlite_template_path, directory)
    # A cut network sends no close: the server notices by heartbeat, so the steps that cut one
    # (20 s each) use short heartbeats rather than race the default 10 s + 10 s.
    app = create_app(
        make_settings(
            directory,
            database_url,
            public_base_url=origin,
            socket_ping_interval_seconds=3,
            socket_ping_timeout_seconds=5,
        )
    )
    server = TestServer(app, host="127.0.0.1", port=port, socket_factory=lambda *_: sock)
    client: TestClient[Any, Any] = TestClient(server)
    await client.start_server()
    try:
        api = Api(client, app[OPENAPI_KEY].model_dump())
        platform = await new_platform(app[SERVICES], "Acme Health")
        yield LiveApp(origin, client, api, platform)
    finally:
        # Module teardown has no per-test timeout: bound it so a stuck shutdown fails the run.
        await asyncio.wait_for(client.close(), 60)
        sock.close()


@pytest.fixture
def artifacts() -> Path:
    """Screenshots and other things worth looking at after a run (gitignored)."""
    path = ARTIFACTS / "browser"
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
