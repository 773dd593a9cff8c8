"""The socket protocol's AsyncAPI document stays true: it is valid AsyncAPI 3.0 (against the
specification's own JSON Schema), the namespace answers exactly the client events it documents,
the copy in docs/ is the one the server serves, and docs/protocol.md names the same events.

That every payload the server sends and every acknowledgement matches the document is checked
by every room test: `tests/roomclient.py` validates each one against the same models."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from server.errors import ErrorCode
from server.rooms.events import SERVER_EVENTS
from server.signaling import asyncapi
from server.signaling.contract import CLIENT_EVENTS, COMMON_ERRORS
from server.signaling.namespace import ConsultNamespace
from tests.apiclient import Api

ROOT = Path(__file__).resolve().parent.parent
SPEC_SCHEMAS = ROOT / "web" / "node_modules" / "@asyncapi" / "specs" / "schemas"
DOCUMENT = ROOT / "docs" / "asyncapi.json"


def asyncapi_validator() -> Draft7Validator:
    """The AsyncAPI 3.0.0 JSON Schema as the AsyncAPI initiative publishes it (npm
    `@asyncapi/specs`, installed by scripts/install with the web client's packages)."""
    schema = json.loads((SPEC_SCHEMAS / "3.0.0.json").read_text())
    registry: Registry[Any] = Registry().with_resource(
        schema["$id"], Resource.from_contents(schema, default_specification=DRAFT7)
    )
    for uri, definition in schema.get("definitions", {}).items():
        registry = registry.with_resource(
            uri, Resource.from_contents(definition, default_specification=DRAFT7)
        )
    return Draft7Validator(schema, registry=registry)


def errors_of(document: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message}"
        for e in asyncapi_validator().iter_errors(document)
    ]


async def test_served_document_is_valid_asyncapi_3(api: Api) -> None:
    answer = await api.call("GET", "/api/v1/asyncapi.json")
    assert answer.status == 200
    assert answer.body["asyncapi"] == "3.0.0"
    assert errors_of(answer.body) == []


def test_the_validator_rejects_a_broken_document() -> None:
    document = asyncapi.build(version="0")
    del document["info"]
    document["operations"]["join"]["action"] = "publish"  # AsyncAPI 2's word, not 3's
    problems = errors_of(document)
    assert problems, "a document without info and with a wrong action must not validate"


def test_namespace_answers_exactly_the_documented_events() -> None:
    namespace = ConsultNamespace(lambda: pytest.fail("deps are not needed to list events"))
    documented = {
        message["name"]
        for key, message in asyncapi.build(version="0")["channels"]["consult"]["messages"].items()
        if not key.endswith(("Ack", "Event"))
    }
    assert namespace.handled_events == documented == {e.name for e in CLIENT_EVENTS}


def test_every_operation_names_its_messages() -> None:
    document = asyncapi.build(version="0")
    messages = document["channels"]["consult"]["messages"]
    received = [op for op in document["operations"].values() if op["action"] == "receive"]
    sent = [op for op in document["operations"].values() if op["action"] == "send"]
    assert len(received) == len(CLIENT_EVENTS)
    assert len(sent) == len(SERVER_EVENTS)
    for operation in document["operations"].values():
        for ref in operation["messages"] + operation.get("reply", {}).get("messages", []):
            assert ref["$ref"].rsplit("/", 1)[1] in messages
    assert all("reply" in op for op in received)


def test_documented_errors_are_real_codes() -> None:
    for event in CLIENT_EVENTS:
        for code in event.all_errors():
            assert ErrorCode(code) is code


def test_docs_copy_is_the_served_document() -> None:
    """docs/asyncapi.json is regenerated with `scripts/asyncapi` whenever the protocol changes."""
    built = asyncapi.build(version="docs")
    assert json.loads(DOCUMENT.read_text()) == json.loads(json.dumps(built, default=str))


def test_protocol_doc_lists_the_same_events() -> None:
    text = (ROOT / "docs" / "protocol.md").read_text()
    client_table = text.split("## Client → server events", 1)[1].split("## Server", 1)[0]
    server_table = text.split("## Server → client events", 1)[1].split("\n## ", 1)[0]
    listed_client = set(re.findall(r"^\| `([a-z-]+)` \|", client_table, re.MULTILINE))
    listed_server = set(re.findall(r"^\| `([a-z-]+)` \|", server_table, re.MULTILINE))
    assert listed_client == {e.name for e in CLIENT_EVENTS}
    assert listed_server == {e.event for e in SERVER_EVENTS}


def test_protocol_doc_lists_each_events_error_codes() -> None:
    """The errors column of docs/protocol.md's client-event table names the same codes as the
    contract (the common ones are listed once, under the table)."""
    text = (ROOT / "docs" / "protocol.md").read_text()
    table = text.split("## Client → server events", 1)[1].split("## Server", 1)[0]
    codes = {code.value for code in ErrorCode}
    for event in CLIENT_EVENTS:
        row = re.search(rf"^\| `{re.escape(event.name)}` \|(.*)$", table, re.MULTILINE)
        assert row is not None, event.name
        errors_cell = row.group(1).rsplit(" | ", 1)[1]
        common = {code.value for code in COMMON_ERRORS}
        named = set(re.findall(r"`([a-z_]+)`", errors_cell)) & codes - common
        assert named == {code.value for code in event.errors} - common, event.name
