"""Errors to RFC 9457 problem responses, at the edge and nowhere else."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from .. import logs
from ..errors import ERROR_SPECS, ErrorCode, TriadError
from .ratelimit import RETRY_AFTER, RateLimited
from .schemas import FieldErrorOut, ProblemOut

PROBLEM_TYPE = "application/problem+json"
_HTTP_CODES = {
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
}
log = logs.get(__name__)


def problem_type(code: ErrorCode) -> str:
    return f"urn:triad:error:{code}"


def problem_response(request: web.Request, error: TriadError) -> web.Response:
    spec = error.spec
    body = ProblemOut(
        type=problem_type(error.code),
        title=spec.title,
        status=int(spec.status),
        detail=error.message,
        code=error.code,
        instance=request.rel_url.path,
        errors=[FieldErrorOut(location=f.location, message=f.message) for f in error.field_errors]
        or None,
    )
    response = web.Response(
        status=int(spec.status),
        text=body.model_dump_json(exclude_none=True),
        content_type=PROBLEM_TYPE,
    )
    if spec.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="triad"'
    if isinstance(error, RateLimited):
        response.headers[RETRY_AFTER] = str(error.retry_after)
    return response


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except TriadError as error:
        log.info("request_refused", path=request.rel_url.path, code=str(error.code))
        return problem_response(request, error)
    except web.HTTPException as exc:
        code = _HTTP_CODES.get(exc.status)
        if code is None:
            raise
        response = problem_response(request, TriadError(code, ERROR_SPECS[code].title))
        if "Allow" in exc.headers:  # RFC 9110: a 405 names the methods the resource has
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception as exc:
        log.error("request_failed", path=request.rel_url.path, **logs.failure(exc))
        return problem_response(
            request, TriadError(ErrorCode.INTERNAL, "the server could not complete the request")
        )
