"""The browser suite: the app on a loopback port chosen before the app is built (the Socket.IO
server accepts browsers only from `TRIAD_PUBLIC_BASE_URL`, so the settings must name the real
origin), and Debian's Chromium driven by Playwright with a fake camera and microphone.

Never a downloaded browser: Chromium is `/usr/bin/chromium` (or `TRIAD_TEST_CHROMIUM`); without
it the suite skips, unless the run requires every service (CI), when it fails."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, get_port_socket
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from server.settings import Settings
from tests.conftest import make_settings
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


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.is_file():
        reason = f"Chromium is not installed at {CHROMIUM} (Debian package: chromium)"
        if services_required():
            pytest.fail(reason + ", and this run requires every service")
        pytest.skip(reason)
    if not (ROOT / "web" / "dist" / "join.js").is_file():
        pytest.fail("the web client is not built (web/dist): run scripts/install")
    return CHROMIUM


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


@pytest.fixture
def artifacts() -> Path:
    """Screenshots and other things worth looking at after a run (gitignored)."""
    path = ARTIFACTS / "browser"
    path.mkdir(parents=True, exist_ok=True)
    return path


class PageProblems:
    """Console errors, CSP violations and uncaught exceptions of the pages of a test."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def watch(self, label: str, page: Page) -> None:
        page.on(
            "console",
            lambda msg: (
                self.messages.append(f"{label} console.{msg.type}: {msg.text}")
                if msg.type == "error" or "Content Security Policy" in msg.text
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
