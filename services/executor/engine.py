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

Guards and budget (metrics)::

    engine.guard_engaged(guard, market, side)    -> bool
    engine.budget_limit() / budget_used() / budget_remaining()   weight units per rolling minute
    engine.requests_sent, engine.deferred_updates, engine.rate_limited, engine.guard_engagements

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

from collections import OrderedDict, deque
from collections.abc import Sequence
from typing import Literal

from shared.events import (
    Bbo,
    BookSnapshot,
    CancelIntent,
    Control,
    Event,
    Fill,
    OrderAccepted,
    OrderCanceled,
    OrderRejected,
    QuoteIntent,
    RestingOrders,
    Side,
    TargetPosition,
    derive_id,
)
from shared.markets import MarketInfo
from shared.service import SeenIds
from shared.venue.reports import VenueOrder, VenuePosition, VenueTrade

from .attribution import Attribution
from .budget import RequestBudget
from .common import (
    _MARKET_DATA,
    CANCEL_RETRIES,
    MAX_CLIENT_ORDER_INDEX,
    MAX_OPEN_ORDERS_PER_MARKET,
    RATE_LIMITED,
    OrderCommand,
    StaleOrder,
    _Order,
    _Out,
    _Strat,
)
from .config import ExecutorConfig
from .control import ControlState
from .guards import Guards
from .netting import Netting
from .orders import OrderRegistry
from .resting import RestingSets
from .restore import Restore


class Engine(OrderRegistry, Attribution, Netting, RestingSets, Guards, RequestBudget, ControlState, Restore):
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
        self.next_coi = next_client_order_index
        self.now = 0
        self.bbo: dict[str, tuple[float, float]] = {}
        self.strats: dict[tuple[str, str], _Strat] = {}
        self.account_pos: dict[str, float] = {m: 0.0 for m in markets}
        self.orders: dict[int, _Order] = {}  # live orders only: scanned on every rebalance
        # finished orders, kept (bounded) so that late venue reports still find their order
        self.done_orders: OrderedDict[int, _Order] = OrderedDict()
        self.paused: set[str] = set()
        self.paused_all = False
        self.seen_trades = SeenIds(200_000)  # (venue trade id, our side), bounded
        self._seq = 0
        self._reports = 0  # venue/runner reports without a natural id, for unique output ids
        self._commands: list[OrderCommand] = []
        # risk state inputs; the published state is derived from them
        self.killed: str | None = None
        self.reconciled = reconciled
        self.reconcile_reason = "" if reconciled else "starting: not reconciled yet"
        self.flattening = False
        self.over_limit: str | None = None
        self.state, self.state_reason = self._derive_state()
        # guards: (guard, market, side) -> engaged; self-trade holds and deferred resting updates
        self.guards: dict[tuple[str, str, str], bool] = {}
        self.guard_engagements = 0
        self._held: dict[str, tuple[Side, int, str]] = {}  # market -> (IOC side, limit ticks, reason)
        self._wanted: dict[tuple[str, str], tuple[Event, list[tuple[Side, float, float]], bool]] = {}
        self._pending: dict[tuple[str, str], Literal["budget", "blocked"]] = {}  # insertion-ordered
        self._blocked: dict[tuple[str, str], dict[Side, str]] = {}  # deferred by the self-trade guard
        self._recheck: set[str] = set()  # markets where an order finished: holds may be released
        self._limits: dict[str, tuple[float, float, float]] = {}  # market -> (max units, max USD, min base)
        self._gstate: dict[str, tuple[bool, ...]] = {}  # market -> last evaluated guard states
        # request budget (event time)
        self._budget_log: deque[tuple[int, int]] = deque()  # (ts ns, weight) per engine step
        self._budget_used = 0
        self.requests_sent = 0
        self.deferred_updates = 0
        self.rate_limited = 0
        self.backoff_until = 0
        self._retry_cancels: dict[int, int] = {}  # coi -> failed sends so far
        self._cancel_failures: dict[int, int] = {}
        self._retry_cancel_all = ""
        self._retry_markets: dict[str, None] = {}
        self._flushes = 0
        # fast path of on_market_data (see there); False = re-check everything on every quote (tests)
        self._fast = True
        self._bands: dict[str, tuple[float, float]] = {}  # market -> open mid range of unchanged guard states
        self._idle_until = 0  # event time (ns) before which _flush has nothing to do; 0 = not known
        # intents restored at start-up, applied at the market's first market data (restore_intents)
        self._restored: dict[str, dict[tuple[str, str], Event]] = {}  # market -> {(kind, strategy): intent}
        self._restore_seq = 0  # target sequence number at the restore (newer targets beat a resumed flatten)
        self.restored_controls = 0  # Control events folded at the restore

    # ------------------------------------------------------------------ public: bus inputs

    def on_event(self, event: Event) -> list[Event]:
        """Process one bus input; see :meth:`on_events`."""
        return self.on_events([event])

    def on_events(self, events: Sequence[Event]) -> list[Event]:
        """Process a batch of bus inputs (Bbo/BookSnapshot, TargetPosition, QuoteIntent,
        RestingOrders, CancelIntent, Control; other types are ignored). Target positions of the batch are
        recorded first and each touched market is rebalanced once at the end, so strategies
        whose intents arrive in the same batch cross internally.

        Returns the bus events to publish on the exec stream (in order); order commands are
        queued for :meth:`take_commands`.
        """
        if len(events) == 1 and type(events[0]) in _MARKET_DATA:
            return self.on_market_data(events[0])
        self._changed()
        outs: list[_Out] = []
        dirty: dict[str, tuple[_Out, set[str]]] = {}
        for ev in events:
            self.now = max(self.now, ev.ts_event)
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

    # ------------------------------------------------------------------ public: request budget

    # ------------------------------------------------------------------ public: venue reports

    def on_send_result(self, cmd: OrderCommand, ok: bool, code: int = 200, message: str = "",
                       tx_hash: str = "") -> list[Event]:
        """Outcome of sending ``cmd``: ``OrderAccepted`` or ``OrderRejected`` for a create
        (``code`` = Lighter error code, or -1 for a transport/signing failure); nothing for
        cancels (their effect arrives as order updates).

        Failures are never lost: a failed cancel (or cancel-all) is sent again on a later event
        (23000: without limit, after the back-off; other codes: up to :data:`CANCEL_RETRIES`
        times); after 23000 (too many requests) a refused resting order's wanted set is
        re-applied and a refused taker order's market rebalanced once the back-off of
        ``cfg.rate_limit_backoff_s`` (event time) is over."""
        self._changed()
        if not ok and code == RATE_LIMITED:
            self.rate_limited += 1
            self.backoff_until = max(self.backoff_until, self.now + int(self.cfg.rate_limit_backoff_s * 1e9))
        if cmd.kind == "cancel_all":
            if not ok:
                self._retry_cancel_all = cmd.cause_id or "cancel_all"
            return []
        if cmd.kind == "cancel":
            if not ok:
                rec = self.orders.get(cmd.client_order_index)
                if rec is not None and rec.live and rec.cancel_requested:
                    rec.cancel_requested = False
                    fails = self._cancel_failures.get(rec.coi, 0) + (0 if code == RATE_LIMITED else 1)
                    self._cancel_failures[rec.coi] = fails
                    if fails <= CANCEL_RETRIES:
                        self._retry_cancels[rec.coi] = fails
                    self._recheck.add(rec.market)
            return []
        rec = self._find(cmd.client_order_index)
        if rec is None:
            return []
        if not ok and code == RATE_LIMITED and rec.live:
            if rec.kind == "quote":
                key = (self._owner(rec), rec.market)
                if key in self._wanted:
                    self._pending[key] = "budget"
            else:
                self._retry_markets[rec.market] = None
        if not ok:
            self._recheck.add(rec.market)
        out = _Out(key=f"send:{cmd.client_order_index}", ts=cmd.ts_event, causation_id=cmd.cause_id)
        m = self.markets[rec.market]
        price, size = m.int_to_price(rec.price), m.int_to_size(rec.size)
        if ok:
            if rec.status == "pending":
                rec.status = "open"
            out.add(OrderAccepted, strategy=rec.label, market=rec.market, client_order_index=rec.coi,
                    side=rec.side, price=price, size=size, order_type="limit", time_in_force=rec.tif,
                    reduce_only=rec.reduce_only, tx_hash=tx_hash or "")
        else:
            self._retire(rec)
            out.add(OrderRejected, strategy=rec.label, market=rec.market, client_order_index=rec.coi,
                    side=rec.side, price=price, size=size, code=int(code), reason=message or "send failed")
            self._eval_guards(rec.market, out)
        return out.events

    def on_venue_trade(self, trade: VenueTrade) -> list[Event]:
        """A trade of the account (:class:`~shared.venue.reports.VenueTrade`, from
        ``account_all_trades`` or the backtest's matching engine).

        Emits, per side of the trade that is ours, one ``Fill`` per strategy the size is
        attributed to (FIFO over the order's allocation; fills of unknown orders go to
        ``cfg.unattributed_strategy``) and a ``PositionSnapshot`` per affected strategy.
        Duplicates (same trade id and side) are ignored.
        """
        self._changed()
        m = self.by_id.get(trade.market_id)
        if m is None:
            return []
        trade_id = trade.trade_id
        size = trade.size
        price = trade.price
        if not trade_id or size <= 0:
            return []
        ts = trade.ts_ns or self.now
        self.now = max(self.now, ts)
        events: list[Event] = []
        for side, acct, coi in (("buy", trade.bid_account, trade.bid_client_order_index),
                                ("sell", trade.ask_account, trade.ask_client_order_index)):
            if acct != self.account or (trade_id, side) in self.seen_trades:
                continue
            self.seen_trades.add((trade_id, side))
            maker = trade.is_maker_ask == (side == "sell")
            fee = trade.maker_fee_usd if maker else trade.taker_fee_usd
            rec = self._find(coi) if coi else None
            out = _Out(key=f"trade:{trade_id}:{side}", ts=ts, causation_id=rec.cause_id if rec else None)
            parts = self._attribute(rec, size)
            sign = 1 if side == "buy" else -1
            self.account_pos[m.symbol] = round(self.account_pos.get(m.symbol, 0.0) + sign * size, 10)
            if rec is not None:
                rec.filled = round(rec.filled + size, 10)
            for strategy, part in parts:
                st = self._strat(strategy, m.symbol)
                self._apply(st, sign * part, price)
                out.add(Fill, fill_id=derive_id("fill", trade_id, side, strategy), strategy=strategy,
                        market=m.symbol, side=side, price=price, size=part, fee=fee * part / size,
                        liquidity="maker" if maker else "taker", client_order_index=coi,
                        venue_trade_id=trade_id)
            for strategy in dict.fromkeys(s for s, _ in parts):
                self._snapshot(out, strategy, m.symbol)
            self._check_limits(out)
            self._eval_guards(m.symbol, out)
            events.extend(out.events)
        return events

    def mark_trade_seen(self, trade: VenueTrade) -> None:
        """Record our sides of ``trade`` as already processed without emitting fills (trades
        of the account from before this run, e.g. in the first ``subscribed`` snapshot)."""
        if not trade.trade_id:
            return
        if trade.bid_account == self.account:
            self.seen_trades.add((trade.trade_id, "buy"))
        if trade.ask_account == self.account:
            self.seen_trades.add((trade.trade_id, "sell"))

    def on_venue_order(self, order: VenueOrder) -> list[Event]:
        """An order update (:class:`~shared.venue.reports.VenueOrder`, from
        ``account_all_orders``, the REST order lists or the backtest's matching engine). A
        status starting with ``canceled`` or ``expired`` is terminal and yields ``OrderCanceled``
        with the unfilled remainder; ``filled`` is terminal without an event; ``open`` marks the
        order resting."""
        self._changed()
        coi = order.client_order_index
        rec = self.orders.get(coi)
        if rec is None or rec.status == "done":
            return []
        status = order.status
        if order.order_index:
            rec.order_index = order.order_index
        if status == "filled" or status.startswith("canceled") or status.startswith("expired"):
            ts = order.ts_ns or self.now
            remaining = None if status == "filled" else order.remaining
            return self._finish(rec, f"order:{coi}:{status}", ts, status, remaining)
        if status in ("open", "in-progress", "pending"):
            rec.status = "open"
        return []

    def _finish(self, rec: _Order, key: str, ts: int, reason: str, remaining: float | None) -> list[Event]:
        """Retire ``rec`` after its final report: ``OrderCanceled(remaining, reason)`` unless
        filled (``remaining`` None); then the guards and the deferred work it may release."""
        coi = rec.coi
        self._retire(rec)
        self._retry_cancels.pop(coi, None)
        self._cancel_failures.pop(coi, None)
        self._recheck.add(rec.market)
        out = _Out(key=key, ts=ts, causation_id=rec.cause_id)
        if remaining is not None:
            out.add(OrderCanceled, strategy=rec.label, market=rec.market, client_order_index=coi,
                    remaining=remaining, reason=reason)
        self._eval_guards(rec.market, out)
        return out.events + self._flush()

    # ------------------------------------------------------------------ public: stale orders

    def on_order_unknown(self, client_order_index: int, reason: str = "") -> list[Event]:
        """The venue knows no order ``client_order_index`` (neither among the account's active
        nor its recent inactive orders) although it is stale (:meth:`stale_orders`): it is
        treated as **finished unfilled** -- ``OrderCanceled`` with the unfilled remainder and a
        reason starting ``unknown to the venue`` -- so it stops counting in flight and a held
        IOC may go. Fills that still arrive for it are attributed as usual (the order is
        remembered). Returns the events (none if the order is not live)."""
        self._changed()
        rec = self.orders.get(client_order_index)
        if rec is None or not rec.live:
            return []
        m = self.markets[rec.market]
        remaining = round(max(0.0, m.int_to_size(rec.size) - rec.filled), 10)
        why = f"unknown to the venue after {self.cfg.order_stale_s:g}s without a final order update"
        return self._finish(rec, f"order:{client_order_index}:unknown", self.now, why + (f": {reason}" if reason else ""),
                            remaining)

    def on_order_still_open(self, client_order_index: int) -> bool:
        """The venue lists stale order ``client_order_index`` as active (open). An order whose
        cancel was requested ``order_stale_s`` ago and is still open lost its cancel: the cancel
        is queued again (a command for :meth:`take_commands`), at most :data:`CANCEL_RETRIES`
        times per order. Returns whether a cancel was queued (an IOC still being matched, or an
        order without a cancel request, is left alone)."""
        self._changed()
        rec = self.orders.get(client_order_index)
        if rec is None or not rec.live or not rec.cancel_requested or rec.checks >= CANCEL_RETRIES:
            return False
        rec.checks += 1
        self._cancel(rec, _Out(key=f"recancel:{rec.coi}:{rec.checks}", ts=self.now, causation_id=rec.cause_id))
        return True

    def on_venue_position(self, pos: VenuePosition) -> list[Event]:
        """The account position in one market (:class:`~shared.venue.reports.VenuePosition`,
        from ``account_all_positions``, the REST account or the backtest's matching engine):
        sets the account position (authoritative) and re-evaluates the limits; returns a
        ``RiskState`` if the state changed."""
        self._changed()
        m = self.by_id.get(pos.market_id)
        if m is None:
            return []
        self.account_pos[m.symbol] = round(pos.position, 10)
        self._reports += 1
        out = _Out(key=f"position:{m.symbol}:{self.now}:{self._reports}", ts=self.now)
        self._check_limits(out)
        self._eval_guards(m.symbol, out)
        return out.events

    # ------------------------------------------------------------------ public: start-up

    # ------------------------------------------------------------------ intents

    # ------------------------------------------------------------------ resting orders (quotes, grids)

    # ------------------------------------------------------------------ guards

    # ------------------------------------------------------------------ deferred work

    # ------------------------------------------------------------------ control

    # ------------------------------------------------------------------ positions and risk

__all__ = ["MAX_CLIENT_ORDER_INDEX", "MAX_OPEN_ORDERS_PER_MARKET", "RATE_LIMITED", "Engine", "OrderCommand",
           "StaleOrder"]
