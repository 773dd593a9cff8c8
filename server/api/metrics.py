"""`/metrics` (the operation's handler), the HTTP requests' counter, and the sampler that keeps
a worker's gauges current (`server/metrics.py` defines every metric)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from aiohttp import web
from aiohttp.typedefs import Handler

from .. import logs, metrics
from .context import SERVICES
from .operations import Call, Operation, Reply

log = logs.get(__name__)

# How often a worker of several writes its gauges and media counts for the others' /metrics
# to read. One process does it at each scrape instead.
SAMPLE_SECONDS = 2.0


async def read_metrics(call: Call) -> Reply:
    call.request.app[SERVICES].sample_metrics()  # this process's gauges as of now
    # Several workers: a read of every worker's files; kept off the event loop.
    text = await asyncio.to_thread(metrics.exposition)
    return Reply(200, text=text.decode(), content_type=metrics.CONTENT_TYPE)


OPERATION = Operation(
    "GET",
    "/metrics",
    "metrics",
    "Prometheus metrics of this node (every worker's), in the text exposition format",
    read_metrics,
    auth="metrics_token",
    media_type=metrics.MEDIA_TYPE,
    responses={200: ("The metrics", None)},
    description=(
        "With TRIAD_METRICS_TOKEN set, send it as a Bearer credential; without it, served to "
        "loopback callers in development and to nobody in production. No label holds an id, a "
        "name or a clinical value (docs/operations.md lists the metrics)."
    ),
    tags=("operations",),
)


@web.middleware
async def http_metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Counts every answer by method, route pattern and status. The pattern, never the path:
    paths hold consult and participant ids."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _count(request, exc.status)
        raise
    except Exception:
        _count(request, 500)
        raise
    _count(request, response.status)
    return response


def _count(request: web.Request, status: int) -> None:
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else metrics.UNMATCHED_ROUTE
    method = request.method if request.method in metrics.HTTP_METHODS else "other"
    metrics.HTTP_REQUESTS.labels(method, route, str(status)).inc()


@contextlib.asynccontextmanager
async def sampling(sample: Callable[[], None]) -> AsyncIterator[None]:
    """With several workers (a shared metrics directory): `sample` every `SAMPLE_SECONDS`, so
    another worker's /metrics reads this one's gauges at most that old. One process samples
    at each scrape only."""
    if metrics.multiprocess_directory() is None:
        yield
        return
    task = asyncio.get_running_loop().create_task(_sample_forever(sample))
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _sample_forever(sample: Callable[[], None]) -> None:
    while True:
        try:
            sample()
        except Exception as exc:  # the metrics must never take the worker down
            log.error("metrics.sample_failed", **logs.failure(exc))
        await asyncio.sleep(SAMPLE_SECONDS)
