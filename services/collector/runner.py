"""``lighter-stack run collector``: Lighter WS market data -> Redis streams.

Start-up: read the ``services.collector`` section, connect to Redis, serve ``/health`` and
``/metrics`` on ``http_port``, fetch market metadata from ``{venue.rest_url}/api/v1/orderBookDetails``
(retried until the venue answers), then run :class:`services.collector.client.CollectorClient`
against ``venue.ws_url`` until SIGTERM/SIGINT (the section's ``rest_url``/``ws_url`` override
both URLs: paper trading on live market data). Streams (namespace ``cfg.ns``):
``{ns}:md:book:{SYM}`` (BookSnapshot, BookDelta, Bbo), ``{ns}:md:trade:{SYM}`` (Trade),
``{ns}:md:stats:{SYM}`` (MarketStats) and ``{ns}:dlq`` for unusable frames.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from shared.bus import Bus
from shared.config import StackConfig
from shared.lighter_ws.engine import FeedEngine
from shared.lighter_ws.metadata import Backoff, MarketMetadataError, fetch_markets
from shared.metrics import start_http
from shared.outage import BusLink
from shared.redis_util import async_client, resolve_redis_url
from shared.service import install_stop_handlers, setup_logging

from .client import SERVICE, CollectorClient
from .config import CollectorConfig

log = logging.getLogger(__name__)


class Collector:
    """The running service: state for ``/health`` plus the client once markets are known.

    Args:
        cfg: the stack configuration (namespace, venue URLs, stream trimming).
        ccfg: the collector section.
        bus: the bus to publish on.
    """

    def __init__(self, cfg: StackConfig, ccfg: CollectorConfig, bus: Bus) -> None:
        self.cfg = cfg
        self.ccfg = ccfg
        self.bus = bus
        self.symbols = ccfg.resolved_markets(cfg)
        self.client: CollectorClient | None = None
        self.link = BusLink(SERVICE)
        self.started = time.monotonic()

    def health(self) -> dict[str, Any]:
        """Body of ``GET /health``: ``status`` is ``ok`` while connected (or within
        ``unhealthy_after_s`` of start or of the last disconnect), else ``disconnected`` (503);
        ``degraded`` (503) while Redis is unreachable (the WS read waits for the publish)."""
        c = self.client
        now = time.monotonic()
        down_since = c.disconnected_since if c else self.started
        connected = bool(c and c.connected)
        ok = connected or now - down_since < self.ccfg.unhealthy_after_s
        body: dict[str, Any] = {"status": "ok" if ok else "disconnected", "service": SERVICE,
                                "markets": self.symbols, "connected": connected,
                                "uptime_s": round(now - self.started, 1)}
        if c:
            body.update(connections=c.connections, reconnects=c.reconnects, book_gaps=c.gaps, frames=c.frames,
                        published=c.published, dead_letters=c.dead_letters,
                        last_frame_age_s=round(now - c.last_frame_at, 1) if c.last_frame_at else None,
                        books_synced={b.symbol: b.synced for b in c.engine.books.values()})
        return self.link.health(body)

    async def run(self, stop: asyncio.Event) -> int:
        """Fetch metadata, then collect until ``stop`` is set. Returns the exit code
        (0 stopped, 2 a configured market is unknown to the venue)."""
        backoff = Backoff(self.ccfg.reconnect_initial_s, self.ccfg.reconnect_max_s)
        try:
            markets = await fetch_markets(self.ccfg.resolved_rest_url(self.cfg), self.symbols, stop, backoff,
                                          self.ccfg.rest_timeout_s)
        except MarketMetadataError as exc:
            log.error("%s", exc)
            return 2
        if markets is None:
            return 0
        engine = FeedEngine(markets.values(), self.cfg.ns, seen_capacity=self.ccfg.seen_trade_ids)
        self.client = CollectorClient(self.ccfg.resolved_ws_url(self.cfg), engine, self.bus, self.ccfg, link=self.link)
        await self.client.run(stop)
        return 0


async def run_collector(cfg: StackConfig, ccfg: CollectorConfig, redis_url: str,
                        stop: asyncio.Event | None = None) -> int:
    """Run the collector until ``stop`` is set (or SIGTERM/SIGINT when ``stop`` is ``None``).

    Returns:
        0 on a clean stop, 2 when a configured market is not listed by the venue.
    """
    if stop is None:
        stop = asyncio.Event()
        install_stop_handlers(stop.set)
    redis = async_client(redis_url)
    bus = Bus(redis, cfg.ns, maxlen=cfg.stream_maxlen)
    svc = Collector(cfg, ccfg, bus)
    http = await start_http(ccfg.http_port, svc.health)
    log.info("collector: markets %s, venue %s / %s, namespace %s", svc.symbols, ccfg.resolved_rest_url(cfg),
             ccfg.resolved_ws_url(cfg), cfg.ns)
    try:
        return await svc.run(stop)
    finally:
        await http.cleanup()
        await redis.aclose()
        log.info("collector stopped")


def main(cfg: StackConfig) -> int:
    """Entry point of ``lighter-stack run collector``: runs until SIGTERM/SIGINT.

    Redis comes from :func:`shared.redis_util.resolve_redis_url` (``REDIS_URL``, ``redis_url``,
    local 6379 or the bundled server).

    Returns:
        0 on a clean stop; 2 when no Redis URL could be resolved or a configured market is
        unknown to the venue.

    Raises:
        shared.config.ConfigError: an invalid ``services.collector`` section.
    """
    setup_logging()
    ccfg = cfg.section(SERVICE, CollectorConfig)
    url = resolve_redis_url(cfg.redis_url)
    return asyncio.run(run_collector(cfg, ccfg, url))
