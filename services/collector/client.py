"""The collector's I/O: its WS client (websockets). Market metadata comes from
:func:`shared.lighter_ws.metadata.fetch_markets`.

:class:`CollectorClient` keeps one WS connection: it waits for the ``connected`` frame, subscribes
``order_book/{id}``, ``trade/{id}`` and ``market_stats/{id}`` for every market, answers
``{"type":"ping"}`` with ``{"type":"pong"}``, sends its own ping every ``ping_interval_s`` and
reconnects with exponential backoff (reset after a connection that stayed up
``healthy_after_s``): the connection is :class:`shared.lighter_ws.connection.FeedConnection`. Each frame goes through :class:`shared.lighter_ws.engine.FeedEngine`;
events are published with :meth:`shared.bus.Bus.publish_many`, unusable frames are written to
``{ns}:dlq`` with the reason, and the unsubscribe/subscribe of a book gap is sent back.
Batching: a reader task stamps each frame with its receive time and queues it; the publishing
loop takes the frames waiting (at most ``max_batch_frames``), runs them through the engine in
order and publishes their events in **one** transaction. A lone frame is published at once (no
waiting for company); under load, frames that arrived while the previous transaction was in
flight share the next one, so throughput is no longer one Redis round trip per frame. The queue
is bounded (``4 * max_batch_frames``): when Redis is slower than the feed, the reader waits and
the WebSocket's own buffering and TCP flow control take over, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterable, Callable
from typing import Any

import orjson
from prometheus_client import Counter, Gauge
from redis.exceptions import RedisError

from shared.bus import Bus
from shared.events import Event
from shared.lighter_ws.connection import ConnectionCounts, FeedConnection
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


class _End:
    """End of a connection's frames in the publishing queue; ``error``: why, if it failed."""

    __slots__ = ("error",)

    def __init__(self, error: Exception | None) -> None:
        self.error = error


class CollectorClient(ConnectionCounts):
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
                                   on_retry=lambda _delay: RECONNECTS.inc(), consume=self.consume)
        self.gaps = 0
        self.published = 0
        self.dead_letters = 0
        self.frames = 0
        self.last_frame_at = 0.0
        self.disconnected_since = time.monotonic()
        self._processing = PROCESSING_SECONDS.labels(SERVICE)  # label children looked up once
        self._messages: dict[str, Any] = {}

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
    async def consume(self, frames: AsyncIterable[bytes | str], ws=None) -> None:
        """Handle every frame of ``frames`` (the connection, or any async iterable of frames)
        until it ends, in batches of the frames waiting (see the module docstring). Returns when
        ``frames`` ends; an exception of the iteration (a connection error) is raised once the
        frames received before it are handled."""
        limit = self.cfg.max_batch_frames
        queue: asyncio.Queue[tuple[bytes | str, int] | _End] = asyncio.Queue(4 * limit)
        reader = asyncio.create_task(self._read(frames, queue))
        try:
            while True:
                batch = [await queue.get()]
                while len(batch) < limit and not queue.empty():
                    batch.append(queue.get_nowait())
                if isinstance(batch[-1], _End):
                    end = batch.pop()
                    if batch:
                        await self.handle_batch(batch, ws)  # type: ignore[arg-type]
                    if end.error is not None:
                        raise end.error
                    return
                await self.handle_batch(batch, ws)  # type: ignore[arg-type]
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _read(self, frames: AsyncIterable[bytes | str], queue: asyncio.Queue) -> None:
        """Queue ``(frame, receive time ns)`` for each frame, then one :class:`_End`."""
        try:
            async for raw in frames:
                await queue.put((raw, self.clock()))
        except Exception as exc:  # handed to the consumer, which raises it after the frames before it
            await queue.put(_End(exc))
        else:
            await queue.put(_End(None))

    async def handle(self, raw: bytes | str, ws=None) -> FrameOutcome:
        """Process one frame now: publish its events, dead-letter it if unusable, send replies.

        ``ws`` is the connection to send pongs/resubscribes on (``None``: replies are dropped).
        Never raises for bad input; Redis failures are retried (see :meth:`publish`).
        """
        return (await self.handle_batch([(raw, self.clock())], ws))[0]

    async def handle_batch(self, frames: list[tuple[bytes | str, int]], ws=None) -> list[FrameOutcome]:
        """Process ``(frame, receive time ns)`` pairs in order: each through the engine, the
        unusable ones dead-lettered, then the events of all of them published in one
        transaction, then the replies (pong, resubscribe) sent in order. Returns the outcomes."""
        outs: list[FrameOutcome] = []
        routed: list[tuple[str, Event]] = []
        for raw, ts_recv in frames:
            self.frames += 1
            t0 = time.perf_counter()
            out = self.engine.on_frame(raw, ts_recv)
            self._processing.observe(time.perf_counter() - t0)
            counter = self._messages.get(out.kind)
            if counter is None:
                counter = self._messages[out.kind] = MESSAGES.labels(out.kind)
            counter.inc()
            if out.dead_letter is not None:
                await self.dead_letter(raw, out.dead_letter, out.channel)
            routed.extend(out.routed)
            if out.gap:
                self.gaps += 1
                BOOK_GAPS.labels(self._market_of(out)).inc()
            if out.unchecked:
                UNCHECKED.labels(self._market_of(out)).inc()
            if out.kind == "error":
                log.warning("server error frame: %s", raw if isinstance(raw, str) else raw.decode(errors="replace"))
            outs.append(out)
        self.last_frame_at = time.monotonic()
        if routed:
            await self.publish(routed)
        if ws is not None:
            for out in outs:
                for msg in out.send:
                    await ws.send(orjson.dumps(msg).decode())
        return outs

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
        per_stream: dict[str, int] = {}
        for stream, _ in routed:
            per_stream[stream] = per_stream.get(stream, 0) + 1
        for stream, n in per_stream.items():
            EVENTS_OUT.labels(SERVICE, stream).inc(n)

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
