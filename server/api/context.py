"""What REST handlers reach through the app: typed keys, no globals."""

from __future__ import annotations

from aiohttp import web

from ..services import Services

SERVICES = web.AppKey("triad.services", Services)
