"""The OpenAPI document stays true: it is valid, it lists exactly the routes served, and the
error codes it and docs/api.md name are the ones the server has."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate

from server.api.routes import OPENAPI_KEY
from server.errors import ERROR_SPECS, ErrorCode
from tests.apiclient import Api

DOCS = Path(__file__).resolve().parent.parent / "docs"
NOT_API = {"join_page", "static"}  # the browser client's routes, not part of the API
SOCKET_IO = "/socket.io/"  # the consult room's Socket.IO endpoint: docs/protocol.md, not OpenAPI


async def test_document_is_valid_openapi_31(api: Api) -> None:
    answer = await api.call("GET", "/api/v1/openapi.json")
    assert answer.status == 200
    assert answer.body["openapi"] == "3.1.0"
    validate(answer.body)


def served_operations(app: web.Application) -> set[tuple[str, str]]:
    served = set()
    for route in app.router.routes():
        if route.method == "HEAD" or route.name in NOT_API:
            continue
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if path == SOCKET_IO:
            continue
        served.add((route.method.lower(), str(path)))
    return served


async def test_every_served_route_is_documented_and_only_those(
    client: TestClient[Any, Any],
) -> None:
    document = client.app[OPENAPI_KEY].model_dump()
    documented = {
        (method, path) for path, methods in document["paths"].items() for method in methods
    }
    assert served_operations(client.app) == documented


async def test_every_documented_error_is_a_problem_with_known_codes(
    client: TestClient[Any, Any],
) -> None:
    document = client.app[OPENAPI_KEY].model_dump()
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            assert operation["operationId"]
            for status, response in operation["responses"].items():
                if int(status) < 400:
                    continue
                assert "application/problem+json" in response["content"], (method, path)
                codes = response["description"].removeprefix("Problem: ").split(", ")
                for code in codes:
                    spec = ERROR_SPECS[ErrorCode(code.strip("`"))]
                    assert int(spec.status) == int(status), (method, path, code)


def test_every_error_code_is_in_the_docs_with_its_status() -> None:
    text = (DOCS / "api.md").read_text()
    for code, spec in ERROR_SPECS.items():
        assert f"`{code}`" in text, code
        assert str(int(spec.status)) in text
    assert set(ERROR_SPECS) == set(ErrorCode)


async def test_the_optional_seats_are_in_the_document(client: TestClient[Any, Any]) -> None:
    """A platform reading only the document learns of the guardian and interpreter seats,
    that a consult and a participant's session say whether the client is a minor, and whose
    consent admits the client (with a minor's assent beside it)."""
    document = client.app[OPENAPI_KEY].model_dump()
    schemas = document["components"]["schemas"]

    def properties(name: str) -> dict[str, Any]:
        found: dict[str, Any] = schemas[name]["properties"]
        return found

    assert set(schemas["Role"]["enum"]) == {
        "client",
        "therapist",
        "psychiatrist",
        "guardian",
        "interpreter",
    }
    assert properties("CreateConsultIn")["client_is_minor"]["type"] == "boolean"
    assert properties("CreateConsultIn")["participants"]["maxItems"] == 5
    for name in ("ConsultOut", "ConsultCreatedOut", "SessionConsultOut"):
        assert properties(name)["client_is_minor"]["type"] == "boolean", name
        assert "client_is_minor" in schemas[name]["required"], name
    assert properties("ConsentStateOut")["consenting_role"]["enum"] == ["client", "guardian"]
    assert {"consenting_role", "assent"} <= set(schemas["ConsentStateOut"]["required"])
    operations = {
        op["operationId"]: op for methods in document["paths"].values() for op in methods.values()
    }
    assert "guardian" in operations["createConsult"]["summary"]
    assert "interpreter" in operations["createConsult"]["summary"]
    assert "guardian" in operations["giveConsent"]["summary"]
    assert "assent" in operations["giveConsent"]["summary"]
    assert "403" in operations["giveConsent"]["responses"]  # the interpreter's refusal
