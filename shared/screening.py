"""Semantic screening of a consumer's inputs: well-typed nonsense goes to the dead-letter stream.

The event decoder (:func:`shared.events.decode`) checks the schema: field names and types. An
event can pass it and still be nonsense: a BBO of bid 1 / ask 1e12, a negative size, the BBO of
another market on the BTC stream, a target from a strategy nobody configured, a ``Fill`` on the
intent stream. Every consumer therefore screens each decoded input with a :class:`Screener`
before its engine sees it (``BatchHandler.reject_reason(event, stream)`` in
:mod:`shared.service`); an input that fails goes to ``{ns}:dlq`` with the reason and is
acknowledged, never handed to an engine. The same rules for every consumer live here, once.

Reasons are ``"<check>: <detail>"``; the checks (docs/runbook.md "Dead letters" explains each):

=================  ===========================================================================
``wrong-stream``   the event type does not belong on the stream (:data:`STREAM_EVENTS`)
``wrong-market``   the event's market is not the market of its ``md`` stream; ``ModelParams`` of
                   another strategy on a params stream
``bad-envelope``   empty ``id``, a ``schema_version`` this code does not read
``bad-time``       ``ts_event`` not positive, or more than ``max_future_s`` after the wall clock
``bad-number``     a float that is not finite, an integer outside int64
``bad-price``      a price that is not positive where one is required, negative, below one tick
                   or above Lighter's largest price (``2**32 - 1`` ticks) of a known market
``bad-size``       a size that is negative (zero where a positive one is required), or larger
                   than Lighter's largest order (``2**48 - 1`` lots) of the market
``crossed-book``   bid >= ask (crossed or locked top), book levels not best first
``wide-spread``    ``(ask - bid) / mid`` above ``max_spread_pct``
``price-band``     a top's mid, or a trade's price, more than ``max_jump_pct`` from the last good
                   mid of the market
``unknown-strategy`` an intent of a strategy not in the config (:meth:`StackConfig.strategy_names`)
``unknown-market`` an intent for a market this consumer does not know (the executor: the venue's)
``bad-params``     ``ModelParams`` with ``ok`` true but a non-positive sigma, A, k, gamma, tick or mid
``invalid fill``   a ``Fill`` that :func:`shared.fifo.validate_fill` refuses (the ledger's rules)
=================  ===========================================================================

State: the last good mid per market (from accepted ``Bbo``/``BookSnapshot`` tops) and, while a
market's tops are out of band, the candidate new level. The first top of a market has no
reference: it is accepted when it passes the other checks (positive, not crossed, spread within
``max_spread_pct``, within the market's price limits). A new level is believed once out-of-band
tops consistent with each other (each within ``max_jump_pct`` of the previous one) have come for
``confirm_s`` seconds of event time and at least ``confirm_count`` times; until then they are
dead-lettered. A lone bad top never moves the reference; a real jump costs ``confirm_s`` of data.
Trades are checked against the reference and never move it. Deltas (``BookDelta``) are checked
level by level (prices positive, sizes not negative); their top is checked through the ``Bbo``
the collector derives after each.

Not checked here: intent prices against the mid (a grid may rest far from it; the executor
bounds taker prices by slippage from the touch, post-only orders cannot take, and the market
data the strategies priced from was screened), ``Control`` targets (a pause of a strategy that
does not run is a no-op), and staleness (the executor's engine refuses an intent older than
``max_intent_age_ms`` by its own clock).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from shared.config import ScreeningConfig
from shared.events import (
    SCHEMA_VERSION,
    Bbo,
    BookDelta,
    BookSnapshot,
    CancelIntent,
    Control,
    Event,
    Fill,
    GuardState,
    MarketStats,
    ModelParams,
    OrderAccepted,
    OrderCanceled,
    OrderRejected,
    PositionMismatch,
    PositionSnapshot,
    QuoteIntent,
    RestingOrders,
    RiskState,
    StopLossIntent,
    TargetPosition,
    Trade,
)
from shared.fifo import InvalidFill, validate_fill
from shared.markets import KNOWN_MARKETS, MarketInfo
from shared.venue.model import MAX_PRICE
from shared.venue.timed import MAX_BASE_AMOUNT

log = logging.getLogger(__name__)

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

#: Which event types belong on which stream kind (ARCHITECTURE.md section 4, docs/internals.md
#: "Streams"); :func:`stream_kind` names the kind of a stream.
STREAM_EVENTS: dict[str, tuple[type[Event], ...]] = {
    "book": (BookSnapshot, BookDelta, Bbo),
    "trade": (Trade,),
    "stats": (MarketStats,),
    "intent": (TargetPosition, QuoteIntent, RestingOrders, StopLossIntent, CancelIntent),
    "exec": (OrderAccepted, OrderRejected, OrderCanceled, Fill, PositionSnapshot, RiskState, GuardState,
             PositionMismatch),
    "params": (ModelParams,),
    "control": (Control,),
}

_MD = ("book", "trade", "stats")


def stream_kind(namespace: str, stream: str) -> tuple[str, str] | None:
    """The kind and key of a stream of ``namespace`` (:class:`shared.bus.Streams` names):
    ``("book"|"trade"|"stats", symbol)``, ``("intent"|"exec", account)``, ``("params",
    strategy)``, ``("control", "")``; ``None`` for any other name (e.g. ``{ns}:dlq``, another
    namespace's stream).

    >>> stream_kind("paper", "paper:md:book:BTC")
    ('book', 'BTC')
    """
    prefix = namespace + ":"
    if not stream.startswith(prefix):
        return None
    rest = stream[len(prefix):]
    if rest == "control":
        return "control", ""
    head, _, tail = rest.partition(":")
    if head == "md":
        kind, _, key = tail.partition(":")
        return (kind, key) if kind in _MD and key else None
    if head in ("intent", "exec", "params") and tail:
        return head, tail
    return None


def _tag(event: Event) -> str:
    return type(event).__struct_config__.tag  # type: ignore[return-value]


@dataclass(slots=True)
class _Candidate:
    """Out-of-band tops of one market that agree with each other (see the module docstring)."""

    mid: float
    since_ns: int
    count: int


class Screener:
    """The semantic checks of one consumer (see the module docstring): :meth:`reason` returns
    why an input must be dead-lettered, or ``None``.

    Args:
        namespace: the run's namespace (stream names are parsed with it).
        cfg: the thresholds (``StackConfig.screening``; default :class:`ScreeningConfig`).
        markets: metadata of the markets this consumer may see (limits: tick, lot); Lighter's
            known markets are added.
        strategies: the strategies allowed to send intents; ``None`` = any.
        known_markets_only: an intent for a market not in ``markets`` is ``unknown-market``
            (the executor, with the venue's markets); False (default): any market.
        wall: the wall clock in seconds (``max_future_s``).
    """

    def __init__(self, namespace: str, cfg: ScreeningConfig | None = None,
                 markets: Mapping[str, MarketInfo] | None = None, strategies: Iterable[str] | None = None,
                 known_markets_only: bool = False, wall: Callable[[], float] = time.time) -> None:
        self.ns = namespace
        self.cfg = cfg or ScreeningConfig()
        self.markets: dict[str, MarketInfo] = {**KNOWN_MARKETS, **dict(markets or {})}
        self.strategies: set[str] | None = set(strategies) if strategies is not None else None
        self.known_markets_only = known_markets_only
        self.wall = wall
        self.mids: dict[str, float] = {}  # market -> last good mid (USD)
        self._cand: dict[str, _Candidate] = {}
        self._jump = self.cfg.max_jump_pct / 100.0
        self._spread = self.cfg.max_spread_pct / 100.0
        self._kinds: dict[str, tuple[str, str] | None] = {}
        self.rejected = 0
        self.reanchored = 0

    # ------------------------------------------------------------------ public

    def reason(self, event: Event, stream: str) -> str | None:
        """Why ``event``, read from ``stream``, must be dead-lettered (``"<check>: <detail>"``),
        or ``None`` when it passes. An accepted top of book becomes its market's reference mid."""
        why = self._reason(event, stream)
        if why is not None:
            self.rejected += 1
        return why

    def passes(self, event: Event, stream: str) -> bool:
        """``reason(event, stream) is None``; logs the reason of a refused one (for stream
        reads outside the consume loop, e.g. a restore at start-up)."""
        why = self.reason(event, stream)
        if why is not None:
            log.warning("skipped %s %s from %s: %s", _tag(event), event.id, stream, why)
        return why is None

    # ------------------------------------------------------------------ checks

    def _kind(self, stream: str) -> tuple[str, str] | None:
        k = self._kinds.get(stream, ())
        if k == ():
            k = self._kinds[stream] = stream_kind(self.ns, stream)
        return k  # type: ignore[return-value]

    def _reason(self, ev: Event, stream: str) -> str | None:
        why = self._envelope(ev)
        if why:
            return why
        kind = self._kind(stream)
        if kind is not None:
            allowed = STREAM_EVENTS[kind[0]]
            if not isinstance(ev, allowed):
                names = ", ".join(c.__struct_config__.tag for c in allowed)  # type: ignore[attr-defined]
                return f"wrong-stream: a {_tag(ev)} event does not belong on {stream} (it takes {names})"
            if kind[0] in _MD and getattr(ev, "market", None) != kind[1]:
                return f"wrong-market: a {_tag(ev)} of {getattr(ev, 'market', None)!r} on {stream}"
            if kind[0] == "params" and isinstance(ev, ModelParams) and ev.strategy != kind[1]:
                return f"wrong-market: ModelParams of strategy {ev.strategy!r} on {stream}"
        check = _CHECKS.get(type(ev))
        return check(self, ev) if check is not None else None

    def _envelope(self, ev: Event) -> str | None:
        if not ev.id:
            return "bad-envelope: empty id"
        if ev.schema_version != SCHEMA_VERSION:
            return f"bad-envelope: schema_version {ev.schema_version} (this code reads {SCHEMA_VERSION})"
        for name in ev.__struct_fields__:
            v = getattr(ev, name)
            t = type(v)
            if t is float:
                if not math.isfinite(v):
                    return f"bad-number: {name} {v!r} is not finite"
            elif t is int and not INT64_MIN <= v <= INT64_MAX:
                return f"bad-number: {name} {v} is outside int64"
        if ev.ts_event <= 0:
            return f"bad-time: ts_event {ev.ts_event} is not positive"
        ahead_s = ev.ts_event / 1e9 - self.wall()
        if ahead_s > self.cfg.max_future_s:
            return (f"bad-time: ts_event {ev.ts_event} is {ahead_s:.0f}s after the wall clock "
                    f"(max_future_s {self.cfg.max_future_s:g})")
        return None

    # -- numbers of one market

    def _price(self, market: str, name: str, px: float, positive: bool = True) -> str | None:
        """``px`` USD: finite, > 0 (or >= 0 when not ``positive``), within the market's ticks."""
        if not math.isfinite(px):
            return f"bad-price: {name} {px!r} is not finite"
        if px < 0 or (positive and px == 0):
            return f"bad-price: {name} {px!r} is not positive" if positive else f"bad-price: {name} {px!r} < 0"
        info = self.markets.get(market)
        if info is not None and px > 0:
            if px < info.tick * (1 - 1e-9):
                return f"bad-price: {name} {px!r} is below one tick ({info.tick:g}) of {market}"
            if px > MAX_PRICE * info.tick:
                return f"bad-price: {name} {px!r} is above {market}'s largest price ({MAX_PRICE * info.tick:g})"
        return None

    def _size(self, market: str, name: str, sz: float, positive: bool = False, signed: bool = False) -> str | None:
        """``sz`` base units: finite, >= 0 (> 0 when ``positive``; any sign when ``signed``),
        at most Lighter's largest order of the market."""
        if not math.isfinite(sz):
            return f"bad-size: {name} {sz!r} is not finite"
        if not signed and (sz < 0 or (positive and sz == 0)):
            return f"bad-size: {name} {sz!r} is {'not positive' if positive else 'negative'}"
        info = self.markets.get(market)
        if info is not None and abs(sz) > MAX_BASE_AMOUNT * info.lot:
            return f"bad-size: {name} {sz!r} is beyond {market}'s largest order ({MAX_BASE_AMOUNT * info.lot:g})"
        return None

    def _levels(self, market: str, side: str, levels: list[tuple[float, float]], zero_ok: bool) -> str | None:
        for i, (px, sz) in enumerate(levels):
            why = self._price(market, f"{side}[{i}] price", px) or self._size(market, f"{side}[{i}] size", sz,
                                                                               positive=not zero_ok)
            if why:
                return why
        return None

    def _strategy(self, strategy: str) -> str | None:
        if self.strategies is not None and strategy not in self.strategies:
            return (f"unknown-strategy: {strategy!r} is not a strategy of the config "
                    f"(known: {', '.join(sorted(self.strategies)) or 'none'})")
        return None

    def _market(self, market: str) -> str | None:
        if self.known_markets_only and market not in self.markets:
            return f"unknown-market: {market!r} (known: {', '.join(sorted(self.markets))})"
        return None

    # -- the top of book and its reference

    def _top(self, market: str, bid: float, ask: float, ts: int) -> str | None:
        """Crossed, spread and band checks of a two-sided top; moves the reference when it passes."""
        if bid >= ask:
            return f"crossed-book: {market} bid {bid!r} >= ask {ask!r}"
        mid = (bid + ask) / 2.0
        spread = (ask - bid) / mid
        if spread > self._spread:
            return (f"wide-spread: {market} bid {bid!r} ask {ask!r}: spread {spread * 100:.3g}% of the mid "
                    f"(max_spread_pct {self.cfg.max_spread_pct:g})")
        ref = self.mids.get(market)
        if ref is None or abs(mid / ref - 1.0) <= self._jump:
            self.mids[market] = mid
            self._cand.pop(market, None)
            return None
        c = self._cand.get(market)
        if c is None or abs(mid / c.mid - 1.0) > self._jump:
            c = self._cand[market] = _Candidate(mid, ts, 1)
        else:
            c.mid, c.count = mid, c.count + 1
        if c.count >= self.cfg.confirm_count and ts - c.since_ns >= self.cfg.confirm_s * 1e9:
            log.warning("%s: new price level %.10g believed after %d tops over %.1fs (last good mid was %.10g)",
                        market, mid, c.count, (ts - c.since_ns) / 1e9, ref)
            self.reanchored += 1
            self.mids[market] = mid
            del self._cand[market]
            return None
        return (f"price-band: {market} mid {mid:.10g} is {abs(mid / ref - 1.0) * 100:.3g}% from the last good mid "
                f"{ref:.10g} (max_jump_pct {self.cfg.max_jump_pct:g}; believed after {self.cfg.confirm_s:g}s "
                f"and {self.cfg.confirm_count} consistent tops)")

    def _band(self, market: str, name: str, px: float) -> str | None:
        ref = self.mids.get(market)
        if ref is not None and abs(px / ref - 1.0) > self._jump:
            return (f"price-band: {market} {name} {px:.10g} is {abs(px / ref - 1.0) * 100:.3g}% from the last good "
                    f"mid {ref:.10g} (max_jump_pct {self.cfg.max_jump_pct:g})")
        return None

    # -- per event type

    def _bbo(self, ev: Bbo) -> str | None:
        m = ev.market
        return (self._price(m, "bid_px", ev.bid_px) or self._price(m, "ask_px", ev.ask_px)
                or self._size(m, "bid_sz", ev.bid_sz) or self._size(m, "ask_sz", ev.ask_sz)
                or self._top(m, ev.bid_px, ev.ask_px, ev.ts_event))

    def _snapshot(self, ev: BookSnapshot) -> str | None:
        m = ev.market
        why = self._levels(m, "bids", ev.bids, zero_ok=False) or self._levels(m, "asks", ev.asks, zero_ok=False)
        if why:
            return why
        if any(ev.bids[i][0] <= ev.bids[i + 1][0] for i in range(len(ev.bids) - 1)):
            return f"crossed-book: {m} snapshot bids are not best (highest) first"
        if any(ev.asks[i][0] >= ev.asks[i + 1][0] for i in range(len(ev.asks) - 1)):
            return f"crossed-book: {m} snapshot asks are not best (lowest) first"
        if ev.bids and ev.asks:
            return self._top(m, ev.bids[0][0], ev.asks[0][0], ev.ts_event)
        return None

    def _delta(self, ev: BookDelta) -> str | None:
        m = ev.market
        return self._levels(m, "bids", ev.bids, zero_ok=True) or self._levels(m, "asks", ev.asks, zero_ok=True)

    def _trade(self, ev: Trade) -> str | None:
        m = ev.market
        return (self._price(m, "price", ev.price) or self._size(m, "size", ev.size, positive=True)
                or self._band(m, "trade price", ev.price))

    def _stats(self, ev: MarketStats) -> str | None:
        m = ev.market
        return (self._price(m, "mark_price", ev.mark_price, positive=False)
                or self._price(m, "index_price", ev.index_price, positive=False)
                or self._price(m, "last_trade_price", ev.last_trade_price, positive=False)
                or self._size(m, "open_interest", ev.open_interest))

    def _target(self, ev: TargetPosition) -> str | None:
        m = ev.market
        return (self._strategy(ev.strategy) or self._market(m)
                or self._size(m, "target", ev.target, signed=True)
                or (f"bad-number: max_slippage_bps {ev.max_slippage_bps!r} < 0" if ev.max_slippage_bps < 0 else None)
                or self._price(m, "reference_price", ev.reference_price, positive=False))

    def _quote(self, ev: QuoteIntent) -> str | None:
        m = ev.market
        return (self._strategy(ev.strategy) or self._market(m)
                or (self._price(m, "bid_px", ev.bid_px, positive=False) if ev.bid_px is not None else None)
                or (self._price(m, "ask_px", ev.ask_px, positive=False) if ev.ask_px is not None else None)
                or self._size(m, "bid_sz", ev.bid_sz) or self._size(m, "ask_sz", ev.ask_sz))

    def _resting(self, ev: RestingOrders) -> str | None:
        m = ev.market
        why = self._strategy(ev.strategy) or self._market(m)
        if why:
            return why
        for i, (_side, px, sz) in enumerate(ev.orders):
            why = self._price(m, f"orders[{i}] price", px) or self._size(m, f"orders[{i}] size", sz)
            if why:
                return why
        return None

    def _stop(self, ev: StopLossIntent) -> str | None:
        m = ev.market
        return (self._strategy(ev.strategy) or self._market(m) or self._size(m, "size", ev.size)
                or self._price(m, "trigger_price", ev.trigger_price, positive=ev.size > 0)
                or (f"bad-number: max_slippage_bps {ev.max_slippage_bps!r} < 0" if ev.max_slippage_bps < 0 else None))

    def _cancel(self, ev: CancelIntent) -> str | None:
        return self._strategy(ev.strategy) or (self._market(ev.market) if ev.market is not None else None)

    def _fill(self, ev: Fill) -> str | None:
        try:
            validate_fill(ev)
        except InvalidFill as exc:
            return f"invalid fill: {exc}"
        return self._price(ev.market, "price", ev.price) or self._size(ev.market, "size", ev.size, positive=True)

    def _accepted(self, ev: OrderAccepted) -> str | None:
        m = ev.market
        return self._price(m, "price", ev.price, positive=False) or self._size(m, "size", ev.size)

    def _rejected(self, ev: OrderRejected) -> str | None:
        m = ev.market
        return self._price(m, "price", ev.price, positive=False) or self._size(m, "size", ev.size)

    def _canceled(self, ev: OrderCanceled) -> str | None:
        return self._size(ev.market, "remaining", ev.remaining)

    def _position(self, ev: PositionSnapshot) -> str | None:
        m = ev.market
        return (self._size(m, "position", ev.position, signed=True)
                or self._size(m, "account_position", ev.account_position, signed=True)
                or self._price(m, "avg_entry_price", ev.avg_entry_price, positive=False))

    def _params(self, ev: ModelParams) -> str | None:
        if not ev.ok:
            return None  # consumers never quote from it; counted by the maker
        bad = [n for n in ("sigma", "A", "k", "gamma", "tick_size", "mid", "interval_s") if not getattr(ev, n) > 0]
        if bad:
            return f"bad-params: ok params of {ev.market} with {', '.join(bad)} not > 0"
        return None


_CHECKS: dict[type, Callable[[Screener, Event], str | None]] = {
    Bbo: Screener._bbo, BookSnapshot: Screener._snapshot, BookDelta: Screener._delta, Trade: Screener._trade,
    MarketStats: Screener._stats, TargetPosition: Screener._target, QuoteIntent: Screener._quote,
    RestingOrders: Screener._resting, StopLossIntent: Screener._stop, CancelIntent: Screener._cancel,
    Fill: Screener._fill, OrderAccepted: Screener._accepted, OrderRejected: Screener._rejected,
    OrderCanceled: Screener._canceled, PositionSnapshot: Screener._position, ModelParams: Screener._params,
}  # type: ignore[dict-item]
