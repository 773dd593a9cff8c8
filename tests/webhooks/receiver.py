"""A real webhook receiver on loopback: every request is verified with the `standardwebhooks`
library from PyPI (not Triad's code) and recorded. It can be told to answer 500 for a while,
to see retries."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError

from tests.ports import held_ports


@dataclass(frozen=True)
class Received:
    message_id: str
    timestamp: str
    type: str
    data: dict[str, Any]
    status: int
    body: dict[str, Any]


@dataclass
class Receiver:
    """What arrived at one URL. `secrets`: those a delivery may be signed with (it must verify
    with every one of them); `failing`: answer 500 while true, `fail_first`: answer 500 to
    that many requests first."""

    secrets: list[str] = field(default_factory=list)
    failing: bool = False
    fail_first: int = 0
    requests: list[Received] = field(default_factory=list)
    unverified: int = 0
    # Retired secrets: a delivery that verifies with one of them is counted here.
    stale_secrets: list[str] = field(default_factory=list)
    stale_verified: int = 0
    url: str = ""
    # Seconds each request is held before its answer; requests being held now.
    delay: float = 0.0
    holding: int = 0
    user_agents: list[str] = field(default_factory=list)

    def delivered(self) -> list[Received]:
        """Every accepted delivery, as the receiver's idempotent view keeps them: the first
        of each `webhook-id`, in arrival order."""
        seen: dict[str, Received] = {}
        for item in self.requests:
            if item.status == 200:
                seen.setdefault(item.message_id, item)
        return list(seen.values())

    def accepted_twice(self) -> list[str]:
        ids = [r.message_id for r in self.requests if r.status == 200]
        return sorted({i for i in ids if ids.count(i) > 1})

    def of_consult(self, consult_id: str) -> list[str]:
        return [r.type for r in self.delivered() if r.data.get("consult_id") == consult_id]

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        headers = dict(request.headers)
        try:
            for secret in self.secrets:
                Webhook(secret).verify(raw, headers)
        except WebhookVerificationError:
            self.unverified += 1
            return web.Response(status=401)
        if not self.secrets:
            self.unverified += 1
            return web.Response(status=401)
        for stale in self.stale_secrets:
            try:
                Webhook(stale).verify(raw, headers)
            except WebhookVerificationError:
                continue
            self.stale_verified += 1
        body = json.loads(raw)
        if self.delay:
            self.holding += 1
            try:
                await asyncio.sleep(self.delay)
            finally:
                self.holding -= 1
        self.user_agents.append(request.headers.get("User-Agent", ""))
        status = 200
        if self.failing or self.fail_first > 0:
            self.fail_first = max(0, self.fail_first - 1)
            status = 500
        self.requests.append(
            Received(
                message_id=request.headers["webhook-id"],
                timestamp=request.headers["webhook-timestamp"],
                type=body["type"],
                data=body["data"],
                status=status,
                body=body,
            )
        )
        return web.Response(status=status)


@asynccontextmanager
async def receiving(
    receiver: Receiver | None = None, port: int | None = None
) -> AsyncIterator[Receiver]:
    """The receiver served on 127.0.0.1 (on `port` when given, to come back where it was)."""
    receiver = receiver or Receiver()
    app = web.Application()
    app.router.add_post("/hooks", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site: web.BaseSite
    if port is None:
        (sock,) = held_ports(1)
        site = web.SockSite(runner, sock)
        port = sock.getsockname()[1]
    else:
        site = web.TCPSite(runner, "127.0.0.1", port, reuse_address=True)
    await site.start()
    receiver.url = f"http://127.0.0.1:{port}/hooks"
    try:
        yield receiver
    finally:
        await runner.cleanup()
