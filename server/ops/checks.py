"""`triad check`: is this node ready to serve consults? One line per check, in this order:

settings      the settings the server would refuse to start with (`Settings.check`)
database      the database answers
schema        the database is migrated to the newest revision
redis         Redis answers (skipped without TRIAD_REDIS_URL)
turn          every TRIAD_TURN_URLS entry allocates a relay with TRIAD_TURN_SECRET
udp-buffers   the kernel lets the SFU have the UDP receive buffer it asks for
clock         this machine's clock agrees with the database server's and Redis's
public-url    TRIAD_PUBLIC_BASE_URL answers its liveness probe (https in production)

Each check is bounded by a timeout and says why in a few words: a code, an exception's type,
a number; never a URL's password, a secret or a driver's message (which may quote them).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from redis.asyncio import Redis
from sqlalchemy import text

from ..db import migrate
from ..db.engine import Database
from ..errors import ConfigError
from ..rooms.media.seam import RECEIVE_BUFFER_BYTES
from ..rooms.media.turncheck import check_turn
from ..settings import Settings

# Join tokens tolerate TRIAD_TOKEN_LEEWAY_SECONDS (10 s) of a platform's clock; the nodes of a
# deployment stamp revocations and mint tokens and TURN credentials on their own clocks, so
# they must agree far better. NTP keeps clocks within milliseconds: seconds mean it is not
# running.
MAX_CLOCK_OFFSET_SECONDS = 2.0
CHECK_TIMEOUT_SECONDS = 5.0
HEALTH_PATH = "/healthz"
PROC_NET_CORE = Path("/proc/sys/net/core")


class Status(enum.StrEnum):
    OK = "ok"
    FAIL = "FAIL"
    SKIP = "skip"


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    reason: str

    def line(self) -> str:
        return f"{self.status.value:<4}  {self.name:<11}  {self.reason}"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Checker:
    """The checks of one run; `clock` and `proc` are this machine's unless a test moves them."""

    settings: Settings
    clock: Callable[[], datetime] = utc_now
    proc: Path = PROC_NET_CORE
    timeout: float = CHECK_TIMEOUT_SECONDS
    _db: Database | None = field(default=None, init=False)
    _db_ok: bool = field(default=False, init=False)

    async def run(self) -> list[CheckResult]:
        checks: list[tuple[str, Callable[[], Awaitable[CheckResult]]]] = [
            ("settings", self.check_settings),
            ("database", self.check_database),
            ("schema", self.check_schema),
            ("redis", self.check_redis),
            # Each URL has the timeout; they run one after another.
            ("turn", self.check_turn),
            ("udp-buffers", self.check_udp_buffers),
            ("clock", self.check_clock),
            ("public-url", self.check_public_url),
        ]
        results = []
        try:
            for name, check in checks:
                results.append(await self._bounded(name, check))
        finally:
            if self._db is not None:
                await self._db.close()
        return results

    async def _bounded(self, name: str, check: Callable[[], Awaitable[CheckResult]]) -> CheckResult:
        budget = self.timeout * max(1, len(self.settings.turn_urls)) + 1
        try:
            async with asyncio.timeout(budget if name == "turn" else self.timeout):
                return await check()
        except TimeoutError:
            return CheckResult(name, Status.FAIL, "no answer in time")
        except Exception as exc:  # a check that breaks is a failed check, named by its type
            return CheckResult(name, Status.FAIL, f"failed ({type(exc).__name__})")

    async def check_settings(self) -> CheckResult:
        try:
            self.settings.check()
        except ConfigError as exc:
            # One line: a heading ("refusing to start ...:") then its items.
            first, *items = [line.strip(" -") for line in str(exc).splitlines() if line.strip()]
            return CheckResult("settings", Status.FAIL, " ".join([first, "; ".join(items)]).strip())
        return CheckResult("settings", Status.OK, f"{self.settings.mode} mode")

    async def check_database(self) -> CheckResult:
        db = self._db = Database(self.settings.effective_database_url)
        kind = db.engine.dialect.name
        path = db.sqlite_path()
        if path is not None and not path.exists():
            return CheckResult("database", Status.FAIL, f"no {kind} file yet: run `triad migrate`")
        try:
            await db.ping()
        except OSError as exc:  # asyncpg raises socket errors unwrapped
            return CheckResult(
                "database", Status.FAIL, f"{kind} unreachable ({type(exc).__name__})"
            )
        except Exception as exc:
            cause = getattr(exc, "orig", None) or exc  # the driver's error type, not its message
            return CheckResult(
                "database", Status.FAIL, f"{kind} unreachable ({type(cause).__name__})"
            )
        self._db_ok = True
        return CheckResult("database", Status.OK, f"{kind} answers")

    async def check_schema(self) -> CheckResult:
        if self._db is None or not self._db_ok:
            return CheckResult("schema", Status.SKIP, "the database does not answer")
        async with self._db.engine.connect() as conn:
            current, head = await conn.run_sync(migrate.revisions)
        if current != head:
            where = f"at revision {current}" if current else "no schema"
            return CheckResult("schema", Status.FAIL, f"{where}, need {head}: run `triad migrate`")
        return CheckResult("schema", Status.OK, f"at revision {head}, the newest")

    def _redis(self) -> Redis | None:
        if not self.settings.redis_url:
            return None
        return Redis.from_url(
            self.settings.redis_url,
            socket_connect_timeout=self.timeout,
            socket_timeout=self.timeout,
        )

    async def check_redis(self) -> CheckResult:
        client = self._redis()
        if client is None:
            return CheckResult("redis", Status.SKIP, "TRIAD_REDIS_URL is not set")
        try:
            await client.ping()
        except (OSError, ConnectionError) as exc:
            return CheckResult("redis", Status.FAIL, f"unreachable ({type(exc).__name__})")
        except Exception as exc:  # redis-py's own errors (refused AUTH, ...)
            return CheckResult("redis", Status.FAIL, f"refused ({type(exc).__name__})")
        finally:
            await client.aclose()
        return CheckResult("redis", Status.OK, "answers")

    async def check_turn(self) -> CheckResult:
        settings = self.settings
        if not settings.turn_urls:
            return CheckResult("turn", Status.SKIP, "TRIAD_TURN_URLS is not set")
        if settings.turn_secret is None:
            return CheckResult("turn", Status.FAIL, "TRIAD_TURN_SECRET is not set")
        results = await check_turn(
            settings.turn_urls,
            settings.turn_secret.get_secret_value(),
            settings.turn_credential_ttl_seconds,
            within=self.timeout,
        )
        failed = [r for r in results if not r.ok]
        if failed:
            why = "; ".join(
                f"{r.url}: {r.verdict.value}" + (f" ({r.detail})" if r.detail else "")
                for r in failed
            )
            return CheckResult("turn", Status.FAIL, why)
        return CheckResult("turn", Status.OK, f"{len(results)} of {len(results)} URLs allocate")

    async def check_udp_buffers(self) -> CheckResult:
        # The SFU asks for a 4 MiB receive buffer per media socket (a video keyframe arrives as
        # a burst); the kernel silently caps the request at net.core.rmem_max.
        try:
            rmem_max = int((self.proc / "rmem_max").read_text())
        except (OSError, ValueError):
            return CheckResult("udp-buffers", Status.SKIP, "no /proc/sys/net/core (not Linux)")
        if rmem_max < RECEIVE_BUFFER_BYTES:
            return CheckResult(
                "udp-buffers",
                Status.FAIL,
                f"net.core.rmem_max is {rmem_max}, below the SFU's {RECEIVE_BUFFER_BYTES}: "
                f"sysctl -w net.core.rmem_max={RECEIVE_BUFFER_BYTES}",
            )
        return CheckResult(
            "udp-buffers", Status.OK, f"net.core.rmem_max {rmem_max} >= {RECEIVE_BUFFER_BYTES}"
        )

    async def check_clock(self) -> CheckResult:
        offsets: list[tuple[str, float]] = []
        if self._db is not None and self._db_ok and self._db.engine.dialect.name != "sqlite":
            offsets.append(("database", await self._offset(self._database_time)))
        client = self._redis()
        if client is not None:
            try:
                # An unreachable Redis is the redis line's failure, not the clock's.
                with contextlib.suppress(Exception):
                    offsets.append(("redis", await self._offset(lambda: _redis_time(client))))
            finally:
                await client.aclose()
        if not offsets:
            return CheckResult("clock", Status.SKIP, "no other clock to compare (SQLite, no Redis)")
        said = ", ".join(f"{name} {offset:+.3f} s" for name, offset in offsets)
        if any(abs(offset) > MAX_CLOCK_OFFSET_SECONDS for _, offset in offsets):
            return CheckResult(
                "clock", Status.FAIL, f"{said}: beyond {MAX_CLOCK_OFFSET_SECONDS:g} s (NTP?)"
            )
        return CheckResult("clock", Status.OK, said)

    async def _database_time(self) -> datetime:
        assert self._db is not None
        async with self._db.engine.connect() as conn:
            value = (await conn.execute(text("SELECT now()"))).scalar_one()
        assert isinstance(value, datetime)
        return value

    async def _offset(self, remote: Callable[[], Awaitable[datetime]]) -> float:
        """The remote clock minus ours, taken at the middle of the round trip."""
        before = self.clock()
        theirs = await remote()
        after = self.clock()
        return (theirs - (before + (after - before) / 2)).total_seconds()

    async def check_public_url(self) -> CheckResult:
        base = self.settings.base_url
        if self.settings.mode == "production" and not base.startswith("https://"):
            return CheckResult("public-url", Status.FAIL, f"{base} is not https")
        url = base + HEALTH_PATH
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as http,
                http.get(url, allow_redirects=False) as answer,
            ):
                status = answer.status
        except aiohttp.ClientError as exc:
            return CheckResult(
                "public-url", Status.FAIL, f"{url} unreachable ({type(exc).__name__})"
            )
        if status != 200:
            return CheckResult("public-url", Status.FAIL, f"{url} answered HTTP {status}")
        return CheckResult("public-url", Status.OK, f"{url} answers")


async def _redis_time(client: Redis) -> datetime:
    seconds, micros = await client.time()
    return datetime.fromtimestamp(seconds + micros / 1e6, UTC)
