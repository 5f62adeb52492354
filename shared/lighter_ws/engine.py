"""The Lighter market-data frame handler (pure: no I/O, no clock).

Used by the collector (which publishes the routed events) and venue-sim's live source (which
feeds the events to its matching engine). :class:`FeedEngine` takes one raw Lighter WS frame plus its receive time and returns a
:class:`FrameOutcome`: the events to publish with their streams, the control messages to send
back (pong, unsubscribe/subscribe after a book gap) and, for a frame that could not be used, the
dead-letter reason. The WS clients only move bytes; everything testable is here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from shared.bus import Streams
from shared.events import Bbo, BookDelta, BookSnapshot, Event, MarketStats, Trade
from shared.lighter_ws.book import BookBuilder, Status
from shared.lighter_ws.parse import (
    FrameError,
    decode_frame,
    parse_market_stats,
    parse_order_book,
    parse_trades,
    split_channel,
)
from shared.markets import MarketInfo
from shared.service import SeenIds

log = logging.getLogger(__name__)

CHANNELS = ("order_book", "trade", "market_stats")


def subscribe_msg(channel: str) -> dict[str, str]:
    """``{"type": "subscribe", "channel": channel}`` (channel with ``/``, e.g. ``order_book/1``)."""
    return {"type": "subscribe", "channel": channel}


def unsubscribe_msg(channel: str) -> dict[str, str]:
    """``{"type": "unsubscribe", "channel": channel}``."""
    return {"type": "unsubscribe", "channel": channel}


@dataclass(slots=True)
class FrameOutcome:
    """Result of one frame.

    Attributes:
        kind: ``order_book``, ``trade``, ``market_stats``, ``connected``, ``ping``, ``pong``,
            ``subscribed``, ``unsubscribed``, ``error``, ``other`` (ignored channels such as
            ``height``) or ``invalid``.
        channel: the frame's channel as the server wrote it (``order_book:1``), or ``ws``.
        routed: ``(stream, event)`` pairs to publish, in order.
        send: JSON messages to send to the server, in order.
        dead_letter: reason when the frame is unusable (publish nothing, dead-letter the raw frame).
        gap: True when an order-book gap was detected (a resubscribe is in ``send``).
        unchecked: True when an order-book update was applied without a continuity check.
        snapshot: True for a ``subscribed/...`` frame (the state the server sends on subscribing,
            e.g. the recent trades), False for an ``update/...`` frame.
    """

    kind: str
    channel: str = "ws"
    routed: list[tuple[str, Event]] = field(default_factory=list)
    send: list[dict[str, Any]] = field(default_factory=list)
    dead_letter: str | None = None
    gap: bool = False
    unchecked: bool = False
    snapshot: bool = False


class FeedEngine:
    """Turns Lighter WS frames into our market-data events for a set of markets (the collector's
    and venue-sim's live source's frame handler).

    Args:
        markets: the markets to collect (their ``market_id`` maps channels to symbols).
        namespace: stream namespace (``paper``, ``live``, ...).
        seen_capacity: how many recent trade ids are remembered, so the recent trades Lighter
            resends on every (re)subscribe are not published twice.
    """

    def __init__(self, markets: Iterable[MarketInfo], namespace: str, seen_capacity: int = 100_000) -> None:
        self.markets = {m.market_id: m for m in markets}
        self.symbols = {mid: m.symbol for mid, m in self.markets.items()}
        self.streams = Streams(namespace)
        self.books = {mid: BookBuilder(m.symbol) for mid, m in self.markets.items()}
        self.seen_trades = SeenIds(seen_capacity)

    def subscriptions(self) -> list[dict[str, str]]:
        """Subscribe messages for every market and channel (order book, trades, stats)."""
        return [subscribe_msg(f"{ch}/{mid}") for mid in sorted(self.markets) for ch in CHANNELS]

    def on_disconnect(self) -> None:
        """Drop all books: after a reconnect each market starts again from a snapshot."""
        for b in self.books.values():
            b.reset()

    def route(self, ev: Event) -> str:
        """The stream of a market-data event."""
        if isinstance(ev, BookSnapshot | BookDelta | Bbo):
            return self.streams.book(ev.market)
        if isinstance(ev, Trade):
            return self.streams.trade(ev.market)
        if isinstance(ev, MarketStats):
            return self.streams.stats(ev.market)
        raise ValueError(f"collector does not publish {type(ev).__name__}")

    def on_frame(self, raw: bytes | str, ts_recv: int) -> FrameOutcome:
        """Handle one raw WS frame received at ``ts_recv`` (ns). Never raises for bad input:
        a frame that fails to decode or validate comes back with ``dead_letter`` set."""
        try:
            msg = decode_frame(raw)
        except FrameError as exc:
            return FrameOutcome("invalid", dead_letter=str(exc))
        channel = msg.get("channel") if isinstance(msg.get("channel"), str) else "ws"
        try:
            return self._dispatch(msg, channel, ts_recv)
        except FrameError as exc:
            return FrameOutcome("invalid", channel, dead_letter=str(exc))
        except Exception as exc:  # a bug on odd input must not kill the collector nor lose the frame
            log.exception("collector failed on a frame of %s", channel)
            return FrameOutcome("invalid", channel, dead_letter=f"collector error: {type(exc).__name__}: {exc}")

    def _dispatch(self, msg: dict[str, Any], channel: str, ts_recv: int) -> FrameOutcome:
        typ = msg.get("type")
        if typ is None and isinstance(msg.get("error"), dict):
            return FrameOutcome("error", channel)
        if not isinstance(typ, str):
            raise FrameError("frame has no type")
        if typ == "ping":
            return FrameOutcome("ping", send=[{"type": "pong"}])
        if typ in ("pong", "connected", "unsubscribed", "error", "shutdown"):
            return FrameOutcome(typ, channel)
        name, key = split_channel(msg)
        if not (typ.startswith("subscribed/") or typ.startswith("update/")):
            return FrameOutcome("other", channel)
        snap = typ.startswith("subscribed/")
        if name == "order_book":
            out = self._order_book(msg, channel, ts_recv)
            out.snapshot = snap
            return out
        if name == "trade":
            sym = self._symbol(key, channel)
            trades = [t for t in parse_trades(msg, sym, ts_recv) if self.seen_trades.add(t.id)]
            return FrameOutcome("trade", channel, routed=[(self.route(t), t) for t in trades], snapshot=snap)
        if name == "market_stats":
            stats = parse_market_stats(msg, self.symbols, ts_recv)
            return FrameOutcome("market_stats", channel, routed=[(self.route(s), s) for s in stats], snapshot=snap)
        return FrameOutcome("other", channel)

    def _symbol(self, key: str, channel: str) -> str:
        try:
            mid = int(key)
        except ValueError:
            raise FrameError(f"channel {channel!r} has no market id") from None
        if mid not in self.symbols:
            raise FrameError(f"channel {channel!r}: market {mid} is not collected")
        return self.symbols[mid]

    def _order_book(self, msg: dict[str, Any], channel: str, ts_recv: int) -> FrameOutcome:
        bm = parse_order_book(msg, ts_recv)
        book = self.books.get(bm.market_id)
        if book is None:
            raise FrameError(f"channel {channel!r}: market {bm.market_id} is not collected")
        res = book.apply(bm, ts_recv)
        out = FrameOutcome("order_book", channel, routed=[(self.route(e), e) for e in res.events],
                           unchecked=res.unchecked)
        if res.status is Status.GAP:
            out.gap = True
            log.warning("order book gap on %s: last nonce %s, begin_nonce %s; resubscribing",
                        channel, res.expected_nonce, res.got_begin_nonce)
        if res.resubscribe:
            sub = f"order_book/{bm.market_id}"
            out.send = [unsubscribe_msg(sub), subscribe_msg(sub)]
        return out
