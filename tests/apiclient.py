"""A REST client for tests that checks every answer against the served OpenAPI document."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp.test_utils import TestClient
from multidict import CIMultiDict
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters


@dataclass
class _Request:
    """The request side openapi-core needs to find the operation."""

    path: str
    method: str
    query: dict[str, str]
    headers: CIMultiDict[str]
    body: bytes | None
    content_type: str
    host_url: str = "http://127.0.0.1"
    parameters: RequestParameters = field(init=False)

    def __post_init__(self) -> None:
        self.parameters = RequestParameters(query=self.query, header=self.headers, cookie={})


@dataclass
class _Response:
    data: bytes
    status_code: int
    content_type: str
    headers: CIMultiDict[str]


@dataclass
class Answer:
    status: int
    body: Any
    headers: CIMultiDict[str]

    @property
    def code(self) -> str | None:
        return self.body.get("code") if isinstance(self.body, dict) else None


class Api:
    def __init__(self, client: TestClient[Any, Any], spec: dict[str, Any]) -> None:
        self.client = client
        # Problem documents (RFC 9457) and FHIR resources are JSON under their own media types;
        # the plan's Markdown is text.
        config = Config(
            extra_media_type_deserializers={
                "application/problem+json": json.loads,
                "application/fhir+json": json.loads,
                "text/markdown": lambda raw: raw.decode() if isinstance(raw, bytes) else raw,
            }
        )
        self.openapi = OpenAPI.from_dict(spec, config=config)

    async def call(
        self,
        method: str,
        path: str,
        *,
        bearer: str | None = None,
        json_body: Any = None,
        data: bytes | None = None,
        content_type: str | None = None,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        validate: bool = True,
    ) -> Answer:
        headers = dict(headers or {})
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        if json_body is not None:
            data = json.dumps(json_body).encode()
            content_type = content_type or "application/json"
        if content_type is not None:
            headers["Content-Type"] = content_type
        response = await self.client.request(method, path, headers=headers, data=data, params=query)
        raw = await response.read()
        if validate:
            self.openapi.validate_response(
                _Request(
                    path=path,
                    method=method.lower(),
                    query=query or {},
                    headers=CIMultiDict(headers),
                    body=data,
                    content_type=content_type or "",
                ),
                _Response(
                    data=raw,
                    status_code=response.status,
                    content_type=response.headers.get("Content-Type", "").split(";")[0],
                    headers=CIMultiDict(response.headers),
                ),
            )
        body = json.loads(raw) if raw and "json" in response.content_type else raw
        return Answer(response.status, body, CIMultiDict(response.headers))
