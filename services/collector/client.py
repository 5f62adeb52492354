"""The collector's I/O: its WS client (websockets). Market metadata comes from
:func:`shared.lighter_ws.metadata.fetch_markets`.

:class:`CollectorClient` keeps one WS connection: it waits for the ``connected`` frame, subscribes
``order_book/{id}``, ``trade/{id}`` and ``market_stats/{id}`` for every market, answers
``{"type":"ping"}`` with ``{"type":"pong"}``, sends its own ping every ``ping_interval_s`` and
reconnects with exponential backoff (reset after a connection that stayed up
``healthy_after_s``): the connection is :class:`shared.lighter_ws.connection.FeedConnection`. Each frame goes through :class:`shared.lighter_ws.engine.FeedEngine`;
events are published with :meth:`shared.bus.Bus.publish_many`, unusable frames are written to
``{ns}:dlq`` with the reason, and the unsubscribe/subscribe of a book gap is sent back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from prometheus_client import Counter, Gauge
from redis.exceptions import RedisError

from shared.bus import Bus
from shared.events import Event
from shared.lighter_ws.connection import FeedConnection
from shared.lighter_ws.engine import FeedEngine, FrameOutcome
from shared.lighter_ws.metadata import Backoff
from shared.metrics import DEAD_LETTERS, EVENTS_OUT, PREFIX, PROCESSING_SECONDS
from shared.outage import BUS_DOWN_ERRORS, BusLink

from .config import CollectorConfig

log = logging.getLogger(__name__)

SERVICE = "collector"

RECONNECTS = Counter(f"{PREFIX}collector_reconnects_total", "WS reconnect attempts after a lost or failed connection.")
BOOK_GAPS = Counter(f"{PREFIX}collector_book_gaps_total", "Order-book nonce gaps detected (each triggers a resubscribe).",
                    ["market"])
MESSAGES = Counter(f"{PREFIX}collector_messages_total",
                   "WS frames received, by channel (order_book, trade, market_stats) or kind (ping, connected, "
                   "subscribed, error, other, invalid).", ["channel"])
UNCHECKED = Counter(f"{PREFIX}collector_book_unchecked_updates_total",
                    "Order-book updates without begin_nonce, applied without a continuity check.", ["market"])
CONNECTED = Gauge(f"{PREFIX}collector_connected", "1 while the WS connection is up and subscribed.")


class CollectorClient:
    """One Lighter WS connection at a time, reconnecting until stopped.

    Args:
        url: WS endpoint (``cfg.venue.ws_url``, e.g. ``ws://127.0.0.1:8090/stream``).
        engine: the frame handler (markets, books, routing).
        bus: where events and dead letters go.
        cfg: the collector section (ping, backoff, timeouts).
        clock: wall clock in ns for ``ts_recv`` (tests may replace it).
        link: the service's :class:`~shared.outage.BusLink` (default: a new one).
    """

    def __init__(self, url: str, engine: FeedEngine, bus: Bus, cfg: CollectorConfig,
                 clock: Callable[[], int] = time.time_ns, link: BusLink | None = None) -> None:
        self.url = url
        self.link = link if link is not None else BusLink(SERVICE)
        self.engine = engine
        self.bus = bus
        self.cfg = cfg
        self.clock = clock
        self.conn = FeedConnection(url, engine.subscriptions, self._frame_kind,
                                   backoff=Backoff(cfg.reconnect_initial_s, cfg.reconnect_max_s),
                                   ping_interval_s=cfg.ping_interval_s, open_timeout_s=cfg.rest_timeout_s,
                                   healthy_after_s=cfg.healthy_after_s, on_up=self._up, on_down=self._down,
                                   on_retry=lambda _delay: RECONNECTS.inc())
        self.gaps = 0
        self.published = 0
        self.dead_letters = 0
        self.frames = 0
        self.last_frame_at = 0.0
        self.disconnected_since = time.monotonic()

    @property
    def connected(self) -> bool:
        """True while the WS connection is up and subscribed."""
        return self.conn.connected

    @property
    def connections(self) -> int:
        """Connections opened so far."""
        return self.conn.connections

    @property
    def reconnects(self) -> int:
        """Reconnect attempts so far."""
        return self.conn.reconnects

    # ----------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Connect, collect and reconnect until ``stop`` is set
        (:class:`shared.lighter_ws.connection.FeedConnection`)."""
        await self.conn.run(stop)

    def _up(self) -> None:
        CONNECTED.set(1)

    def _down(self, was_connected: bool) -> None:
        if was_connected:
            self.disconnected_since = time.monotonic()
        CONNECTED.set(0)
        self.engine.on_disconnect()

    async def _frame_kind(self, raw: bytes | str, ws: Any) -> str:
        return (await self.handle(raw, ws)).kind

    # ----------------------------------------------------------------------------------------
    async def handle(self, raw: bytes | str, ws=None) -> FrameOutcome:
        """Process one frame: publish its events, dead-letter it if unusable, send replies.

        ``ws`` is the connection to send pongs/resubscribes on (``None``: replies are dropped).
        Never raises for bad input; Redis failures are retried (see :meth:`publish`).
        """
        ts_recv = self.clock()
        self.frames += 1
        self.last_frame_at = time.monotonic()
        t0 = time.perf_counter()
        out = self.engine.on_frame(raw, ts_recv)
        PROCESSING_SECONDS.labels(SERVICE).observe(time.perf_counter() - t0)
        MESSAGES.labels(out.kind).inc()
        if out.dead_letter is not None:
            await self.dead_letter(raw, out.dead_letter, out.channel)
        if out.routed:
            await self.publish(out.routed)
        if out.gap:
            self.gaps += 1
            BOOK_GAPS.labels(self._market_of(out)).inc()
        if out.unchecked:
            UNCHECKED.labels(self._market_of(out)).inc()
        if out.kind == "error":
            log.warning("server error frame: %s", raw if isinstance(raw, str) else raw.decode(errors="replace"))
        if ws is not None:
            for msg in out.send:
                await ws.send(orjson.dumps(msg).decode())
        return out

    async def publish(self, routed: list[tuple[str, Event]]) -> None:
        """Publish in one transaction; while Redis is unreachable retry with backoff (the WS read
        waits; ``link``: ``/health`` says degraded). A publish whose answer was lost is checked
        first (is its last event on its stream's tail? the collector is the only writer of the md
        streams and a transaction is all or nothing), so no event is published twice."""
        doubt = False
        while True:
            try:
                if doubt and routed[-1][1].id in await self.bus.tail_ids(routed[-1][0], 64):
                    break
                doubt = True
                await self.bus.publish_many(routed)
                break
            except BUS_DOWN_ERRORS as exc:
                await self.link.pause(exc, f"publish {len(routed)} market-data event(s)")
            except (RedisError, OSError) as exc:  # another Redis error: retried as before
                doubt = False
                delay = self.link.failed(exc, "publish market data")
                log.error("publish to Redis failed (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
        self.link.recovered()
        self.published += len(routed)
        for stream, _ in routed:
            EVENTS_OUT.labels(SERVICE, stream).inc()

    async def dead_letter(self, raw: bytes | str, reason: str, origin: str) -> None:
        """Write the raw frame and the reason to ``{ns}:dlq`` (logged, never raises)."""
        data = raw.encode() if isinstance(raw, str) else bytes(raw)
        self.dead_letters += 1
        DEAD_LETTERS.labels(SERVICE, origin).inc()
        log.warning("dead letter from %s: %s", origin, reason)
        try:
            await self.bus.dead_letter(data, reason, origin=origin, service=SERVICE)
        except (RedisError, OSError):
            log.exception("could not write dead letter from %s (%s): %r", origin, reason, data[:500])

    def _market_of(self, out: FrameOutcome) -> str:
        key = out.channel.partition(":")[2]
        return self.engine.symbols.get(int(key), key) if key.isdigit() else (key or "?")
