"""What REST handlers reach through the app: typed keys, no globals."""

from __future__ import annotations

from aiohttp import web

from ..cluster.node import Membership
from ..services import Services
from .metrics_access import MetricsAccess
from .ratelimit import RestLimits

SERVICES = web.AppKey("triad.services", Services)
RATE_LIMITS = web.AppKey("triad.api.rate_limits", RestLimits)
# This worker's membership of a deployment of several (None: the server is one process).
CLUSTER: web.AppKey[Membership | None] = web.AppKey("triad.cluster")
# Who may read /metrics (`metrics_access.py`).
METRICS_ACCESS = web.AppKey("triad.api.metrics_access", MetricsAccess)
