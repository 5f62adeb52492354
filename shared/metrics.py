"""Prometheus metrics shared by every service, and the ``/health`` + ``/metrics`` HTTP server.

All metric names start with ``lighter_stack_`` and follow Prometheus naming (``_total`` for
counters, units in the name). Service-specific metrics are defined next to the service, with
the same prefix.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

log = logging.getLogger(__name__)

PREFIX = "lighter_stack_"
#: Wall time (unix seconds) this process loaded the module: ~ the process start; ``started_at``
#: of every ``/health`` body served by :func:`start_http`.
PROCESS_STARTED_AT = round(time.time(), 3)

EVENTS_IN = Counter(f"{PREFIX}events_in_total", "Events consumed, per input stream.", ["service", "stream"])
EVENTS_OUT = Counter(f"{PREFIX}events_out_total", "Events published, per output stream.", ["service", "stream"])
PROCESSING_SECONDS = Histogram(
    f"{PREFIX}event_processing_seconds", "Wall time to process one input event in the engine.", ["service"],
    buckets=(1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0),
)
CONSUMER_LAG = Gauge(f"{PREFIX}consumer_lag_entries", "Entries not yet delivered to the consumer group.", ["service", "stream"])
DEAD_LETTERS = Counter(f"{PREFIX}dead_letters_total", "Inputs sent to the dead-letter stream.", ["service", "stream"])
SERVICE_STARTS = Gauge(f"{PREFIX}service_starts", "How many times this service started consuming in the namespace "
                       "(the {ns}:starts count after this process's start; restarts = value - 1).", ["service"])
DUPLICATES = Counter(f"{PREFIX}duplicate_events_total", "Redelivered events dropped by id.", ["service", "stream"])


#: ``/health`` statuses answered with HTTP 200 (``standby``: a replica waiting for its instance lock).
HEALTHY = ("ok", "standby")


async def start_http(port: int, health: Callable[[], dict[str, Any]], host: str = "0.0.0.0",
                     routes: Sequence[web.RouteDef] = ()) -> web.AppRunner:
    """Serve ``GET /health`` (JSON from ``health()`` plus ``started_at``, the process start in unix
    seconds, unless ``health()`` gives one; HTTP 503 when its ``status`` is not ``ok`` or ``standby``) and
    ``GET /metrics`` (Prometheus text format) on ``host:port``, plus the service's own ``routes``
    (e.g. the notifier's ``POST /alertmanager``).

    Returns the aiohttp runner; call ``await runner.cleanup()`` to stop. Port 0 disables the
    server (returns a runner that serves nothing).
    """

    async def _health(_req: web.Request) -> web.Response:
        body = {**health()}
        body.setdefault("started_at", PROCESS_STARTED_AT)
        return web.json_response(body, status=200 if body.get("status") in HEALTHY else 503)

    async def _metrics(_req: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/health", _health)
    app.router.add_get("/metrics", _metrics)
    app.router.add_routes(routes)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    if port:
        await web.TCPSite(runner, host, port).start()
        log.info("health and metrics on http://%s:%d", host, port)
    return runner
