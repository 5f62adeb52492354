r"""Protective stops: exchange-side reduce-only stop-loss orders that the executor keeps for each
strategy's open position, so that a crash of any process (the executor's included) leaves every
position protected on the venue. Off by default (``services.executor.protective_stop``,
:class:`~services.executor.config.ProtectiveStopConfig`).

Rules (per (strategy, market), evaluated in sorted strategy order whenever something that could
change them happened -- a fill, an order finishing, a send result, a stop-loss intent, a
control, reconciliation, the market's first touch):

- wanted: a stop when the strategy's virtual position is at least one lot, the strategy is not in
  ``exclude`` and it has no live stop-loss of its own (a ``StopLossIntent``'s: the strategy's
  stop replaces the executor's); otherwise the protective stop is canceled (flat: cancel);
- side and size: a long gets a ``sell`` stop, a short a ``buy`` stop, of the position's size
  (rounded down to lots), reduce-only, Lighter ``stop-loss`` (type 2: a market order no worse
  than ``max_slippage_bps`` beyond the trigger once the trigger is reached);
- trigger: ``distance_bps`` (per market, else ``default_distance_bps``) from the reference price
  -- ``entry``: the strategy's average entry, but never nearer the market than the distance
  from the mid at placement; ``mark``: the mid at placement -- below a long, above a short;
  sell stops rounded down, buy stops up (never nearer the market);
- no churn: a live stop is kept while it covers the position within ``resize_threshold``
  (a stop larger than the position -- it shrank -- is always re-placed: reduce-only orders act on
  the whole account position, see ``docs/runbook.md``); the trigger is not trailed; a
  re-placement (cancel + create, one request) is deferred while the request budget has no room
  for quote updates (:meth:`RequestBudget._quote_budget_ok`), a first placement and a cancel
  never are; nothing is placed while a taker order of the strategy is in flight in the market
  (its position is about to change) or while the cancel of the previous protective stop, or of
  the strategy's own stop, is not confirmed (no two at once); after the venue refused one, the same stop (side, size) waits
  ``retry_s`` of event time (after 23000: the back-off);
- never while halted (an operator kill's cancel-all removes them; they come back after
  ``resume``); below the market minimums no stop is placed (re-checked when the position
  changes);
- attribution: the stop's fills are the strategy's (``Fill.strategy``, reason
  ``protective-stop``; as any stop fill, the strategy's standing target becomes its new position,
  so the executor does not buy it back); the order events carry the label
  ``<strategy>/protective-stop`` (:data:`~services.executor.common.PROTECTIVE_SUFFIX`), which no
  strategy takes for its own;
- restarts: the exec stream's ``OrderAccepted`` tells our protective stops' client order indices
  (:meth:`Restore.restore`); at reconciliation the runner hands the venue's active stop orders
  of those indices to :meth:`adopt_protective_stop` (kept, not canceled, no duplicate placed);
  fills of our stop orders that happened while the executor was down are attributed to the
  strategy like every other missed fill (:meth:`FillRecovery.on_missed_trade`: the trade feed's
  snapshot and the REST trade history; the account position comes from the venue's position
  reports).

State: ``_protect_dirty`` (markets to evaluate), ``_protect_refused`` ((strategy, market) ->
(side, lots, event time until which that stop is not tried again)), ``protective_placed`` /
``protective_replaced`` / ``protective_canceled`` / ``protective_adopted`` (counters)."""

from __future__ import annotations

from typing import Any

from shared.events import Side
from shared.markets import MarketInfo

from .common import EPS, PROTECTIVE_REASON, RATE_LIMITED, OrderCommand, _Order, _Out


class ProtectiveStops:
    """Protective stops: a part of :class:`~services.executor.engine.Engine` (a mixin working on
    the engine's state; see the module docstring)."""

    def _init_protective(self) -> None:
        """Set up this part's state (called by the engine's constructor)."""
        self._protect_on = bool(self.cfg.protective_stop.enabled)
        self._protect_dirty: set[str] = set()
        self._protect_refused: dict[tuple[str, str], tuple[Side, int, int]] = {}
        self._protect_runs = 0
        self.protective_placed = 0
        self.protective_replaced = 0
        self.protective_canceled = 0
        self.protective_adopted = 0

    # ------------------------------------------------------------------ triggers of an evaluation

    def _protect_mark(self, market: str | None = None) -> None:
        """Evaluate ``market`` (None = every market) at the next :meth:`_protect`."""
        if not self._protect_on:
            return
        if market is None:
            self._protect_dirty.update(self.markets)
        elif market in self.markets:
            self._protect_dirty.add(market)

    def _protect_send_result(self, cmd: OrderCommand, ok: bool, code: int) -> None:
        """Note the send result of ``cmd`` (before the engine handles it): a refused protective
        stop is not tried again for ``retry_s`` (after 23000: until the back-off ends)."""
        if not self._protect_on:
            return
        self._protect_mark(cmd.market or None)
        if ok or cmd.kind != "create":
            return
        rec = self._find(cmd.client_order_index)
        if rec is None or not rec.protective or not rec.live:
            return
        until = self.now + int(self.cfg.protective_stop.retry_s * 1e9)
        if code == RATE_LIMITED:
            until = max(self.now, self.backoff_until, self.now + int(self.cfg.rate_limit_backoff_s * 1e9))
        self._protect_refused[(self._owner(rec), rec.market)] = (rec.side, rec.size, until)

    # ------------------------------------------------------------------ evaluation

    def _protect(self) -> None:
        """Evaluate the markets marked by :meth:`_protect_mark`: cancel, place or re-place
        protective stops (commands for :meth:`take_commands`; no events: ``OrderAccepted`` /
        ``OrderRejected`` come with the send result). A market whose evaluation has to wait
        (no touch yet, halted, a budget deferral, an IOC in flight, an unconfirmed cancel, a
        refusal's retry time) stays marked and is evaluated again on the next input."""
        if not self._protect_dirty:
            return
        for market in sorted(self._protect_dirty):
            if self._protect_market(market):
                self._protect_dirty.discard(market)

    def _protect_market(self, market: str) -> bool:
        """Evaluate one market; True when nothing waits."""
        if self.state == "halted" or market not in self.bbo:
            return False
        m = self.markets[market]
        bid, ask = self.bbo[market]
        stops = [r for r in self.orders.values() if r.live and r.kind == "stop" and r.market == market]
        owners = {s for (s, mk) in self.strats if mk == market} | {self._owner(r) for r in stops if r.protective}
        self._protect_runs += 1
        out = _Out(key=f"protect:{market}:{self.now}:{self._protect_runs}", ts=self.now)
        settled = True
        for s in sorted(owners):
            if not self._protect_one(s, m, (bid + ask) / 2.0, stops, out):
                settled = False
        return settled

    def _protect_one(self, s: str, m: MarketInfo, mid: float, stops: list[_Order], out: _Out) -> bool:
        """Bring strategy ``s``'s protective stop in market ``m`` in line with its position (see
        the module docstring); True when nothing waits."""
        p = self.cfg.protective_stop
        mine = [r for r in stops if r.protective and self._owner(r) == s]
        live = [r for r in mine if not r.cancel_requested]
        own_stop = any(not r.protective and self._owner(r) == s and not r.cancel_requested for r in stops)
        st = self.strats.get((s, m.symbol))
        pos = st.position if st is not None else 0.0
        lots = self._lots(m, abs(pos))
        if any(r.filled > EPS for r in live):
            return False  # triggered and being filled: wait for its final order update
        if own_stop or lots <= 0 or s in p.exclude:
            for r in live:
                self._cancel(r, out)
                self.protective_canceled += 1
            return True
        for r in live[1:]:  # never more than one (e.g. one adopted and one placed)
            self._cancel(r, out)
            self.protective_canceled += 1
        rec = live[0] if live else None
        if (rec is None and mine) or any(not r.protective and self._owner(r) == s for r in stops):
            return False  # a stop whose cancel is not confirmed may still trigger: never two at once
        if abs(self.in_flight(s, m.symbol)) > EPS:
            return False  # the position is about to change
        side: Side = "sell" if pos > 0 else "buy"
        if rec is not None and rec.side == side:
            left = rec.size - m.size_to_int(rec.filled)
            if left == lots or (left < lots <= left * (1.0 + p.resize_threshold) + 1e-9):
                return True
        refused = self._protect_refused.get((s, m.symbol))
        if refused is not None:
            if refused[:2] == (side, lots) and self.now < refused[2]:
                return False
            del self._protect_refused[(s, m.symbol)]
        if rec is not None and not self._quote_budget_ok():
            return False  # a re-placement waits for budget; the live stop still protects
        assert st is not None
        trigger, worst = self._protect_prices(m, side, st.avg_entry, mid)
        if worst < 1 or trigger < 1 or m.check_amount(m.int_to_size(lots), m.int_to_price(worst)):
            return True  # below the market minimums: no stop until the position changes
        if rec is not None:
            self._cancel(rec, out)
            self.protective_replaced += 1
        else:
            self.protective_placed += 1
        new = self._create(out, m, side, worst, lots, "ioc", self.cfg.quote_expiry, True, "stop",
                           [[s, m.int_to_size(lots)]], reasons={s: PROTECTIVE_REASON}, trigger_price=trigger)
        new.protective = True
        return True

    def _protect_prices(self, m: MarketInfo, side: Side, entry: float, mid: float) -> tuple[int, int]:
        """Trigger and worst price (ticks) of a protective stop on ``side`` (``sell`` protects a
        long) from the strategy's average ``entry`` and the ``mid`` (USD); see the module
        docstring."""
        p = self.cfg.protective_stop
        d = p.distance(m.symbol)
        if side == "sell":
            ref = mid if p.reference == "mark" or not entry > 0 else min(entry, mid)
            px = ref * (1.0 - d)
            trigger = m.price_to_int(px, "down")
            worst = m.price_to_int(px * (1.0 - p.max_slippage_bps / 1e4), "down")
        else:
            ref = mid if p.reference == "mark" or not entry > 0 else max(entry, mid)
            px = ref * (1.0 + d)
            trigger = m.price_to_int(px, "up")
            worst = m.price_to_int(px * (1.0 + p.max_slippage_bps / 1e4), "up")
        return trigger, worst

    # ------------------------------------------------------------------ restarts

    def protective_coi(self, client_order_index: int) -> str | None:
        """The strategy whose protective stop ``client_order_index`` is (known from the exec
        stream's ``OrderAccepted``, :meth:`Restore.restore`, or placed in this run), else None."""
        rec = self._find(client_order_index)
        return self._owner(rec) if rec is not None and rec.protective else None

    def adopt_protective_stop(self, market_id: int, client_order_index: int, order_index: int, side: Side,
                              remaining: float, trigger_price: float) -> bool:
        """Take over a protective stop of a previous run that the venue lists as active (start-up
        reconciliation): it becomes a live order of this engine (kept, so no duplicate is placed;
        re-sized by the next evaluation if the position differs). ``remaining`` in base units,
        ``trigger_price`` in USD. Returns False (nothing changed) when the index is not one of our
        protective stops, the market is not traded, or the order is live already."""
        m = self.by_id.get(market_id)
        rec = self.done_orders.get(client_order_index)
        if m is None or rec is None or not rec.protective or rec.market != m.symbol:
            return False
        lots = m.size_to_int(remaining)
        if lots <= 0 or side not in ("buy", "sell"):
            return False
        self._changed()
        del self.done_orders[client_order_index]
        owner = self._owner(rec)
        rec.side, rec.size, rec.filled, rec.status = side, lots, 0.0, "open"
        rec.alloc = [[owner, m.int_to_size(lots)]]
        rec.order_index = order_index
        rec.cancel_requested = False
        rec.reduce_only = True
        rec.reasons = {owner: PROTECTIVE_REASON}
        rec.trigger = m.price_to_int(trigger_price, "down" if side == "sell" else "up") if trigger_price > 0 else 0
        self.orders[client_order_index] = rec
        self.protective_adopted += 1
        self._protect_mark(m.symbol)
        return True

    def protective_status(self) -> dict[str, Any]:
        """The protective stops for ``/health``: enabled, counters, and the live ones as
        ``[{strategy, market, side, size, trigger, client_order_index}]``."""
        live = []
        for r in sorted((r for r in self.orders.values() if r.live and r.protective), key=lambda r: r.coi):
            m = self.markets[r.market]
            live.append({"strategy": self._owner(r), "market": r.market, "side": r.side,
                         "size": m.int_to_size(r.size), "trigger": m.int_to_price(r.trigger) if r.trigger else None,
                         "client_order_index": r.coi, "cancel_requested": r.cancel_requested})
        return {"enabled": self._protect_on, "placed": self.protective_placed,
                "replaced": self.protective_replaced, "canceled": self.protective_canceled,
                "adopted": self.protective_adopted, "live": live}
