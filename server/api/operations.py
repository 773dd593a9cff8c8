"""Operations: one declaration per route that both the router and the OpenAPI document read.

A handler receives a `Call` whose caller is already authenticated and whose body and query are
already validated against the declared models; it returns a `Reply`. Everything a route can
answer, errors included, is thus written in one place and cannot drift from the document.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from .. import jsonlimits
from ..consults.model import ConsultView, JoinIdentity, PlatformCaller
from ..errors import ErrorCode, FieldError, TriadError
from ..ids import ConsultId
from .context import METRICS_ACCESS, RATE_LIMITS, SERVICES

Auth = Literal["api_key", "join_token", "metrics_token", "none"]
ModelT = TypeVar("ModelT", bound=BaseModel)

# Path ids are ours: a prefix and url-safe base64 (server/ids.py). Anything else names nothing,
# and is answered `not_found` before a database sees it (PostgreSQL refuses a NUL in text).
PATH_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_PATH_ID = re.compile(PATH_ID_PATTERN)

JSON_TYPE = "application/json"
FHIR_JSON_TYPE = "application/fhir+json"
MARKDOWN_TYPE = "text/markdown"


@dataclass(frozen=True)
class Reply:
    status: int
    body: BaseModel | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # A body that is not the operation's JSON: its text and media type (e.g. Markdown).
    text: str | None = None
    # The JSON body's media type when it is not plain JSON (e.g. application/fhir+json).
    content_type: str = JSON_TYPE

    def __post_init__(self) -> None:
        if self.text is not None and self.body is not None:
            raise ValueError("a reply has a JSON body or a text body, not both")


@dataclass
class Call:
    request: web.Request
    body: BaseModel | None = None
    query: BaseModel | None = None
    platform: PlatformCaller | None = None
    participant: JoinIdentity | None = None
    participant_consult: ConsultView | None = None

    def path(self, name: str) -> str:
        return self.request.match_info[name]

    def consult_id(self) -> ConsultId:
        return ConsultId(self.request.match_info["consult_id"])

    def caller(self) -> PlatformCaller:
        if self.platform is None:  # an operation declared auth="api_key" always has one
            raise RuntimeError("operation has no platform caller")
        return self.platform

    def body_as(self, model: type[ModelT]) -> ModelT:
        if not isinstance(self.body, model):
            raise RuntimeError(f"operation body is not a {model.__name__}")
        return self.body

    def query_as(self, model: type[ModelT]) -> ModelT:
        if not isinstance(self.query, model):
            raise RuntimeError(f"operation query is not a {model.__name__}")
        return self.query


Handler = Callable[[Call], Awaitable[Reply]]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation_id: str
    summary: str
    handler: Handler
    auth: Auth
    responses: dict[int, tuple[str, type[BaseModel] | None]]
    errors: tuple[ErrorCode, ...] = ()
    body: type[BaseModel] | None = None
    body_required: bool = True
    query: type[BaseModel] | None = None
    tags: tuple[str, ...] = ()
    description: str = ""
    # OpenAPI parameter and header objects: name -> {"description", "schema", ...}
    request_headers: dict[str, dict[str, Any]] = field(default_factory=dict)
    response_headers: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The success body's media type, and other media types it can be had in (by `Accept`),
    # each served as text.
    media_type: str = JSON_TYPE
    alternates: tuple[str, ...] = ()
    # Join-token operations that must keep working after the consult ended (reading its plan).
    allow_ended: bool = False

    def all_errors(self) -> tuple[ErrorCode, ...]:
        """Every code this operation can answer with, common ones included."""
        codes: list[ErrorCode] = [ErrorCode.INTERNAL]
        if "{" in self.path:
            codes.append(ErrorCode.NOT_FOUND)
        if self.auth == "api_key":
            codes += [ErrorCode.API_KEY_MISSING, ErrorCode.API_KEY_INVALID, ErrorCode.RATE_LIMITED]
        elif self.auth == "metrics_token":
            codes += [
                ErrorCode.METRICS_TOKEN_MISSING,
                ErrorCode.METRICS_TOKEN_INVALID,
                ErrorCode.METRICS_NOT_EXPOSED,
            ]
        elif self.auth == "join_token":
            codes += [
                ErrorCode.TOKEN_INVALID,
                ErrorCode.TOKEN_EXPIRED,
                ErrorCode.TOKEN_NOT_YET_VALID,
                ErrorCode.TOKEN_REVOKED,
                ErrorCode.RATE_LIMITED,
            ]
        if self.body is not None:
            codes += [
                ErrorCode.INVALID_JSON,
                ErrorCode.PAYLOAD_TOO_LARGE,
                ErrorCode.UNSUPPORTED_MEDIA_TYPE,
                ErrorCode.VALIDATION_FAILED,
            ]
        if self.query is not None:
            codes.append(ErrorCode.VALIDATION_FAILED)
        codes += self.errors
        return tuple(dict.fromkeys(codes))


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        return None
    return credential.strip()


def validation_error(exc: ValidationError, prefix: str = "") -> TriadError:
    problems = [
        FieldError(prefix + "/" + "/".join(str(part) for part in err["loc"]), err["msg"])
        for err in exc.errors(include_input=False, include_url=False)
    ]
    return TriadError(ErrorCode.VALIDATION_FAILED, "the request is not valid", problems)


async def _read_body(request: web.Request, op: Operation) -> BaseModel | None:
    model = op.body
    if model is None:
        return None
    declared = request.content_length
    if declared is not None and declared > request.client_max_size:
        # Refused on the header alone: never wait for a body that size to arrive.
        raise TriadError(ErrorCode.PAYLOAD_TOO_LARGE, "the request body is too large")
    raw = await request.read()  # raises 413 past the app's client_max_size
    if not raw:
        if op.body_required:
            raise TriadError(ErrorCode.VALIDATION_FAILED, "a JSON body is required")
        return model()
    if request.content_type != JSON_TYPE:
        raise TriadError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, "the body must be application/json")
    try:
        # Bounded first (nesting, numbers, duplicate keys, lone surrogates) ...
        jsonlimits.loads(raw)
    except jsonlimits.JsonRefused as exc:
        raise TriadError(ErrorCode.INVALID_JSON, f"the body is not accepted JSON: {exc}") from None
    try:
        # ... then validated strictly, as the document types it: "true", 1 and -0.0 are no
        # booleans and "600" is no integer. JSON mode, so dates and enums still come as strings.
        return model.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        raise validation_error(exc) from None


def _read_query(request: web.Request, op: Operation) -> BaseModel | None:
    if op.query is None:
        return None
    try:
        return op.query.model_validate(dict(request.query))
    except ValidationError as exc:
        raise validation_error(exc, "/query") from None


async def _authenticate(request: web.Request, op: Operation, call: Call) -> None:
    if op.auth == "none":
        return
    if op.auth == "metrics_token":
        request.app[METRICS_ACCESS].check(request)
        return
    services = request.app[SERVICES]
    limits = request.app[RATE_LIMITS]
    credential = bearer(request)
    if op.auth == "api_key":
        if credential is None:
            raise TriadError(ErrorCode.API_KEY_MISSING, "send the API key as a Bearer credential")
        call.platform = await services.keys.authenticate(credential)
        limits.platforms.take(call.platform.key_id)
        return
    if credential is None:
        raise TriadError(ErrorCode.TOKEN_INVALID, "send the join token as a Bearer credential")
    consult_id = ConsultId(request.match_info["consult_id"])
    call.participant, call.participant_consult = await services.access.authenticate(
        credential, consult_id, allow_ended=op.allow_ended
    )
    # Per participant, not per token: minting a fresh token buys no fresh budget.
    limits.participants.take(call.participant.participant_id)


def to_response(reply: Reply) -> web.Response:
    if reply.text is not None:
        return web.Response(
            text=reply.text,
            status=reply.status,
            headers=reply.headers,
            content_type=reply.content_type,
        )
    if reply.body is None:
        return web.Response(status=reply.status, headers=reply.headers)
    return web.json_response(
        text=reply.body.model_dump_json(),
        status=reply.status,
        headers=reply.headers,
        content_type=reply.content_type,
    )


def preferred(request: web.Request, offered: tuple[str, ...]) -> str:
    """The media type of `offered` the request's `Accept` ranks highest (the first offered on a
    tie, or when there is no `Accept`)."""
    best, best_q = offered[0], -1.0
    for part in request.headers.get("Accept", "").split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        for candidate in offered:
            kind = candidate.split("/")[0]
            if media in (candidate, f"{kind}/*", "*/*") and q > best_q and q > 0:
                # An exact match beats a wildcard at the same q.
                best, best_q = candidate, q + (0.001 if media == candidate else 0)
    return best


def route_handler(op: Operation) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        call = Call(request)
        if not all(_PATH_ID.fullmatch(value) for value in request.match_info.values()):
            raise TriadError(ErrorCode.NOT_FOUND, "no such resource")
        # Authenticate before reading the body: an unauthenticated caller gets nothing parsed.
        await _authenticate(request, op, call)
        call.query = _read_query(request, op)
        call.body = await _read_body(request, op)
        return to_response(await op.handler(call))

    handle.__name__ = op.operation_id
    return handle


def add_routes(app: web.Application, operations: tuple[Operation, ...]) -> None:
    for op in operations:
        app.router.add_route(op.method, op.path, route_handler(op), name=op.operation_id)
