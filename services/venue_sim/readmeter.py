"""venue-sim: the rate limit of Lighter's read endpoints -- an aiohttp middleware that charges every
``GET /api/v1/<endpoint>`` to the client's IP in the server's :class:`~services.venue_sim.ratelimit.RequestMeter`
(Standard: 60 requests per rolling minute, unweighted; Premium: Lighter's endpoint weights;
reference notes §6.8) and answers a read over the limit with HTTP 429
``{"code": 23000, "message": "too many requests"}`` without running it. venue-sim's own
endpoints (``/sim/*``, ``/health``, ``/metrics``) and the WebSocket upgrade are not metered.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from services.venue_sim.httpio import error_response
from services.venue_sim.metrics import REJECTS
from services.venue_sim.ratelimit import RateLimited

log = logging.getLogger("services.venue_sim.server")

API_PREFIX = "/api/v1/"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def read_meter_middleware(server: Any) -> Any:
    """The middleware for ``server`` (a ``VenueServer``: its ``meter`` and ``clock``)."""

    @web.middleware
    async def read_meter(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "GET" and request.path.startswith(API_PREFIX):
            endpoint = request.path[len(API_PREFIX):]
            ip = request.remote or "unknown"
            try:
                server.meter.admit_read(ip, endpoint, server.clock())
            except RateLimited as exc:
                REJECTS.labels(str(exc.code)).inc()
                log.info("refused a read of %s from %s: %s", endpoint, ip, exc)
                return error_response(exc)
        return await handler(request)

    return read_meter
