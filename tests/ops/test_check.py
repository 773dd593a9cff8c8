"""`triad check` as a real process: a good configuration passes every line (exit 0), then each
setting broken in turn fails its own line and the exit status. Network to loopback only: the
test's own Triad server as the public URL, the test's database and Redis, a real coturn."""

from __future__ import annotations

import asyncio
import base64
import secrets
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from redis.asyncio import Redis

from server.ops.checks import MAX_CLOCK_OFFSET_SECONDS, Checker, CheckResult, Status
from server.rooms.media.seam import RECEIVE_BUFFER_BYTES
from server.settings import Settings
from tests.conftest import TEST_KEY, make_settings
from tests.coturn import Coturn
from tests.databases import PostgresFactory
from tests.ports import free_port
from tests.test_cli import DEADLINE, triad, triad_env

CHECKS = (
    "settings",
    "database",
    "schema",
    "redis",
    "turn",
    "udp-buffers",
    "clock",
    "public-url",
)


def buffers_suffice() -> bool:
    """Whether this machine passes `udp-buffers` (a sysctl the test cannot set)."""
    try:
        return int(Path("/proc/sys/net/core/rmem_max").read_text()) >= RECEIVE_BUFFER_BYTES
    except OSError:
        return True  # skipped, not failed


def lines(stdout: str) -> dict[str, tuple[str, str]]:
    """check name -> (status, reason), and every check present once, in order."""
    found = {}
    for line in stdout.splitlines():
        status, name, reason = line.split(maxsplit=2)
        found[name] = (status, reason)
    assert tuple(found) == CHECKS, stdout
    return found


@pytest.fixture
def good(
    tmp_path: Path, database_url: str, redis_url: str, coturn: Coturn, base_url: str
) -> dict[str, str]:
    """A configuration every check passes: the test's database, Redis, coturn (its TLS
    certificate trusted) and the test's own server as the public URL."""
    return {
        "TRIAD_DATABASE_URL": database_url,
        "TRIAD_REDIS_URL": redis_url,
        "TRIAD_ENCRYPTION_KEYS": TEST_KEY,
        "TRIAD_PUBLIC_BASE_URL": base_url,
        "TRIAD_TURN_URLS": ",".join(coturn.urls()),
        "TRIAD_TURN_SECRET": coturn.config.secret,
        "SSL_CERT_FILE": str(coturn.ca_path),
    }


async def run_check(tmp_path: Path, env: dict[str, str]) -> tuple[int, dict[str, tuple[str, str]]]:
    """`triad check` without blocking the event loop (the test's own server answers on it)."""
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "server", "check"],
        env=triad_env(tmp_path, **env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), DEADLINE)
    assert b"Traceback" not in stderr, stderr.decode()
    assert proc.returncode is not None
    return proc.returncode, lines(stdout.decode())


async def test_a_good_configuration_passes_every_check(
    tmp_path: Path, good: dict[str, str], database_url: str
) -> None:
    code, found = await run_check(tmp_path, good)
    for name, (status, reason) in found.items():
        if name == "udp-buffers" and not buffers_suffice():
            assert status == "FAIL"
        elif name == "clock" and database_url.startswith("sqlite"):
            assert status == "ok"  # against Redis's clock (SQLite is this machine's)
            assert "redis" in reason
            assert "database" not in reason
        else:
            assert status == "ok", (name, reason)
    assert code == (0 if buffers_suffice() else 1)
    assert good["TRIAD_TURN_SECRET"] not in str(found)
    assert "3 of 3 URLs allocate" in found["turn"][1]


def closed_url(scheme: str) -> str:
    return f"{scheme}://127.0.0.1:{free_port()}"


@pytest.mark.parametrize(
    ("broken", "change"),
    [
        ("settings", {"TRIAD_MODE": "production", "TRIAD_ICE_UDP_PORT_MIN": "50000"}),
        ("database", {"TRIAD_DATABASE_URL": closed_url("postgresql+asyncpg") + "/triad"}),
        ("redis", {"TRIAD_REDIS_URL": closed_url("redis") + "/0"}),
        ("turn", {"TRIAD_TURN_SECRET": "not-the-secret-coturn-has"}),
        ("public-url", {"TRIAD_PUBLIC_BASE_URL": closed_url("http")}),
    ],
)
async def test_each_broken_setting_fails_its_line(
    tmp_path: Path, good: dict[str, str], broken: str, change: dict[str, str]
) -> None:
    code, found = await run_check(tmp_path, {**good, **change})
    assert code == 1
    assert found[broken][0] == "FAIL", found
    failed = {name for name, (status, _) in found.items() if status == "FAIL"}
    allowed = {broken, "udp-buffers"}
    if broken == "database":
        assert found["schema"][0] == "skip"
    if broken == "settings":
        allowed.add("public-url")  # production wants https there too
    assert failed <= allowed, found
    for secret in (good["TRIAD_TURN_SECRET"], "not-the-secret-coturn-has", TEST_KEY):
        assert secret not in str(found)


async def test_a_broken_settings_line_says_what(tmp_path: Path, good: dict[str, str]) -> None:
    _, found = await run_check(tmp_path, {**good, "TRIAD_ICE_UDP_PORT_MIN": "50000"})
    assert found["settings"] == (
        "FAIL",
        "set TRIAD_ICE_UDP_PORT_MIN and TRIAD_ICE_UDP_PORT_MAX together",
    )
    _, production = await run_check(tmp_path, {**good, "TRIAD_MODE": "production"})
    assert "TRIAD_PUBLIC_BASE_URL must be an https:// URL" in production["settings"][1]
    assert production["public-url"][0] == "FAIL"
    assert "is not https" in production["public-url"][1]


async def test_a_wrong_turn_secret_is_unauthorized(tmp_path: Path, good: dict[str, str]) -> None:
    _, found = await run_check(tmp_path, {**good, "TRIAD_TURN_SECRET": "not-the-secret-coturn-has"})
    assert found["turn"][1].count("unauthorized (401)") == 3


def test_an_invalid_value_is_named_and_exits_2(tmp_path: Path) -> None:
    result = triad(tmp_path, "check", TRIAD_PORT="x")
    assert result.returncode == 2
    assert "TRIAD_PORT" in result.stderr


@pytest.mark.postgres
async def test_an_unmigrated_database_fails_the_schema_line(
    tmp_path: Path, postgres: PostgresFactory
) -> None:
    async with postgres.database(migrated=False) as url:
        _, found = await run_check(tmp_path, {"TRIAD_DATABASE_URL": url})
    assert found["database"][0] == "ok"
    assert found["schema"] == ("FAIL", "no schema, need " + found["schema"][1].split("need ")[1])
    assert "run `triad migrate`" in found["schema"][1]


async def test_an_empty_sqlite_file_fails_the_schema_line(tmp_path: Path) -> None:
    assert triad(tmp_path, "migrate").returncode == 0
    empty = tmp_path / "empty.db"
    empty.touch()
    _, found = await run_check(tmp_path, {"TRIAD_DATABASE_URL": f"sqlite+aiosqlite:///{empty}"})
    assert found["schema"][0] == "FAIL"
    _, found = await run_check(
        tmp_path, {"TRIAD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/no.db"}
    )
    assert found["database"] == ("FAIL", "no sqlite file yet: run `triad migrate`")
    assert found["schema"][0] == "skip"


class ShiftedClock:
    def __init__(self, by: timedelta) -> None:
        self.by = by

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.by


async def clock_line(settings: Settings, clock: ShiftedClock) -> CheckResult:
    results = await Checker(settings, clock=clock).run()
    return next(r for r in results if r.name == "clock")


@pytest.mark.postgres
async def test_a_clock_off_by_more_than_the_limit_fails(
    tmp_path: Path, cluster_database: str, redis_url: str
) -> None:
    settings = make_settings(tmp_path, cluster_database, redis_url=redis_url)
    near = ShiftedClock(timedelta(seconds=MAX_CLOCK_OFFSET_SECONDS / 4))
    result = await clock_line(settings, near)
    assert result.status is Status.OK, result
    far = ShiftedClock(timedelta(seconds=-30))
    result = await clock_line(settings, far)
    assert result.status is Status.FAIL
    assert "database +30." in result.reason
    assert "redis +30." in result.reason


@pytest.mark.parametrize(
    ("rmem_max", "status"),
    [(RECEIVE_BUFFER_BYTES, Status.OK), (212992, Status.FAIL), (None, Status.SKIP)],
)
async def test_udp_buffers_below_the_sfus_request_fail(
    tmp_path: Path, rmem_max: int | None, status: Status
) -> None:
    if rmem_max is not None:
        (tmp_path / "rmem_max").write_text(f"{rmem_max}\n")
    settings = make_settings(tmp_path, "sqlite+aiosqlite:///:memory:")
    result = await Checker(settings, proc=tmp_path).check_udp_buffers()
    assert result.status is status, result
    if status is Status.FAIL:
        assert f"sysctl -w net.core.rmem_max={RECEIVE_BUFFER_BYTES}" in result.reason


async def test_redis_is_used_only_when_configured(redis_url: str, tmp_path: Path) -> None:
    async with Redis.from_url(redis_url) as client:
        assert await client.ping()
    key = "k9:" + base64.b64encode(secrets.token_bytes(32)).decode()
    settings = make_settings(tmp_path, "sqlite+aiosqlite:///:memory:", encryption_keys=key)
    assert (await Checker(settings).check_redis()).status is Status.SKIP
