"""The AsyncAPI 3.0 document of the consult namespace, built from the same tables the server
runs on: the client events (`contract.CLIENT_EVENTS`) and the server events
(`rooms.events.SERVER_EVENTS`). From the server's point of view a client event is an operation
it `receive`s (with the acknowledgement as its reply) and a server event one it `send`s."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from ..rooms.events import SERVER_EVENTS
from .channel import NAMESPACE
from .contract import CLIENT_EVENTS, Refusal

_REF = "#/components/schemas/{model}"
_CHANNEL = "consult"


def _key(event: str) -> str:
    """An event name as a component key (`notes-update` -> `notesUpdate`)."""
    head, *rest = event.split("-")
    return head + "".join(part.capitalize() for part in rest)


def build(*, version: str) -> dict[str, Any]:
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [(Refusal, "serialization")]
    for client in CLIENT_EVENTS:
        models += [(client.payload, "validation"), (client.ack, "serialization")]
    models += [(server, "serialization") for server in SERVER_EVENTS]
    refs, top = models_json_schema(list(dict.fromkeys(models)), ref_template=_REF)

    def ref(model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
        return dict(refs[(model, mode)])

    channel_ref = {"$ref": f"#/channels/{_CHANNEL}"}
    messages: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    refusal = ref(Refusal, "serialization")
    for client in CLIENT_EVENTS:
        key = _key(client.name)
        messages[key] = {
            "name": client.name,
            "title": client.name,
            "summary": client.summary,
            "payload": ref(client.payload, "validation"),
        }
        ack_key = key + "Ack"
        messages[ack_key] = {
            "name": ack_key,
            "summary": f"The acknowledgement of `{client.name}`: success, or a refusal with "
            + ", ".join(f"`{code}`" for code in client.all_errors()),
            "payload": {"oneOf": [ref(client.ack, "serialization"), refusal]},
        }
        operations[key] = {
            "action": "receive",
            "channel": channel_ref,
            "summary": client.summary,
            "messages": [{"$ref": f"#/channels/{_CHANNEL}/messages/{key}"}],
            "reply": {
                "channel": channel_ref,
                "messages": [{"$ref": f"#/channels/{_CHANNEL}/messages/{ack_key}"}],
            },
        }
    for server in SERVER_EVENTS:
        key = _key(server.event) + "Event"
        messages[key] = {
            "name": server.event,
            "title": server.event,
            "summary": _first_line(server.__doc__) or server.event,
            "payload": ref(server, "serialization"),
        }
        operations["send" + key[0].upper() + key[1:]] = {
            "action": "send",
            "channel": channel_ref,
            "summary": _first_line(server.__doc__) or server.event,
            "messages": [{"$ref": f"#/channels/{_CHANNEL}/messages/{key}"}],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Triad consult room",
            "version": version,
            "description": (
                "The Socket.IO protocol of a consult room: the join token goes in the connect "
                "`auth`; every client event is acknowledged `{ok: true, ...}` or `{ok: false, "
                "error: {code, message}}`. Binary fields travel as Socket.IO attachments. "
                "See docs/protocol.md."
            ),
        },
        "defaultContentType": "application/json",
        "channels": {
            _CHANNEL: {
                "address": NAMESPACE,
                "title": "The /consult Socket.IO namespace",
                "messages": messages,
            }
        },
        "operations": operations,
        "components": {"schemas": top.get("$defs", {})},
    }


def _first_line(doc: str | None) -> str:
    return re.sub(r"\s+", " ", (doc or "").strip().split("\n\n")[0])
