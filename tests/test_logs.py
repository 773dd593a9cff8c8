"""Logs carry ids and codes, never tokens, secrets, names or the bodies people send."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from server import logs
from server.api.context import SERVICES
from server.api.routes import OPENAPI_KEY
from tests.apiclient import Api
from tests.conftest import consult_body, new_platform, participant


async def test_a_whole_consult_leaves_no_secret_in_the_log(
    aiohttp_client: Any, app: web.Application, log_stream: io.StringIO
) -> None:
    server = TestServer(app)
    # The access logger `triad serve` uses, not aiohttp's default (which logs query strings).
    await server.start_server(access_log_class=logs.AccessLogger)
    client = await aiohttp_client(server)
    api = Api(client, client.app[OPENAPI_KEY].model_dump())
    key = await new_platform(client.app[SERVICES], "Log Clinic")
    secret_words = "Quetiapine-Xylophone"
    created = await api.call(
        "POST",
        "/api/v1/consults",
        bearer=key.secret,
        json_body=consult_body(external_id=secret_words),
    )
    consult = created.body
    base = f"/api/v1/consults/{consult['id']}"
    client_p = participant(consult, "client")
    token = client_p["join"]["token"]
    await api.call("GET", base + "/session", bearer=token)
    await api.call("GET", base + "/session", bearer=token[:-3] + "abc")
    # A client that puts a token where it must not: the query string.
    await client.get(base + "/session", params={"token": token})
    await api.call("POST", "/api/v1/consults", bearer=key.secret, data=b"{" + secret_words.encode())
    await api.call("DELETE", f"{base}/participants/{client_p['id']}/tokens", bearer=key.secret)
    await api.call("POST", base + "/end", bearer=key.secret)
    await api.call("GET", base, bearer="tsk_" + "Z" * 43)

    text = log_stream.getvalue()
    assert '"event": "http_request"' in text
    assert '"code": "token_invalid"' in text
    # The refusal and its access line carry the same request id as the answer's header.
    refused = await client.get(base + "/session", headers={"Authorization": "Bearer x.y.z"})
    request_id = refused.headers["X-Request-Id"]
    events = [
        json.loads(line)["event"]
        for line in log_stream.getvalue().splitlines()
        if request_id in line
    ]
    assert "request_refused" in events
    assert "http_request" in events
    assert consult["id"] in text  # ids are fine, and useful
    for p in consult["participants"]:
        assert p["join"]["token"] not in text
        assert p["name"] not in text
    assert key.secret not in text
    assert "Z" * 43 not in text
    assert secret_words not in text
    assert "eyJ" not in text


def test_redaction_catches_what_libraries_log(log_stream: io.StringIO) -> None:
    jwt_like = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwXzEifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
    logging.getLogger("some.library").warning("fetching /x?token=%s", jwt_like)
    logs.get("triad.test").info("event", detail={"nested": ["tsk_" + "q" * 43]})
    text = log_stream.getvalue()
    assert jwt_like not in text
    assert "q" * 43 not in text
    assert text.count(logs.REDACTED) == 2, text


async def test_an_unexpected_error_is_a_problem_and_its_message_stays_out_of_the_log(
    aiohttp_client: Any, app: web.Application, log_stream: io.StringIO
) -> None:
    async def fails(_request: web.Request) -> web.Response:
        raise RuntimeError("Alex Rivera reports thoughts of self-harm")

    app.router.add_get("/api/v1/fails", fails)
    client = await aiohttp_client(app)
    response = await client.get("/api/v1/fails")
    assert response.status == 500
    problem = await response.json(content_type="application/problem+json")
    assert problem["code"] == "internal"
    assert "self-harm" not in str(problem)
    text = log_stream.getvalue()
    assert '"error": "RuntimeError"' in text
    assert "in fails" in text  # where it happened is kept
    assert "self-harm" not in text
    assert "Alex Rivera" not in text


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_a_failure_logs_where_it_happened_in_either_format(fmt: str) -> None:
    stream = io.StringIO()
    logs.configure("info", fmt, stream=stream)
    try:
        try:
            raise RuntimeError("Alex Rivera's plan")
        except RuntimeError as exc:
            logs.get("triad.test").error("work_failed", **logs.failure(exc))
    finally:
        for handler in list(logging.getLogger().handlers):
            if getattr(handler, "_triad", False):
                logging.getLogger().removeHandler(handler)
    text = stream.getvalue()
    assert "work_failed" in text
    assert "RuntimeError" in text
    assert "test_a_failure_logs_where_it_happened_in_either_format" in text
    assert "Alex Rivera" not in text
