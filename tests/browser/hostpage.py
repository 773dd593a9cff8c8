"""A platform's page for the embed tests: a second aiohttp app on its own loopback port (so its
own origin), which loads the SDK from the Triad server and mounts the room with it.

`/classic` loads `/static/embed.js` with a script tag (`window.Triad`); `/module` imports
`/static/embed.mjs` as an ES module (a CORS fetch). Both record the SDK's events in
`window.hostEvents` and expose `window.mountRoom(joinUrl)` and the handle as `window.room`.
`/sibling` is an empty page: framed beside the room, it plays a third party that tries to talk
to the room or to the SDK. Messages the host page gets that are not the SDK's are kept in
`window.hostMessages` (a sibling's "done" marker: messages from one window arrive in order)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer, get_port_socket

# One script for both pages, so they record the same way.
HOST_SCRIPT = """
window.hostEvents = [];
window.hostMessages = [];
window.addEventListener("message", (event) => {
  if (typeof event.data === "string") {
    window.hostMessages.push({data: event.data, origin: event.origin});
  }
});
window.mountRoom = (joinUrl) => {
  window.room = window.TriadSdk.mount(document.getElementById("slot"), {
    joinUrl,
    onEvent: (name, detail) => window.hostEvents.push({name, detail}),
  });
  return true;
};
window.addSibling = (url) => new Promise((resolve) => {
  const frame = document.createElement("iframe");
  frame.src = url;
  frame.title = "sibling";
  frame.addEventListener("load", () => resolve(true), {once: true});
  document.body.append(frame);
});
"""

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Platform page</title><link rel="icon" href="data:,">
<style>#slot {{ width: 960px; height: 720px; }}</style>
{sdk}
<script src="/host.js"></script>
</head>
<body><h1>A platform's page</h1><div id="slot"></div></body>
</html>
"""

CLASSIC_SDK = '<script src="{triad}/static/embed.js"></script>\n<script src="/classic.js"></script>'
MODULE_SDK = '<script type="module" src="/module.js"></script>'


@dataclass(frozen=True)
class HostSite:
    origin: str

    def url(self, path: str) -> str:
        return self.origin + path


def bound_socket() -> socket.socket:
    return get_port_socket("127.0.0.1", 0, socket.AF_INET)


def origin_of(sock: socket.socket, host: str = "localhost") -> str:
    """`localhost` is another site than the Triad server's 127.0.0.1 (Chromium resolves it to
    loopback itself), so the room is a cross-site frame as on a real platform."""
    return f"http://{host}:{sock.getsockname()[1]}"


def host_app(triad_origin: str) -> web.Application:
    def html(body: str) -> web.Response:
        return web.Response(text=body, content_type="text/html")

    def script(body: str) -> web.Response:
        return web.Response(text=body, content_type="text/javascript")

    async def classic(_request: web.Request) -> web.Response:
        return html(PAGE.format(sdk=CLASSIC_SDK.format(triad=triad_origin)))

    async def module(_request: web.Request) -> web.Response:
        return html(PAGE.format(sdk=MODULE_SDK))

    async def sibling(_request: web.Request) -> web.Response:
        return html('<!doctype html><title>sibling</title><link rel="icon" href="data:,">')

    async def host_js(_request: web.Request) -> web.Response:
        return script(HOST_SCRIPT)

    async def classic_js(_request: web.Request) -> web.Response:
        return script("window.TriadSdk = window.Triad;")

    async def module_js(_request: web.Request) -> web.Response:
        return script(
            f'import {{ mount }} from "{triad_origin}/static/embed.mjs";\n'
            "window.TriadSdk = { mount };\n"
        )

    app = web.Application()
    app.router.add_get("/classic", classic)
    app.router.add_get("/module", module)
    app.router.add_get("/sibling", sibling)
    app.router.add_get("/host.js", host_js)
    app.router.add_get("/classic.js", classic_js)
    app.router.add_get("/module.js", module_js)
    return app


@asynccontextmanager
async def serve_host(
    sock: socket.socket, triad_origin: str, host: str = "localhost"
) -> AsyncIterator[HostSite]:
    """Serve the host pages on `sock` (bound before the Triad app was configured)."""
    server: TestServer = TestServer(
        host_app(triad_origin),
        host="127.0.0.1",
        port=sock.getsockname()[1],
        socket_factory=lambda *_args: sock,
    )
    await server.start_server()
    try:
        yield HostSite(origin_of(sock, host))
    finally:
        await server.close()


def events_named(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e["detail"] for e in events if e["name"] == name]
