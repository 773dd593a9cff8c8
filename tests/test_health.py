"""Liveness, readiness, and the headers the web client and API are served with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from server.api.routes import OPENAPI_KEY
from server.app import create_app
from tests.apiclient import Api
from tests.conftest import make_settings, require_service
from tests.databases import REDIS_ENV


async def _api(aiohttp_client: Any, tmp_path: Path, database_url: str, **overrides: Any) -> Api:
    app = create_app(make_settings(tmp_path, database_url, **overrides))
    client = await aiohttp_client(app)
    return Api(client, client.app[OPENAPI_KEY].model_dump())


async def test_healthz_and_readyz(api: Api) -> None:
    assert (await api.call("GET", "/healthz")).body == {"status": "ok"}
    ready = await api.call("GET", "/readyz")
    assert ready.status == 200
    assert ready.body["checks"] == {"database": "ok", "redis": "not_configured"}


async def test_readyz_checks_redis(aiohttp_client: Any, tmp_path: Path, database_url: str) -> None:
    redis_url = require_service(REDIS_ENV)
    api = await _api(aiohttp_client, tmp_path, database_url, redis_url=redis_url)
    ready = await api.call("GET", "/readyz")
    assert ready.status == 200
    assert ready.body["checks"] == {"database": "ok", "redis": "ok"}


async def test_readyz_reports_unreachable_redis(
    aiohttp_client: Any, tmp_path: Path, database_url: str
) -> None:
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    api = await _api(aiohttp_client, tmp_path, database_url, redis_url="redis://127.0.0.1:9/0")
    ready = await api.call("GET", "/readyz")
    assert (ready.status, ready.code) == (503, "not_ready")
    assert "redis" in ready.body["detail"]
    assert (await api.call("GET", "/healthz")).status == 200


async def test_join_page_headers(api: Api) -> None:
    page = await api.call("GET", "/c/c_anything", validate=False)
    assert page.status == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    csp = page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'self' http://127.0.0.1:9000" in csp
    assert "default-src 'self'" in csp
    assert page.headers["Referrer-Policy"] == "no-referrer"
    script = await api.call("GET", "/static/join.js", validate=False)
    assert script.status == 200
    assert b"/api/v1" in script.body


async def test_api_answers_are_not_cached(api: Api) -> None:
    doc = await api.call("GET", "/api/v1/openapi.json")
    assert doc.headers["Cache-Control"] == "no-store"
    assert doc.headers["X-Content-Type-Options"] == "nosniff"


async def test_every_answer_carries_a_request_id(api: Api) -> None:
    ok = await api.call("GET", "/healthz")
    problem = await api.call("GET", "/api/v1/consults/c_x", bearer="tsk_" + "A" * 43)
    missing = await api.call("GET", "/nowhere", validate=False)
    ids = [a.headers["X-Request-Id"] for a in (ok, problem, missing)]
    assert all(len(i) == 16 for i in ids)
    assert len(set(ids)) == 3


async def test_a_callers_plain_request_id_is_kept_and_a_strange_one_replaced(api: Api) -> None:
    kept = await api.client.get("/healthz", headers={"X-Request-Id": "platform-req-000123"})
    assert kept.headers["X-Request-Id"] == "platform-req-000123"
    replaced = await api.client.get("/healthz", headers={"X-Request-Id": "<script>x</script>"})
    assert replaced.headers["X-Request-Id"] != "<script>x</script>"
    assert len(replaced.headers["X-Request-Id"]) == 16


async def test_production_answers_insist_on_https(
    aiohttp_client: Any, tmp_path: Path, database_url: str
) -> None:
    api = await _api(
        aiohttp_client,
        tmp_path,
        database_url,
        mode="production",
        public_base_url="https://consult.example.test",
    )
    answer = await api.call("GET", "/healthz")
    assert answer.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    development = await _api(aiohttp_client, tmp_path, database_url)
    assert "Strict-Transport-Security" not in (await development.call("GET", "/healthz")).headers
