"""The `triad` command line, run as a real process on a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from server.db import migrate
from tests.ports import free_port

LINK = re.compile(r"^\s+(client|therapist|psychiatrist)\s+(http://\S+)$", re.MULTILINE)
DEADLINE = 30.0
ROOT = Path(__file__).resolve().parent.parent


def triad_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIAD_")}
    env.update({"TRIAD_DATA_DIR": str(tmp_path / "var"), "TRIAD_LOG_FORMAT": "json"}, **extra)
    return env


def triad(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        env=triad_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )


def test_serve_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    result = triad(tmp_path, "serve", "--port", str(free_port()))
    assert result.returncode == 2
    assert "run `triad migrate`" in result.stderr


def test_production_mode_refuses_missing_secrets(tmp_path: Path) -> None:
    result = triad(tmp_path, "serve", TRIAD_MODE="production")
    assert result.returncode == 2
    assert "TRIAD_ENCRYPTION_KEYS is not set" in result.stderr
    assert "TRIAD_PUBLIC_BASE_URL" in result.stderr


def test_production_migrate_refuses_without_the_encryption_keys(tmp_path: Path) -> None:
    """Migrating seals existing rows (0005); a generated development key would seal them with
    a key the production server never holds."""
    result = triad(tmp_path, "migrate", TRIAD_MODE="production")
    assert result.returncode == 2
    assert "TRIAD_ENCRYPTION_KEYS is not set" in result.stderr
    assert not list(tmp_path.rglob("dev-encryption-key"))


def test_invalid_setting_is_named(tmp_path: Path) -> None:
    result = triad(tmp_path, "migrate", TRIAD_PORT="eighty")
    assert result.returncode == 2
    assert "TRIAD_PORT" in result.stderr


def test_an_unknown_event_loop_is_refused(tmp_path: Path) -> None:
    result = triad(tmp_path, "serve", "--port", str(free_port()), TRIAD_EVENT_LOOP="trio")
    assert result.returncode == 2
    assert "TRIAD_EVENT_LOOP: Input should be 'uvloop' or 'asyncio'" in result.stderr


def test_migrate_apikey_demo_and_token(tmp_path: Path) -> None:
    assert f"revision {migrate.head()}" in triad(tmp_path, "migrate").stdout
    assert triad(tmp_path, "migrate").returncode == 0  # idempotent

    created = triad(tmp_path, "apikey", "create", "Acme Health")
    assert created.returncode == 0
    key_id = re.search(r"key id\s+(key_\S+)", created.stdout)
    secret = re.search(r"secret\s+(tsk_\S+)", created.stdout)
    assert key_id
    assert secret

    demo = triad(tmp_path, "demo")
    assert demo.returncode == 0
    links = dict(LINK.findall(demo.stdout))
    assert set(links) == {"client", "therapist", "psychiatrist"}
    consult_id = re.search(r"/c/(c_[\w-]+)#token=", links["client"])
    assert consult_id

    token = triad(tmp_path, "token", consult_id.group(1), "psychiatrist", "--ttl", "600")
    assert token.returncode == 0
    assert token.stdout.strip().startswith(f"http://127.0.0.1:8080/c/{consult_id.group(1)}#token=")
    too_short = triad(tmp_path, "token", consult_id.group(1), "client", "--ttl", "5")
    assert too_short.returncode == 2

    revoked = triad(tmp_path, "apikey", "revoke", key_id.group(1))
    assert revoked.returncode == 0
    assert triad(tmp_path, "apikey", "revoke", key_id.group(1)).returncode == 1
    assert triad(tmp_path, "token", "c_nope", "client").returncode == 1


def test_keygen_prints_a_usable_key(tmp_path: Path) -> None:
    spec = triad(tmp_path, "keygen").stdout.strip()
    assert re.fullmatch(r"k1:[A-Za-z0-9+/]{43}=", spec)


async def _read_links(stream: asyncio.StreamReader, until: float) -> tuple[str, dict[str, str]]:
    seen = ""
    while time.monotonic() < until:
        line = await asyncio.wait_for(stream.readline(), until - time.monotonic())
        if not line:
            break
        seen += line.decode()
        links = dict(LINK.findall(seen))
        if len(links) == 3:
            return seen, links
    raise AssertionError(f"no three join links in time; output so far:\n{seen}")


async def _serve_and_check_links(command: list[str], env: dict[str, str], port: int) -> str:
    """Start the server, follow each printed join link like a browser, stop it; the log."""
    proc = await asyncio.create_subprocess_exec(
        *command,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        _, links = await _read_links(proc.stdout, time.monotonic() + DEADLINE)
        async with aiohttp.ClientSession() as http:
            for role, link in links.items():
                assert link.startswith(f"http://127.0.0.1:{port}/c/")
                page_url, token = link.split("#token=")
                async with http.get(page_url) as page:
                    assert page.status == 200
                    assert "text/html" in page.headers["Content-Type"]
                consult_id = page_url.rsplit("/", 1)[1]
                async with http.get(
                    f"http://127.0.0.1:{port}/api/v1/consults/{consult_id}/session",
                    headers={"Authorization": f"Bearer {token}"},
                ) as answer:
                    assert answer.status == 200
                    body: dict[str, Any] = await answer.json()
                    assert body["you"]["role"] == role
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), DEADLINE)
    assert proc.returncode == 0
    return stderr.decode()


async def test_serve_with_demo_prints_three_working_links(tmp_path: Path) -> None:
    assert triad(tmp_path, "migrate").returncode == 0
    port = free_port()
    log = await _serve_and_check_links(
        [sys.executable, "-m", "server", "serve", "--port", str(port), "--demo"],
        triad_env(tmp_path),
        port,
    )
    assert '"event": "http_request"' in log
    assert "eyJ" not in log  # the tokens went by; the log has none of them


async def test_the_readme_run_command(tmp_path: Path) -> None:
    """`./scripts/run`, as the README gives it: migrates a new SQLite file, serves, prints links."""
    port = free_port()
    env = triad_env(tmp_path, TRIAD_PORT=str(port))
    await _serve_and_check_links([str(ROOT / "scripts" / "run")], env, port)
    assert (tmp_path / "var" / "triad.db").exists()


async def _listening(stream: asyncio.StreamReader, until: float) -> dict[str, Any]:
    """The server's `listening` log event (JSON lines on stderr)."""
    seen = ""
    while time.monotonic() < until:
        line = await asyncio.wait_for(stream.readline(), until - time.monotonic())
        if not line:
            break
        seen += line.decode()
        if line.startswith(b"{"):
            event: dict[str, Any] = json.loads(line)
            if event["event"] == "listening":
                return event
    raise AssertionError(f"no listening event in time; log so far:\n{seen}")


@pytest.mark.parametrize(
    ("setting", "loop"), [({}, "uvloop"), ({"TRIAD_EVENT_LOOP": "asyncio"}, "asyncio")]
)
async def test_serve_runs_on_the_event_loop_the_setting_names(
    tmp_path: Path, setting: dict[str, str], loop: str
) -> None:
    assert triad(tmp_path, "migrate").returncode == 0
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "server", "serve", "--port", str(port)],
        env=triad_env(tmp_path, **setting),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert proc.stderr is not None
        listening = await _listening(proc.stderr, time.monotonic() + DEADLINE)
        assert listening["event_loop"] == loop
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/readyz") as ready,
        ):
            assert ready.status == 200  # the database answers on that loop too
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), DEADLINE)
    assert proc.returncode == 0


@pytest.mark.parametrize(
    "verb", ["serve", "migrate", "demo", "apikey", "token", "keygen", "check", "keys", "prune"]
)
def test_help_for_every_verb(tmp_path: Path, verb: str) -> None:
    result = triad(tmp_path, verb, "--help")
    assert result.returncode == 0
    assert "usage: triad" in result.stdout
