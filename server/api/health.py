"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio
from typing import Literal

from .. import logs
from ..errors import ErrorCode, TriadError
from .context import SERVICES
from .operations import Call, Reply
from .schemas import HealthOut, ReadyOut

_PROBE_TIMEOUT = 2.0
log = logs.get(__name__)


async def healthz(call: Call) -> Reply:
    return Reply(200, HealthOut(status="ok"))


async def readyz(call: Call) -> Reply:
    services = call.request.app[SERVICES]
    checks: dict[str, Literal["ok", "not_configured"]] = {}
    try:
        async with asyncio.timeout(_PROBE_TIMEOUT):
            await services.db.ping()
        checks["database"] = "ok"
        if services.redis is None:
            checks["redis"] = "not_configured"
        else:
            async with asyncio.timeout(_PROBE_TIMEOUT):
                await services.redis.ping()
            checks["redis"] = "ok"
    except Exception as exc:
        log.warning("not_ready", failed=len(checks), error=type(exc).__name__)
        failed = "database" if "database" not in checks else "redis"
        raise TriadError(ErrorCode.NOT_READY, f"{failed} is not reachable") from None
    return Reply(200, ReadyOut(status="ok", checks=checks))
