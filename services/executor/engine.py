"""The executor engine: pure, deterministic, no I/O and no wall clock.

What it does
------------
- Keeps, per (strategy, market), a **virtual position** (signed base units) and its average
  entry price (USD), built only from the fills it attributed to the strategy; and, per market,
  the **account position** (what the venue says the account holds).
- Nets the strategies' :class:`~shared.events.TargetPosition` intents per market. Per strategy
  the delta is ``d_i = target_i - virtual_i - in_flight_i`` (in integer lots, rounded toward
  zero). Opposite deltas cross **internally** at the mid (``Fill`` with ``liquidity="internal"``,
  no fee, no venue order); the net remainder becomes one marketable IOC limit order at the touch
  +/- slippage, whose venue fills are attributed FIFO (by intent arrival) to the strategies that
  wanted that direction.
- Keeps resting limit orders per (strategy, market): :class:`~shared.events.RestingOrders` is the
  complete wanted set, diffed against the live orders (identical ones kept, others canceled,
  missing ones placed post-only/GTT); a :class:`~shared.events.QuoteIntent` is the same thing
  with at most one bid and one ask. Fills of resting orders are attributed to the owning
  strategy (maker fills). At most 16 live orders per market (Lighter's per-account limit).
  Cancels on :class:`~shared.events.CancelIntent`, obeys :class:`~shared.events.Control`.
- Gates every order: HALTED (no orders), REDUCING (only orders that shrink the account's
  absolute position, sent reduce-only), max position and max notional per market, counted in
  the worst case (position + IOCs in flight + all our resting orders on the order's side
  filling; targets are clipped, with an ``OrderRejected(code=0)`` for the clipped part), market
  minimums (refused locally naming the minimum: ``OrderRejected(code=1)``, *unreachable*, when a
  strategy's unclipped target remainder with nothing in flight is below it -- the strategy
  should not retry that target; ``code=0`` otherwise, e.g. resting orders).
- Guards (:meth:`Engine._eval_guards`): ``max_position``/``max_notional`` block the side that
  would grow the inventory, with a ``GuardState`` on every change; the **self-trade guard**
  never lets a taker order meet one of our resting orders: crossing resting orders are canceled
  first and the IOC is sent once the venue confirmed them; new resting orders never cross our
  own other side (refused) nor an IOC of ours in flight (held back).
- Request budget (Lighter's rate limit per account tier) by event time: the commands of one
  step are one ``sendTxBatch`` request per 15; quote/resting updates without budget are
  deferred (latest wanted set kept, applied later), cancels and IOCs never; error 23000 backs
  off. See ``docs/internals.md`` (executor guards, request budget).

Parts
-----
:class:`Engine` is a facade: it holds the state and the bus-input entry points (``on_event(s)``,
``on_market_data``), and inherits the rest from parts with one job each, one module per part;
each part sets up the state it owns (``_init_<part>``) and documents it in its module docstring:

=============================  ==========================================================
``orders.py``                  order registry: client order indices, live/finished orders,
                               create/cancel/refuse, queries (in flight, resting, crossing, stale)
``attribution.py``             virtual positions per (strategy, market), FIFO fill attribution
``netting.py``                 targets -> internal cross + one risk-gated IOC (``_rebalance``)
``resting.py``                 resting-order sets (QuoteIntent/RestingOrders diff, placement)
``guards.py``                  inventory and self-trade guards, the fast path's guard band
``budget.py``                  request budget, 23000 back-off, deferred work (``_flush``)
``control.py``                 kill/pause/resume/flatten, reconciliation, derived risk state
``restore.py``                 start-up: exec history, standing wishes, control state
``venue_reports.py``           send results and typed venue reports -> order events, fills
``fill_recovery.py``           trades missed while down or disconnected -> exactly one Fill each
``position_check.py``          account position vs the strategies' sum -> ``PositionMismatch``
``protective.py``              protective stops (``protective_stop``, off by default): one
                               reduce-only stop-loss per (strategy, market) with a position
``common.py``                  shared types and constants (``OrderCommand``, ``StaleOrder``, ...)
=============================  ==========================================================

API
---
Inputs from the bus::

    outs = engine.on_events([ev1, ev2, ...])   # one consumer batch; intents of one batch net together
    outs = engine.on_event(ev)                 # == on_events([ev])
    cmds = engine.take_commands()              # order commands produced since the last take

Reports from the venue (typed, :mod:`shared.venue.reports`; the runner's venue client parses
Lighter's WS/REST JSON into them, the backtest makes them from the matching engine)::

    engine.on_send_result(cmd, ok, code, message, tx_hash) -> list[Event]
    engine.on_venue_trade(VenueTrade)                      -> list[Event]
    engine.on_venue_order(VenueOrder)                      -> list[Event]
    engine.on_venue_position(VenuePosition)                -> list[Event]

Start-up and state (runner)::

    engine.restore(exec_history)                 # fold the exec stream: positions, ids, trade ids
    engine.set_account_position(market, pos)     # from the REST account (reconciliation)
    engine.set_reconciled(ok, reason, ts_ns)     -> list[Event]   (RiskState on change)
    engine.cancel_all_command(ts_ns)             -> OrderCommand  (shutdown / reconcile)
    engine.resting_orders(strategy, market)      -> [(side, price, size)]  live resting orders
    engine.protective_coi(coi)                   -> strategy | None  (a protective stop of ours?)
    engine.adopt_protective_stop(...)            -> bool  (keep a previous run's protective stop)
    engine.on_missed_trade(VenueTrade)           -> list[Event]  (a fill missed while down: feed snapshot, REST history)
    engine.recovery_since_ns()                   -> int | None  (how far back to read the trade history)
    engine.check_positions(market, ts_ns)        -> list[Event]  (PositionMismatch on a change)
    engine.protective_status()                   -> dict  (/health)

Guards and budget (metrics)::

    engine.guard_engaged(guard, market, side)    -> bool
    engine.budget_limit() / budget_used() / budget_remaining()   weight units per rolling minute
    engine.requests_sent, engine.deferred_updates, engine.superseded_intents, engine.rate_limited,
    engine.guard_engagements

Commands (:class:`OrderCommand`) carry integer ticks/lots and are executed by the runner in
order: it signs them with its own nonces, sends them and reports back with
:meth:`Engine.on_send_result`. ``OrderAccepted``/``OrderRejected`` for a sent order are only
emitted from that report.

Determinism: output ids are ``shared.events.child(cause, "executor", k)`` for events caused by a
bus input, and ``derive_id(<venue report key>, "executor", k)`` for events caused by venue
reports; fill ids are ``derive_id("fill", venue_trade_id, side, strategy)`` for venue fills and
``derive_id("internal", intent_id, market, strategy)`` for internal crosses. Client order
indexes come from a counter that the runner seeds (see :class:`Engine`). Time is taken only from
events (``ts_event``) and venue reports (their ``timestamp``).
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.events import (
    Bbo,
    BookSnapshot,
    CancelIntent,
    Control,
    Event,
    QuoteIntent,
    RestingOrders,
    StopLossIntent,
    TargetPosition,
)
from shared.markets import MarketInfo
from shared.venue.reports import VenueOrder, VenuePosition, VenueTrade

from .attribution import Attribution
from .budget import RequestBudget
from .common import (
    _MARKET_DATA,
    MAX_CLIENT_ORDER_INDEX,
    MAX_OPEN_ORDERS_PER_MARKET,
    RATE_LIMITED,
    OrderCommand,
    StaleOrder,
    _Out,
)
from .config import ExecutorConfig
from .control import ControlState
from .fill_recovery import FillRecovery
from .guards import Guards
from .netting import Netting
from .orders import OrderRegistry
from .position_check import PositionCheck
from .protective import ProtectiveStops
from .resting import RestingSets
from .restore import Restore
from .venue_reports import VenueReports


class Engine(OrderRegistry, Attribution, Netting, RestingSets, Guards, RequestBudget, ControlState, Restore, VenueReports,
             ProtectiveStops, FillRecovery, PositionCheck):
    """The executor's decision logic for one account.

    Args:
        cfg: the executor config (limits, slippage, expiry).
        markets: tradable markets by symbol (from ``orderBookDetails``).
        account_index: the Lighter account (to tell our side of a trade).
        next_client_order_index: first client order index to allocate (1 .. 2^48-1). The runner
            uses ``max(last index in the exec stream + 1, unix time in ms)`` so indexes never
            repeat across restarts (see ``runner.py``).
        reconciled: start RUNNING (True, tests) or HALTED until :meth:`set_reconciled` (False,
            the runner).

    Raises:
        ValueError: ``next_client_order_index`` out of range.
    """

    def __init__(self, cfg: ExecutorConfig, markets: dict[str, MarketInfo], account_index: int,
                 next_client_order_index: int = 1, reconciled: bool = True) -> None:
        if not 1 <= next_client_order_index <= MAX_CLIENT_ORDER_INDEX:
            raise ValueError(f"client order index must be in 1..2^48-1, got {next_client_order_index}")
        self.cfg = cfg
        self.markets = dict(markets)
        self.by_id = {m.market_id: m for m in markets.values()}
        self.account = account_index
        self.now = 0  # event time (ns): the latest input's
        self.bbo: dict[str, tuple[float, float]] = {}  # market -> (bid, ask) USD
        # fast path of on_market_data (see there); False = re-check everything on every quote (tests)
        self._fast = True
        # each part sets up the state it owns
        self._init_orders(next_client_order_index)
        self._init_attribution()
        self._init_resting()
        self._init_guards()
        self._init_budget()
        self._init_control(reconciled)
        self._init_restore()
        self._init_venue_reports()
        self._init_protective()
        self._init_fill_recovery()
        self._init_position_check()

    # ------------------------------------------------------------------ public: bus inputs

    def on_event(self, event: Event) -> list[Event]:
        """Process one bus input; see :meth:`on_events`."""
        return self.on_events([event])

    def on_events(self, events: Sequence[Event]) -> list[Event]:
        """Process a batch of bus inputs; see :meth:`_on_events`. With protective stops on
        (``cfg.protective_stop``), every market's protective stops are evaluated afterwards
        (:mod:`services.executor.protective`)."""
        outs = self._on_events(events)
        if self._protect_on:
            if not (len(events) == 1 and type(events[0]) in _MARKET_DATA):
                self._protect_mark(None)
            self._protect()
        return outs

    def _on_events(self, events: Sequence[Event]) -> list[Event]:
        """Process a batch of bus inputs (Bbo/BookSnapshot, TargetPosition, QuoteIntent,
        RestingOrders, StopLossIntent, CancelIntent, Control; other types are ignored). Target positions of the batch are
        recorded first and each touched market is rebalanced once at the end, so strategies
        whose intents arrive in the same batch cross internally. A quote/resting intent that a
        later one of the same strategy and market in the batch replaces is skipped
        (:meth:`~services.executor.resting.RestingSets._superseded`).

        Returns the bus events to publish on the exec stream (in order); order commands are
        queued for :meth:`take_commands`.
        """
        if len(events) == 1 and type(events[0]) in _MARKET_DATA:
            return self._on_market_data(events[0])
        self._changed()
        outs: list[_Out] = []
        dirty: dict[str, tuple[_Out, set[str]]] = {}
        skip = self._superseded(events) if len(events) > 1 else set()
        self.superseded_intents += len(skip)
        for i, ev in enumerate(events):
            self.now = max(self.now, ev.ts_event)
            if i in skip:
                continue
            out = _Out(ev)
            outs.append(out)
            if self._restored:
                if self._join_restored(ev):
                    continue
                self._supersede_restored(ev)
            if isinstance(ev, Bbo):
                if ev.bid_px > 0 and ev.ask_px > 0:
                    self.bbo[ev.market] = (ev.bid_px, ev.ask_px)
                    if ev.market in self.markets:
                        self._eval_guards(ev.market, out)
            elif isinstance(ev, BookSnapshot):
                if ev.bids and ev.asks:
                    self.bbo[ev.market] = (ev.bids[0][0], ev.asks[0][0])
                    if ev.market in self.markets:
                        self._eval_guards(ev.market, out)
            elif isinstance(ev, TargetPosition):
                self._on_target(ev, out, dirty)
            elif isinstance(ev, QuoteIntent):
                self._on_quote(ev, out)
                if ev.market in self.markets:
                    self._eval_guards(ev.market, out)
            elif isinstance(ev, RestingOrders):
                self._on_resting(ev, out)
                if ev.market in self.markets:
                    self._eval_guards(ev.market, out)
            elif isinstance(ev, StopLossIntent):
                self._on_stop(ev, out)
            elif isinstance(ev, CancelIntent):
                if not self._paused(ev.strategy):
                    self._forget_wanted(ev.strategy, ev.market)
                    self._cancel_quotes(ev.strategy, ev.market, ev)
                    for market in ([ev.market] if ev.market in self.markets else
                                   list(self.markets) if ev.market is None else []):
                        self._eval_guards(market, out)
            elif isinstance(ev, Control):
                self._on_control(ev, out, dirty)
                for market in self.markets:
                    if market not in dirty:
                        self._eval_guards(market, out)
        for market, (out, triggered) in dirty.items():
            self._rebalance(market, out, triggered)
            self._eval_guards(market, out)
        if self._restored:
            for ev in events:
                if type(ev) in (Bbo, BookSnapshot):
                    done = _Out(ev)
                    done.events = self._activate_restored(ev.market, ev)  # type: ignore[attr-defined]
                    outs.append(done)
        if self._pending or self._held or self._retry_cancels or self._retry_cancel_all or self._retry_markets:
            return [e for o in outs for e in o.events] + self._flush()
        self._recheck.clear()
        return [e for o in outs for e in o.events]

    def on_market_data(self, ev: Event) -> list[Event]:
        """One market-data event; see :meth:`_on_market_data`. Protective stops waiting for an
        evaluation (e.g. for the market's first touch) are evaluated afterwards."""
        outs = self._on_market_data(ev)
        if self._protect_dirty:
            self._protect()
        return outs

    def _on_market_data(self, ev: Event) -> list[Event]:
        """One market-data event (``Bbo``, ``BookSnapshot``, ``Trade``, ``MarketStats``); the
        same as ``on_events([ev])``, faster (the backtest's loop calls it for every recorded
        event): moves the clock to ``ev.ts_event``, keeps the touch of a two-sided ``Bbo`` /
        ``BookSnapshot``, re-evaluates that market's guards (the notional limit moves with the
        mid; ``GuardState`` only on a change) and does the deferred work that became possible
        (:meth:`_flush`: quote updates deferred for budget, retries after a 23000 back-off).
        Usually returns ``[]``; commands it queues are taken with :meth:`take_commands`.

        Fast path (outputs identical to re-checking everything): after a full guard evaluation
        the market keeps the open range of mids within which none of its guard states can
        change (:meth:`_guard_band`), and after finding the deferred work blocked the engine
        keeps the event time at which it could proceed next (:meth:`_flush_idle`). A quote
        whose mid lies inside the range, before that time, costs only the clock and the touch.
        Every other input (intents, venue reports, positions, commands taken) drops both
        (:meth:`_changed`), as they may move the inventory, the in-flight orders, the held
        orders, the deferred work or the budget."""
        ts = ev.ts_event
        if ts > self.now:
            self.now = ts
        market = None
        t = type(ev)
        if t is Bbo:
            bid, ask = ev.bid_px, ev.ask_px  # type: ignore[attr-defined]
            if bid > 0 and ask > 0:
                market = ev.market  # type: ignore[attr-defined]
                self.bbo[market] = (bid, ask)
        elif t is BookSnapshot:
            if ev.bids and ev.asks:  # type: ignore[attr-defined]
                bid, ask = ev.bids[0][0], ev.asks[0][0]  # type: ignore[attr-defined]
                market = ev.market  # type: ignore[attr-defined]
                self.bbo[market] = (bid, ask)
        events: list[Event] = []
        if market is not None:
            band = self._bands.get(market)
            if (band is None or not band[0] < (bid + ask) / 2.0 < band[1]) and market in self.markets:
                made = self._eval_guards(market, ev, band=self._fast)
                if made is not None:
                    events = made.events
            if self._restored and market in self._restored and self.state != "halted":
                events = events + self._activate_restored(market, ev)
                self._changed()
        if self._pending or self._held or self._retry_cancels or self._retry_cancel_all or self._retry_markets:
            if (self._fast and not self._commands and not self._recheck
                    and (self.now < self._idle_until or self._flush_idle())):
                self._flushes += 1  # what _flush does when it has nothing to do (its output ids count flushes)
                return events
            events = events + self._flush()
            self._changed()
            return events
        if self._recheck:
            self._recheck.clear()
        return events

    def _changed(self) -> None:
        """Forget the fast path's guard bands and flush wait time (see :meth:`on_market_data`):
        called by every input other than market data."""
        if self._bands:
            self._bands.clear()
        self._idle_until = 0

    # ------------------------------------------------------------------ public: venue reports (protective stops)

    def on_venue_trade(self, trade: VenueTrade, account: bool = True, recovered: bool = False) -> list[Event]:
        """:meth:`VenueReports.on_venue_trade`, then the market's protective stops."""
        outs = super().on_venue_trade(trade, account, recovered)
        if self._protect_on:
            m = self.by_id.get(trade.market_id)
            self._protect_mark(m.symbol if m is not None else None)
            self._protect()
        return outs

    def on_venue_order(self, order: VenueOrder) -> list[Event]:
        """:meth:`VenueReports.on_venue_order`, then the market's protective stops."""
        outs = super().on_venue_order(order)
        if self._protect_on:
            m = self.by_id.get(order.market_id)
            self._protect_mark(m.symbol if m is not None else None)
            self._protect()
        return outs

    def on_venue_position(self, pos: VenuePosition) -> list[Event]:
        """:meth:`VenueReports.on_venue_position`, then the market's position check
        (:meth:`PositionCheck.check_positions`)."""
        outs = super().on_venue_position(pos)
        m = self.by_id.get(pos.market_id)
        return outs + self.check_positions(m.symbol) if m is not None else outs

    def on_order_unknown(self, client_order_index: int, reason: str = "") -> list[Event]:
        """:meth:`VenueReports.on_order_unknown`, then the protective stops."""
        outs = super().on_order_unknown(client_order_index, reason)
        if self._protect_on:
            self._protect_mark(None)
            self._protect()
        return outs

    def on_send_result(self, cmd: OrderCommand, ok: bool, code: int = 200, message: str = "",
                       tx_hash: str = "") -> list[Event]:
        """:meth:`VenueReports.on_send_result`; a refused protective stop is noted (its retry
        waits) and the market evaluated again on the next input."""
        self._protect_send_result(cmd, ok, code)
        return super().on_send_result(cmd, ok, code, message, tx_hash)

    def set_reconciled(self, ok: bool, reason: str = "", ts_ns: int | None = None) -> list[Event]:
        """:meth:`ControlState.set_reconciled`, then the protective stops (positions restored
        and reconciled; placed at each market's first touch) and, once reconciled, the position
        check of every market (:meth:`PositionCheck.check_positions`)."""
        outs = super().set_reconciled(ok, reason, ts_ns)
        if self._protect_on:
            self._protect_mark(None)
            self._protect()
        return outs + self.check_positions(ts_ns=ts_ns) if ok else outs

    # ------------------------------------------------------------------ public: request budget

    # ------------------------------------------------------------------ public: venue reports

    # ------------------------------------------------------------------ public: stale orders

    # ------------------------------------------------------------------ public: start-up

    # ------------------------------------------------------------------ intents

    # ------------------------------------------------------------------ resting orders (quotes, grids)

    # ------------------------------------------------------------------ guards

    # ------------------------------------------------------------------ deferred work

    # ------------------------------------------------------------------ control

    # ------------------------------------------------------------------ positions and risk

__all__ = ["MAX_CLIENT_ORDER_INDEX", "MAX_OPEN_ORDERS_PER_MARKET", "RATE_LIMITED", "Engine", "OrderCommand",
           "StaleOrder"]
