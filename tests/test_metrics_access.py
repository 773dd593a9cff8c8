"""Who may read `/metrics`: with `TRIAD_METRICS_TOKEN`, a caller sending it (compared whole);
without it, loopback in development and nobody in production. Hostile headers are answered
with a code, never a 500, and the token is never echoed."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server.api.metrics_access import _is_loopback
from server.app import create_app
from server.errors import ConfigError
from server.settings import Settings
from tests.apiclient import Api
from tests.conftest import make_settings
from tests.test_metrics import scrape

TOKEN = secrets.token_urlsafe(32)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url, metrics_token=TOKEN)


async def test_the_token_is_required_and_compared_whole(api: Api) -> None:
    assert (await scrape(api, Authorization=f"Bearer {TOKEN}")).samples
    refusals = {
        "": "metrics_token_missing",
        "Bearer": "metrics_token_missing",
        "Bearer   ": "metrics_token_missing",
        f"Basic {TOKEN}": "metrics_token_missing",
        f"Token {TOKEN}": "metrics_token_missing",
        "Bearer wrong": "metrics_token_invalid",
        f"Bearer {TOKEN[:-1]}": "metrics_token_invalid",
        f"Bearer {TOKEN}x": "metrics_token_invalid",
        f"Bearer {TOKEN.upper()}": "metrics_token_invalid",
        f"Bearer {TOKEN} {TOKEN}": "metrics_token_invalid",
        "Bearer " + "a" * 4000: "metrics_token_invalid",
    }
    for header, code in refusals.items():
        headers = {"Authorization": header} if header else {}
        answer = await api.call("GET", "/metrics", headers=headers)
        assert (answer.status, answer.code) == (401, code), header[:40]
        assert answer.headers["WWW-Authenticate"] == 'Bearer realm="triad"'
        assert TOKEN not in str(answer.body)


async def test_hostile_authorization_headers_are_refused_not_failed(
    client: TestClient[Any, Any], api: Api
) -> None:
    # Bytes that are not UTF-8 (aiohttp hands them on as lone surrogates).
    raw = b"Bearer \xff\xfe" + TOKEN.encode()
    response = await client.get("/metrics", headers={"Authorization": raw.decode("latin-1")})
    assert response.status == 401
    assert (await response.json())["code"] == "metrics_token_invalid"
    # A header past aiohttp's limit (8190 bytes) is refused by its parser before any handler.
    response = await client.get("/metrics", headers={"Authorization": "Bearer " + "a" * 20_000})
    assert response.status == 400
    # ... and the server still answers.
    assert (await scrape(api, Authorization=f"Bearer {TOKEN}")).samples


async def test_without_a_token_production_serves_nobody(
    aiohttp_client: Any, tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(
        tmp_path, database_url, mode="production", public_base_url="https://triad.example"
    )
    client: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    for headers in ({}, {"Authorization": f"Bearer {TOKEN}"}):
        response = await client.get("/metrics", headers=headers)  # from loopback, even
        assert response.status == 403
        assert (await response.json())["code"] == "metrics_not_exposed"


@pytest.mark.parametrize(
    ("remote", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.1", False),
        ("192.168.1.20", False),
        ("::ffff:10.0.0.1", False),
        ("2001:db8::1", False),
        ("localhost", False),  # a name is not an address
        ("", False),
        (None, False),
    ],
)
def test_only_loopback_addresses_are_loopback(remote: str | None, loopback: bool) -> None:
    assert _is_loopback(remote) is loopback


@pytest.mark.parametrize(
    "token", ["short", "a" * 23, "with a space" + "x" * 20, "é" * 30, "tab\t" + "x" * 30]
)
def test_a_weak_or_malformed_token_is_refused_at_start(tmp_path: Path, token: str) -> None:
    settings = make_settings(tmp_path, "sqlite+aiosqlite:///:memory:", metrics_token=token)
    with pytest.raises(ConfigError, match="TRIAD_METRICS_TOKEN"):
        settings.check()
