"""venue-sim's live source: paper trading on live market data (docs/venue-sim.md "Live source").

Instead of a recording, :class:`LiveFeed` follows an upstream Lighter market-data WebSocket
(``upstream_ws_url``; real Lighter, or in tests another venue-sim): it subscribes
``order_book/{id}``, ``trade/{id}`` and ``market_stats/{id}`` for the followed markets, parses
every frame once with :class:`shared.lighter_ws.engine.FeedEngine` (the collector's parser and
gap-checked book) and feeds the resulting :class:`~shared.events.Bbo` (top-of-book changes),
:class:`~shared.events.Trade` and :class:`~shared.events.MarketStats` events to the matching
engine, each **stamped with the wall time at which it is applied** -- exactly as the wall-clock
replay feeds recorded events (:mod:`services.venue_sim.replay`), through the same sink (the
server's publish path). Our orders are matched locally against the upstream's top of book and
trades under the configured depth assumptions.

**No tx path.** The live source has no code that signs or sends anything upstream: the only
messages it writes on the upstream socket are ``subscribe``/``unsubscribe`` of public channels
and ``ping``/``pong`` (:data:`UPSTREAM_MESSAGE_TYPES`, checked before every send). Txs arrive on
venue-sim's own ``sendTx`` and stay in its engine.

Time: the venue clock is the wall clock (Unix ns, anchored once to ``time.time`` and advanced by
the monotonic clock). Pending txs execute at their wall execution time whether or not upstream
data arrives. Upstream trades resent on (re)subscribing (``subscribed/trade``) are not applied:
they happened before we were listening (the first time) or were already applied (a reconnect).
A book gap (nonce) drops that market's book and resubscribes; a lost connection is retried with
exponential backoff. While the upstream is down the engine keeps the last top of book it saw and
``/health`` reports ``degraded``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Literal

import msgspec

from shared.events import Bbo, MarketStats, Trade
from shared.lighter_ws.connection import ConnectionCounts, FeedConnection, send_json
from shared.lighter_ws.engine import FeedEngine
from shared.lighter_ws.metadata import Backoff
from shared.lighter_ws.parse import SOURCE
from shared.markets import MarketInfo
from shared.venue.matching import MatchingEngine, Update

log = logging.getLogger(__name__)

State = Literal["waiting", "running"]
#: the only message types the live source ever writes upstream (public channels and keepalive)
UPSTREAM_MESSAGE_TYPES = frozenset({"subscribe", "unsubscribe", "ping", "pong"})


class UpstreamSendRefused(RuntimeError):
    """A message other than subscribe/unsubscribe/ping/pong was about to go upstream (a bug)."""


class LiveFeed(ConnectionCounts):
    """Drives ``engine`` with an upstream Lighter feed on the wall clock (the :class:`Replay`
    interface: ``run``/``start``/``stop``/``notify``/``sim_now``, ``state``, ``replayed``).

    Args:
        engine: the venue model (its markets are the followed ones).
        markets: the followed markets, with the upstream's ids and decimals.
        sink: called (synchronously, on the loop) with every list of engine updates.
        url: the upstream WebSocket URL.
        reconnect_initial_s, reconnect_max_s: reconnect backoff (s), doubled per failure; reset
            after a connection that stayed up ``healthy_after_s``.
        timeout_s: WS opening handshake and ``connected``-frame timeout (s).
        ping_interval_s: period (s) of our ``{"type":"ping"}`` and of WS-level keepalive pings.
        healthy_after_s: see ``reconnect_*``.
        wall, epoch: monotonic and Unix clocks in seconds (tests may inject them).

    Attributes:
        replayed: upstream events applied to the engine (Bbo, trades, stats).
        conn: the upstream connection (:class:`shared.lighter_ws.connection.FeedConnection`).
        gaps, frames, dead_frames: counters for ``/sim/status`` (with ``connected``,
            ``connections``, ``reconnects``).
        recorded_ns: the upstream's own time stamp (ns) of the last applied event.
    """

    clock = "wall"
    total_events: int | None = None

    def __init__(self, engine: MatchingEngine, markets: Iterable[MarketInfo],
                 sink: Callable[[list[Update]], None], url: str, *, reconnect_initial_s: float = 1.0,
                 reconnect_max_s: float = 30.0, timeout_s: float = 10.0, ping_interval_s: float = 30.0,
                 healthy_after_s: float = 10.0, wall: Callable[[], float] = time.monotonic,
                 epoch: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.sink = sink
        self.url = url
        self.feed = FeedEngine(markets, namespace="venue-sim")
        self.conn = FeedConnection(url, self.feed.subscriptions, self.handle,
                                   backoff=Backoff(reconnect_initial_s, reconnect_max_s),
                                   ping_interval_s=ping_interval_s, open_timeout_s=timeout_s,
                                   healthy_after_s=healthy_after_s, name="upstream", send=self._send,
                                   on_up=self._up, on_down=self._down, on_error=self._error)
        self._wall = wall
        self._epoch_offset_ns = int(epoch() * 1e9) - int(wall() * 1e9)
        engine.now_ns = max(engine.now_ns, self.wall_ns())
        self.state: State = "waiting"
        self.replayed = 0
        self.recorded_ns = 0
        self.gaps = 0
        self.frames = 0
        self.dead_frames = 0
        self.last_error = ""
        self.down_since: float | None = wall()
        self._started = asyncio.Event()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()

    # ----------------------------------------------------------------- clock

    def wall_ns(self) -> int:
        """The wall clock in Unix ns (monotonic: anchored once to the epoch clock)."""
        return int(self._wall() * 1e9) + self._epoch_offset_ns

    def sim_now(self) -> int:
        """The venue's current time in ns: the wall clock (never behind the engine's clock)."""
        return max(self.wall_ns(), self.engine.now_ns)

    # ----------------------------------------------------------------- control

    def start(self) -> None:
        """Start applying upstream data (idempotent); the current tops of the books already
        received are applied at once."""
        if self._started.is_set():
            return
        self._started.set()
        self.state = "running"
        for book in self.feed.books.values():
            top = book.top()
            if top is not None and book.nonce is not None:
                self._apply(Bbo(id=f"{book.symbol}-start-{book.nonce}", ts_event=0, source=SOURCE,
                                market=book.symbol, bid_px=top[0], bid_sz=top[1], ask_px=top[2], ask_sz=top[3]))
        self._wake.set()

    @property
    def started(self) -> bool:
        """True once :meth:`start` was called."""
        return self._started.is_set()

    def notify(self) -> None:
        """A transaction was submitted: re-plan the next wake-up."""
        self._wake.set()

    def stop(self) -> None:
        """Make :meth:`run` return (closes the upstream connection)."""
        self._stop.set()
        self._started.set()
        self._wake.set()

    def status(self) -> dict[str, Any]:
        """The upstream part of ``/sim/status`` and ``/health``."""
        down = None if self.down_since is None else round(self._wall() - self.down_since, 1)
        return {"url": self.url, "connected": self.connected, "connections": self.connections,
                "reconnects": self.reconnects, "book_gaps": self.gaps, "frames": self.frames,
                "dead_frames": self.dead_frames, "down_for_s": down, "last_error": self.last_error,
                "books_synced": {b.symbol: b.synced for b in self.feed.books.values()}}

    # ----------------------------------------------------------------- connection

    def _up(self) -> None:
        self.down_since = None
        self.last_error = ""

    def _down(self, was_connected: bool) -> None:
        if was_connected or self.down_since is None:
            self.down_since = self._wall()
        self.feed.on_disconnect()

    def _error(self, exc: BaseException) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"

    # ----------------------------------------------------------------- loops

    async def run(self) -> None:
        """Follow the upstream and execute pending txs on the wall clock until :meth:`stop`."""
        reader = asyncio.create_task(self.conn.run(self._stop))
        try:
            await self._run_pending()
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    async def _run_pending(self) -> None:
        while not self._stop.is_set():
            now = self.wall_ns()
            due = self.engine.next_pending_ns()
            if due is not None and due <= now:
                self.sink(self.engine.advance(due))
                continue
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=(due - now) / 1e9 if due is not None else 3600)

    async def _send(self, ws: Any, msg: dict[str, Any]) -> None:
        """Write one control message upstream; anything but subscribe/unsubscribe/ping/pong is
        refused (:class:`UpstreamSendRefused`): the live source never sends a tx."""
        if msg.get("type") not in UPSTREAM_MESSAGE_TYPES:
            raise UpstreamSendRefused(f"venue-sim never sends {msg.get('type')!r} upstream")
        await send_json(ws, msg)

    # ----------------------------------------------------------------- frames

    async def handle(self, raw: bytes | str, ws: Any = None) -> str:
        """Handle one upstream frame: apply its events (once started), send the replies (pong,
        resubscribe after a gap) on ``ws``. Returns the frame's kind. Never raises for bad
        input (an unusable frame is counted and logged; the venue has no bus to dead-letter to)."""
        self.frames += 1
        out = self.feed.on_frame(raw, self.wall_ns())
        if out.dead_letter is not None:
            self.dead_frames += 1
            log.warning("unusable upstream frame on %s: %s", out.channel, out.dead_letter)
        if out.gap:
            self.gaps += 1
        if out.kind == "error":
            log.warning("upstream error frame: %s", raw if isinstance(raw, str) else raw.decode(errors="replace"))
        if self.started:
            skip_trades = out.kind == "trade" and out.snapshot
            for _, ev in out.routed:
                if type(ev) is Bbo or type(ev) is MarketStats or (type(ev) is Trade and not skip_trades):
                    self._apply(ev)
        if ws is not None:
            for msg in out.send:
                await self._send(ws, msg)
        return out.kind

    def _apply(self, ev: Bbo | Trade | MarketStats) -> None:
        """Apply one upstream event stamped with the venue's wall time (txs due by then first)."""
        if ev.ts_event:
            self.recorded_ns = ev.ts_event
        stamped = msgspec.structs.replace(ev, ts_event=max(self.wall_ns(), self.engine.now_ns))
        self.replayed += 1
        self.sink(self.engine.on_market_data(stamped))
