r"""Venue reports: the outcome of each sent command and the venue's typed reports about our
account (:mod:`shared.venue.reports`: trades, order updates, positions) and the answers of the
stale-order checks, turned into order lifecycle events (``OrderAccepted``/``OrderRejected``/
``OrderCanceled``), attributed ``Fill``\ s with ``PositionSnapshot``\ s, and the account position.

State: ``seen_trades`` ((venue trade id, our side) already processed, bounded), ``_reports``
(counter for the output ids of reports without a natural id), ``_stop_fills`` ((strategy,
market) -> time of its last stop-loss fill: a restored target older than it is not re-pursued)."""

from __future__ import annotations

from shared.events import Event, Fill, OrderAccepted, OrderCanceled, OrderRejected, derive_id
from shared.service import SeenIds
from shared.venue.reports import VenueOrder, VenuePosition, VenueTrade

from .common import CANCEL_RETRIES, RATE_LIMITED, OrderCommand, _Order, _Out
from .fill_recovery import unattributed_reason


class VenueReports:
    """Venue reports: a part of :class:`~services.executor.engine.Engine` (a mixin
    working on the engine's state; see the module docstring)."""

    def _init_venue_reports(self) -> None:
        """Set up this part's state (called by the engine's constructor)."""
        self.seen_trades = SeenIds(200_000)  # (venue trade id, our side), bounded
        self._reports = 0  # venue/runner reports without a natural id, for unique output ids
        self._stop_fills: dict[tuple[str, str], int] = {}  # (strategy, market) -> time (ns) of its last stop fill

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
            self._note_order(cmd.ts_event)
            if rec.status == "pending":
                rec.status = "open"
            out.add(OrderAccepted, strategy=rec.label, market=rec.market, client_order_index=rec.coi,
                    side=rec.side, price=price, size=size, order_type="stop-loss" if rec.kind == "stop" else "limit",
                    time_in_force=rec.tif,
                    reduce_only=rec.reduce_only, tx_hash=tx_hash or "")
        else:
            self._retire(rec)
            out.add(OrderRejected, strategy=rec.label, market=rec.market, client_order_index=rec.coi,
                    side=rec.side, price=price, size=size, code=int(code), reason=message or "send failed")
            self._eval_guards(rec.market, out)
        return out.events

    def on_venue_trade(self, trade: VenueTrade, account: bool = True, recovered: bool = False) -> list[Event]:
        """A trade of the account (:class:`~shared.venue.reports.VenueTrade`, from
        ``account_all_trades``, the REST trade history or the backtest's matching engine).
        ``account=False``: a trade whose effect the venue's position reports already gave the
        account position: only the strategies' positions move. ``recovered=True``: a trade that
        was not seen live (:meth:`FillRecovery.on_missed_trade`): a side of an order this engine
        does not know is only marked seen when the trade is older than anything of ours
        (:meth:`FillRecovery.unknown_trade_recoverable`).

        Emits, per side of the trade that is ours, one ``Fill`` per strategy the size is
        attributed to (FIFO over the order's allocation; fills of unknown orders go to
        ``cfg.unattributed_strategy`` with a ``reason`` saying why,
        :func:`~services.executor.fill_recovery.unattributed_reason`) and a
        ``PositionSnapshot`` per affected strategy. Duplicates (same trade id and side) are
        ignored, so a trade reported live, in a feed snapshot and by the REST history makes one
        ``Fill`` per side (fill ids: ``derive_id("fill", trade id, side, strategy)``).
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
            rec = self._find(coi) if coi else None
            if rec is None and recovered and not self.unknown_trade_recoverable(ts):
                continue  # from before anything of ours could trade: only marked seen
            self._note_trade(ts)
            maker = trade.is_maker_ask == (side == "sell")
            fee = trade.maker_fee_usd if maker else trade.taker_fee_usd
            out = _Out(key=f"trade:{trade_id}:{side}", ts=ts, causation_id=rec.cause_id if rec else None)
            parts = self._attribute(rec, size)
            reasons = rec.reasons if rec is not None else None
            unknown = "" if rec is not None else unattributed_reason(coi, recovered)
            sign = 1 if side == "buy" else -1
            if account:
                self.account_pos[m.symbol] = round(self.account_pos.get(m.symbol, 0.0) + sign * size, 10)
            if rec is not None:
                rec.filled = round(rec.filled + size, 10)
            for strategy, part in parts:
                st = self._strat(strategy, m.symbol)
                self._apply(st, sign * part, price)
                if rec is not None and rec.kind == "stop":
                    self._stop_fills[(strategy, m.symbol)] = ts  # restored older targets are not re-pursued
                    if st.target is not None:
                        st.target = st.position  # the stop closed it: not to be bought back
                out.add(Fill, fill_id=derive_id("fill", trade_id, side, strategy), strategy=strategy,
                        market=m.symbol, side=side, price=price, size=part, fee=fee * part / size,
                        liquidity="maker" if maker else "taker", client_order_index=coi,
                        venue_trade_id=trade_id,
                        reason=unknown or (reasons.get(strategy, "") if reasons else ""))
            for strategy in dict.fromkeys(s for s, _ in parts):
                self._snapshot(out, strategy, m.symbol)
            self._check_limits(out)
            self._eval_guards(m.symbol, out)
            if self._held_stops:
                self._place_held_stops(m.symbol, out)
            events.extend(out.events)
        return events

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
