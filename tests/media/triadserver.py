"""`triad serve` as a process of its own, on a free loopback port with a fresh SQLite database,
for tests and benches that need the real server (its CPU apart from the clients').

The operator's steps: migrate and create a platform key (`server.commands`, what `triad migrate`
and `triad apikey create` run, called here to spare two interpreter starts), `triad serve`, then
through the REST API as a platform would: `POST /api/v1/consults` (auto-admit) and the client's
consent, so all three participants can join without a lobby, and `POST .../end`.

`command` replaces `-m server serve` (what follows the interpreter), for a wrapper that runs
the same `triad serve` with a debug hook (`bench/triadprobe.py`); `env` adds variables that are
not settings. `workers` above one runs `triad serve --workers N` (on consecutive free ports;
its settings must then name PostgreSQL and Redis), one node of a deployment.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from server import commands
from server.settings import Settings
from tests.ports import free_ports

ROLES = ("therapist", "psychiatrist", "client")
DEADLINE = 30.0


class StopTimedOut(AssertionError):
    """`triad serve` did not exit on SIGTERM within the deadline (it was killed)."""


SERVE = ("-m", "server", "serve")


@dataclass(frozen=True)
class Seat:
    """One participant of a consult: who they are and the token they join with."""

    role: str
    participant_id: str
    token: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r}")
        if not self.participant_id or not self.token:
            raise ValueError("a seat needs a participant id and a token")


@dataclass(frozen=True)
class ConsultSeats:
    consult_id: str
    seats: tuple[Seat, ...]

    def __post_init__(self) -> None:
        if sorted(s.role for s in self.seats) != sorted(ROLES):
            raise ValueError("a consult has one seat per role")

    def seat(self, role: str) -> Seat:
        return next(s for s in self.seats if s.role == role)


class TriadServer:
    """A running `triad serve`. Use `TriadServer.running(directory)`."""

    def __init__(
        self,
        directory: Path,
        *,
        command: Sequence[str] = SERVE,
        env: Mapping[str, str] | None = None,
        workers: int = 1,
        host: str = "127.0.0.1",
        **settings: str,
    ) -> None:
        """`host`: where it listens (a network namespace's link address, for clients inside
        one; media stays on the ICE host addresses, loopback unless a setting says)."""
        self.directory = directory
        self.command = tuple(command)
        self.port = free_ports(workers)
        self.base_url = f"http://{host}:{self.port}"
        # Each worker's own address (the first is the base URL's).
        self.worker_urls = tuple(f"http://{host}:{self.port + i}" for i in range(workers))
        self.log_path = directory / "server.log"
        values = {
            "TRIAD_MODE": "development",
            "TRIAD_DATA_DIR": str(directory / "var"),
            "TRIAD_DATABASE_URL": f"sqlite+aiosqlite:///{directory / 'var' / 'triad.db'}",
            "TRIAD_ENCRYPTION_KEYS": commands.keygen(),
            "TRIAD_HOST": host,
            "TRIAD_PORT": str(self.port),
            "TRIAD_PUBLIC_BASE_URL": self.base_url,
            "TRIAD_ICE_HOST_ADDRESSES": "127.0.0.1",
            "TRIAD_LOG_LEVEL": os.environ.get("WEAKLINK_SERVER_LOG_LEVEL", "warning"),
            "TRIAD_LOG_FORMAT": "json",
            "TRIAD_WORKERS": str(workers),
            **settings,
        }
        # The same settings in this process (for the operator's steps) and in the server's.
        # The operator's steps need neither Redis nor the workers.
        own = {k.removeprefix("TRIAD_").lower(): v for k, v in values.items()}
        self._settings = Settings(**{**own, "redis_url": None, "workers": 1, "node_id": None})
        extra = dict(env or {})
        if any(k.startswith("TRIAD_") for k in extra):
            raise ValueError("settings go in as keyword arguments, not `env`")
        self._env = {k: v for k, v in os.environ.items() if not k.startswith("TRIAD_")}
        self._env.update(values)
        self._env.update(extra)
        self._process: asyncio.subprocess.Process | None = None
        self._ps: psutil.Process | None = None
        self._secret = ""
        # `triad serve`'s exit status once stopped.
        self.returncode: int | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def running(
        cls,
        directory: Path,
        *,
        command: Sequence[str] = SERVE,
        env: Mapping[str, str] | None = None,
        workers: int = 1,
        host: str = "127.0.0.1",
        **settings: str,
    ) -> AsyncIterator[TriadServer]:
        """Migrated, with a platform key, serving; stopped on the way out. `settings` are
        extra `TRIAD_*` environment variables."""
        server = cls(directory, command=command, env=env, workers=workers, host=host, **settings)
        try:
            await server.start()
            yield server
        finally:
            await server.stop()

    async def start(self) -> None:
        await self.prepare()
        await self.launch()

    async def prepare(self) -> None:
        """The operator's steps: migrate, create a platform key (one server at a time: the
        migration's configuration is global)."""
        await commands.migrate(self._settings)
        _, _, self._secret = await commands.create_api_key(self._settings, "weaklink")

    async def launch(self) -> None:
        """`triad serve`, until every worker answers `/healthz`."""
        with self.log_path.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                *self.command,
                env=self._env,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )
        self._ps = psutil.Process(self._process.pid)
        async with asyncio.timeout(DEADLINE), aiohttp.ClientSession() as http:
            for url in self.worker_urls:
                await self._healthy(http, url)

    async def _healthy(self, http: aiohttp.ClientSession, url: str) -> None:
        assert self._process is not None
        while True:
            if self._process.returncode is not None:
                raise RuntimeError(f"triad serve exited: {self.log_tail()}")
            with contextlib.suppress(aiohttp.ClientConnectionError):
                async with http.get(f"{url}/healthz") as answer:
                    if answer.status == 200:
                        return
            await asyncio.sleep(0.1)

    @property
    def api_key(self) -> str:
        """The platform's API key secret (made by `prepare`)."""
        if not self._secret:
            raise RuntimeError("the server was not prepared")
        return self._secret

    @property
    def process(self) -> psutil.Process:
        """The server process (for its CPU, memory, file descriptors, threads)."""
        if self._ps is None:
            raise RuntimeError("the server is not running")
        return self._ps

    def cpu_seconds(self) -> float:
        """CPU time the server process has used so far (user + system)."""
        if self._ps is None:
            return 0.0
        times = self._ps.cpu_times()
        return float(times.user + times.system)

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    async def _call(
        self,
        http: aiohttp.ClientSession,
        method: str,
        path: str,
        bearer: str,
        body: Any = None,
        via: str | None = None,
    ) -> Any:
        async with http.request(
            method,
            f"{via or self.base_url}{path}",
            json=body,
            headers={"Authorization": f"Bearer {bearer}"},
        ) as answer:
            payload = await answer.json(content_type=None)
            if answer.status >= 300:
                raise RuntimeError(f"{method} {path}: {answer.status} {payload}")
            return payload

    async def new_consult(
        self, *, via: str | None = None, http: aiohttp.ClientSession | None = None
    ) -> ConsultSeats:
        """An auto-admit consult whose client has consented: nobody waits in a lobby. `via`: the
        URL to call instead of the server's own (a proxy in front of it), with `http`."""
        names: Mapping[str, str] = {
            "therapist": "Therapist",
            "psychiatrist": "Psychiatrist",
            "client": "Client",
        }
        body = {
            "participants": [{"role": role, "name": names[role]} for role in ROLES],
            "auto_admit": True,
        }
        async with contextlib.AsyncExitStack() as stack:
            if http is None:
                http = await stack.enter_async_context(aiohttp.ClientSession())
            made = await self._call(http, "POST", "/api/v1/consults", self._secret, body, via)
            seats = tuple(
                Seat(p["role"], p["id"], p["join"]["token"]) for p in made["participants"]
            )
            consult = ConsultSeats(made["id"], seats)
            token = consult.seat("client").token
            path = f"/api/v1/consults/{consult.consult_id}/session/consent"
            wording = await self._call(http, "GET", path, token, via=via)
            await self._call(
                http,
                "POST",
                path,
                token,
                {
                    "wording_version": wording["wording"]["version"],
                    "scopes": ["session", "information_sharing"],
                },
                via,
            )
        return consult

    async def end_consult(self, consult_id: str) -> None:
        """End the consult as its platform would (`POST /api/v1/consults/{id}/end`)."""
        async with aiohttp.ClientSession() as http:
            await self._call(http, "POST", f"/api/v1/consults/{consult_id}/end", self._secret)

    async def get(self, path: str) -> Any:
        """A platform's GET (`/api/v1/...`), its JSON body."""
        async with aiohttp.ClientSession() as http:
            return await self._call(http, "GET", path, self._secret)

    def send_signal(self, sig: int) -> None:
        """Signal `triad serve` (the supervisor, with several workers)."""
        if self._process is None:
            raise RuntimeError("the server is not running")
        self._process.send_signal(sig)

    async def exited(self, within: float = DEADLINE) -> int:
        """Wait for `triad serve` to exit by itself; its exit status."""
        if self._process is None:
            raise RuntimeError("the server is not running")
        self.returncode = await asyncio.wait_for(self._process.wait(), within)
        return self.returncode

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not stopped within the deadline, and then fail: a
        server that does not exit on SIGTERM would hold up an operator's rolling restart, and
        a test that only killed it would never say so. Safe twice."""
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), DEADLINE)
        except TimeoutError:
            # Its own session: the group holds the workers a supervisor started.
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            self.returncode = process.returncode
            raise StopTimedOut(
                f"`triad serve` in {self.directory} did not exit within {DEADLINE:g} s of SIGTERM"
                " (a worker with rooms open drains up to TRIAD_DRAIN_SECONDS: set it for tests)"
            ) from None
        self.returncode = process.returncode
