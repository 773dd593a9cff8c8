"""The OpenAPI 3.1 document, built from the same operations the router serves."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from ..errors import ERROR_SPECS, ErrorCode
from . import webhook_docs
from .operations import JSON_TYPE, PATH_ID_PATTERN, Operation
from .problems import PROBLEM_TYPE
from .ratelimit import RETRY_AFTER
from .schemas import ProblemOut

_PATH_PARAM = re.compile(r"{(\w+)}")
_REF = "#/components/schemas/{model}"
_PATH_ID_SCHEMA = {"type": "string", "pattern": PATH_ID_PATTERN}
_RETRY_AFTER_HEADER = {
    "required": True,
    "description": "Whole seconds until the caller's budget allows another request.",
    "schema": {"type": "integer", "minimum": 1},
}
_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "api_key": [{"apiKey": []}],
    "join_token": [{"joinToken": []}],
    # Without TRIAD_METRICS_TOKEN a development server answers loopback callers unauthenticated:
    # the empty alternative says so.
    "metrics_token": [{"metricsToken": []}, {}],
    "none": [],
}


def build(operations: tuple[Operation, ...], *, version: str) -> dict[str, Any]:
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ProblemOut, "serialization")]
    for op in operations:
        if op.body is not None:
            models.append((op.body, "validation"))
        models += [(m, "serialization") for _, m in op.responses.values() if m is not None]
    refs, top = models_json_schema(list(dict.fromkeys(models)), ref_template=_REF)

    def ref(model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
        return dict(refs[(model, mode)])

    paths: dict[str, dict[str, Any]] = defaultdict(dict)
    for op in operations:
        paths[op.path][op.method.lower()] = _operation(op, ref)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Triad consult API",
            "version": version,
            "description": (
                "Create consults of a client, a therapist and a psychiatrist (optionally with "
                "a minor's guardian and an interpreter), mint and revoke join links, end "
                "consults and read their plans, consent and audit trail. Errors are RFC 9457 "
                "problem documents whose `code` is stable."
            ),
        },
        "servers": [{"url": "/"}],
        "paths": dict(paths),
        # What Triad POSTs to a platform's webhook endpoints (docs/api.md, "Webhooks").
        "webhooks": webhook_docs.webhooks(),
        "components": {
            "schemas": top.get("$defs", {}),
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A platform API secret (tsk_...).",
                },
                "joinToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A participant's join token.",
                },
                "metricsToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The scrape token (TRIAD_METRICS_TOKEN).",
                },
            },
        },
    }


def _operation(op: Operation, ref: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": list(op.tags),
        "security": _SECURITY[op.auth],
        "responses": {},
    }
    if op.description:
        doc["description"] = op.description
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": _PATH_ID_SCHEMA}
        for name in _PATH_PARAM.findall(op.path)
    ]
    for name, header in op.request_headers.items():
        parameters.append({"name": name, "in": "header", **header})
    if op.query is not None:
        for name, info in op.query.model_fields.items():
            schema = op.query.model_json_schema()["properties"][name]
            parameters.append(
                {"name": name, "in": "query", "required": info.is_required(), "schema": schema}
            )
    if parameters:
        doc["parameters"] = parameters
    if op.body is not None:
        doc["requestBody"] = {
            "required": op.body_required,
            "content": {JSON_TYPE: {"schema": ref(op.body, "validation")}},
        }
    for status, (description, model) in sorted(op.responses.items()):
        response: dict[str, Any] = {"description": description}
        if model is not None:
            response["content"] = {op.media_type: {"schema": ref(model, "serialization")}}
            for alternate in op.alternates:
                response["content"][alternate] = {"schema": {"type": "string"}}
        elif op.media_type != JSON_TYPE:  # a text body (the metrics' exposition)
            response["content"] = {op.media_type: {"schema": {"type": "string"}}}
        if op.response_headers:
            response["headers"] = op.response_headers
        doc["responses"][str(status)] = response
    by_status: dict[int, list[ErrorCode]] = defaultdict(list)
    for code in op.all_errors():
        by_status[int(ERROR_SPECS[code].status)].append(code)
    problem = ref(ProblemOut, "serialization")
    for status, codes in sorted(by_status.items()):
        doc["responses"][str(status)] = {
            "description": "Problem: " + ", ".join(f"`{c}`" for c in codes),
            "content": {PROBLEM_TYPE: {"schema": problem}},
        }
        if status == 429:
            doc["responses"]["429"]["headers"] = {RETRY_AFTER: _RETRY_AFTER_HEADER}
    return doc
