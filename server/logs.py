"""Structured logs (structlog over the standard library) that never carry tokens or secrets.

The code logs ids and codes only, never names or clinical text. As a last line of defence a
processor scrubs anything shaped like a JWT or an API secret from every event, including those
that libraries log through the standard `logging` module.
"""

from __future__ import annotations

import logging
import re
import secrets
import sys
import traceback
from typing import IO, Any

import structlog
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler
from aiohttp.web import BaseRequest, StreamResponse
from structlog.typing import EventDict, WrappedLogger

_SECRET_SHAPES = re.compile(
    r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*"  # a JWT (header starts '{"')
    r"|tsk_[A-Za-z0-9_-]{8,}"  # a platform API secret
)
REDACTED = "[redacted]"
_ACCESS_FIELDS = ("method", "path", "status", "duration_ms", "request_id")
_QUIET_LIBRARIES = ("aiosqlite", "sqlalchemy.engine", "sqlalchemy.pool", "asyncpg", "alembic")


def scrub(text: str) -> str:
    return _SECRET_SHAPES.sub(REDACTED, text)


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: _scrub_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_value(v) for v in value]
    return value


def redact_secrets(_logger: WrappedLogger, _method: str, event: EventDict) -> EventDict:
    return {key: _scrub_value(value) for key, value in event.items()}


def configure(level: str = "info", fmt: str = "json", stream: IO[str] | None = None) -> None:
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        # Only the access log's own fields: a library's `extra` could hold anything.
        structlog.stdlib.ExtraAdder(allow=_ACCESS_FIELDS),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            redact_secrets,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_triad", False):
            root.removeHandler(old)
    handler._triad = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    # These libraries log SQL statements with their parameters (names, sealed notes) at
    # INFO/DEBUG, and Alembic narrates every migration step: whatever our level, keep only
    # their warnings.
    for name in _QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)


def failure(exc: BaseException) -> dict[str, Any]:
    """Log fields for an unexpected error: its type and where it happened, never its message (a
    driver's or library's message can quote the values it was given: names, notes). The frames
    go under `frames`: structlog's console renderer takes a `stack` field for a string."""
    return {
        "error": type(exc).__name__,
        "frames": [
            f"{f.filename}:{f.lineno} in {f.name}" for f in traceback.extract_tb(exc.__traceback__)
        ],
    }


def get(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger


REQUEST_ID_HEADER = "X-Request-Id"
REQUEST_ID_KEY = web.RequestKey("triad.request_id", str)
# A caller's own id is kept when it is short and plain; anything else is replaced.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every request gets an id, in every log event it causes and in the `X-Request-Id` answer
    header, so support can find a user's failed request without asking for anything private."""
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = incoming if _REQUEST_ID.fullmatch(incoming) else secrets.token_hex(8)
    request[REQUEST_ID_KEY] = request_id
    with structlog.contextvars.bound_contextvars(request_id=request_id):
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            exc.headers[REQUEST_ID_HEADER] = request_id
            raise
    response.headers[REQUEST_ID_HEADER] = request_id
    return response


class AccessLogger(AbstractAccessLogger):
    """One event per request: method, path without query, status, time. No headers, no query:
    that is where a misbehaving client might put a token."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info(
            "http_request",
            extra={
                "method": request.method,
                "path": request.rel_url.path,
                "status": response.status,
                "duration_ms": round(time * 1000, 1),
                "request_id": request.get(REQUEST_ID_KEY),
            },
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
