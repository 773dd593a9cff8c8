"""What REST handlers reach through the app: typed keys, no globals."""

from __future__ import annotations

from aiohttp import web

from ..services import Services
from .ratelimit import RestLimits

SERVICES = web.AppKey("triad.services", Services)
RATE_LIMITS = web.AppKey("triad.api.rate_limits", RestLimits)
