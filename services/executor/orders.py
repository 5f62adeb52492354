"""The executor's order registry: our orders by client order index (live and recently finished),
the client order index counter and the queue of order commands for the runner; order creation,
cancels, local refusals and the queries over our orders (in flight, resting, crossing, stale).

State (set up by :meth:`OrderRegistry._init_orders`): ``orders`` (live, by client order index),
``done_orders`` (finished, bounded by :data:`DONE_ORDERS_KEPT`), ``next_coi``, ``_commands``."""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, Literal

from shared.events import Event, OrderRejected, Side
from shared.markets import MarketInfo

from .common import DONE_ORDERS_KEPT, MAX_CLIENT_ORDER_INDEX, OrderCommand, StaleOrder, Tif, _Order, _Out


class OrderRegistry:
    """The executor's order registry: a part of :class:`~services.executor.engine.Engine` (a mixin
    working on the engine's state; see the module docstring)."""

    def _init_orders(self, next_client_order_index: int) -> None:
        """Set up this part's state (called by the engine's constructor)."""
        self.next_coi = next_client_order_index
        self.orders: dict[int, _Order] = {}  # live orders only: scanned on every rebalance
        # finished orders, kept (bounded) so that late venue reports still find their order
        self.done_orders: OrderedDict[int, _Order] = OrderedDict()
        self._commands: list[OrderCommand] = []

    def _find(self, coi: int) -> _Order | None:
        """The order with client order index ``coi``, live or recently finished."""
        return self.orders.get(coi) or self.done_orders.get(coi)

    def _retire(self, rec: _Order) -> None:
        """Mark ``rec`` finished and move it out of the live orders."""
        rec.status = "done"
        self.orders.pop(rec.coi, None)
        self._remember_done(rec)

    def _remember_done(self, rec: _Order) -> None:
        self.done_orders[rec.coi] = rec
        while len(self.done_orders) > DONE_ORDERS_KEPT:
            self.done_orders.popitem(last=False)

    def _create(self, out: _Out, m: MarketInfo, side: Side, price: int, lots: int, tif: Tif, expiry: int,
                reduce_only: bool, kind: Literal["taker", "quote", "stop"], alloc: list[list[Any]],
                send_lots: int | None = None, reasons: dict[str, str] | None = None,
                trigger_price: int = 0) -> _Order:
        """Record an order of ``lots`` and queue its create command. ``send_lots`` (default
        ``lots``) is the size put on the wire when it differs: a reduce-only dust close is sent
        at the market minimum and clamped by the venue to the ``lots`` we track. ``reasons``:
        per allocated strategy, the reason of the target the order executes (``Fill.reason``).
        A ``stop`` order is sent as Lighter's ``stop-loss`` with ``trigger_price`` (ticks)."""
        coi = self.next_coi
        self.next_coi = coi + 1 if coi < MAX_CLIENT_ORDER_INDEX else 1
        cause_id = out.cause.id if out.cause else (out.causation_id or out.key)
        ts = out.cause.ts_event if out.cause else out.ts
        rec = _Order(coi=coi, market=m.symbol, side=side, price=price, size=lots, tif=tif, kind=kind,
                     alloc=alloc, cause_id=cause_id, ts_event=ts, reduce_only=reduce_only, reasons=reasons,
                     trigger=trigger_price)
        self.orders[coi] = rec
        self._commands.append(OrderCommand(kind="create", market=m.symbol, market_id=m.market_id,
                                           client_order_index=coi, side=side, price=price,
                                           size=lots if send_lots is None else send_lots, tif=tif,
                                           order_expiry=expiry, reduce_only=reduce_only, cause_id=cause_id,
                                           ts_event=ts, order_type="stop-loss" if kind == "stop" else "limit",
                                           trigger_price=trigger_price))
        return rec

    def _cancel(self, rec: _Order, out: _Out | Event) -> None:
        rec.cancel_requested = True
        rec.cancel_ts = self.now
        if isinstance(out, _Out):
            cause_id = out.cause.id if out.cause else (out.causation_id or out.key)
            ts = out.cause.ts_event if out.cause else out.ts
        else:
            cause_id, ts = out.id, out.ts_event
        m = self.markets[rec.market]
        self._commands.append(OrderCommand(kind="cancel", market=rec.market, market_id=m.market_id,
                                           client_order_index=rec.coi, order_index=rec.order_index or rec.coi,
                                           side=rec.side, cause_id=cause_id, ts_event=ts))

    def _cancel_quotes(self, strategy: str | None, market: str | None, cause: Event) -> None:
        for rec in self.orders.values():
            if (rec.live and rec.kind == "quote" and not rec.cancel_requested
                    and (market is None or rec.market == market)
                    and (strategy is None or self._owner(rec) == strategy)):
                self._cancel(rec, cause)

    def _reject(self, out: _Out, strategy: str, m: MarketInfo, lots: int, price: float, reason: str,
                code: int = 0) -> None:
        """Emit a local refusal of ``lots`` (signed integer lots: + buy, - sell) at ``price`` USD:
        ``OrderRejected`` with client order index 0 and ``code`` 0 (refused locally: other
        reasons) or 1 (unreachable: the strategy's remainder is below the market minimum; see
        :class:`~shared.events.OrderRejected`)."""
        out.add(OrderRejected, strategy=strategy, market=m.symbol, client_order_index=0,
                side="buy" if lots > 0 else "sell", price=price, size=m.int_to_size(abs(lots)), code=code,
                reason=reason)

    def _owner(self, rec: _Order) -> str:
        return rec.alloc[0][0] if rec.alloc else self.cfg.unattributed_strategy

    def _live_resting(self, market: str, strategy: str | None = None) -> list[_Order]:
        return [r for r in self.orders.values()
                if r.live and r.kind == "quote" and r.market == market and not r.cancel_requested
                and (strategy is None or self._owner(r) == strategy)]

    def resting_orders(self, strategy: str, market: str) -> list[tuple[Side, float, float]]:
        """The live resting orders of ``strategy`` in ``market`` (not cancel-requested) as
        ``(side, price USD, size base units)``, in placement order; size is the placed size."""
        m = self.markets.get(market)
        if m is None:
            return []
        return [(r.side, m.int_to_price(r.price), m.int_to_size(r.size))
                for r in self._live_resting(market, strategy)]

    @staticmethod
    def _crosses(side: Side, price: int, other_price: int) -> bool:
        """Whether an order on ``side`` at ``price`` ticks trades with an opposite order at
        ``other_price`` ticks (a buy at or above the sell, a sell at or below the buy)."""
        return other_price <= price if side == "buy" else other_price >= price

    def _crossing(self, market: str, side: Side, price: int, kind: str | None) -> list[_Order]:
        """Our live orders (of ``kind``; None = any but untriggered stops, which are off the
        book) on the other side of ``market`` that an order on ``side`` at ``price`` ticks would
        trade with, in placement order."""
        return [r for r in self.orders.values()
                if r.live and r.market == market and r.side != side
                and (r.kind != "stop" if kind is None else r.kind == kind)
                and self._crosses(side, price, r.price)]

    def in_flight(self, strategy: str, market: str) -> float:
        """Signed base units of live IOC orders allocated to ``strategy`` in ``market`` and not
        filled yet."""
        total = 0.0
        for rec in self.orders.values():
            if rec.live and rec.kind == "taker" and rec.market == market:
                total += rec.sign * sum(q for s, q in rec.alloc if s == strategy)
        return total

    def _account_in_flight(self, market: str) -> float:
        """Signed unfilled base units of our live IOC orders in ``market``."""
        total = 0.0
        m = None
        for r in self.orders.values():
            if r.kind == "taker" and r.market == market and r.status != "done":
                if m is None:
                    m = self.markets[market]
                total += r.sign * (m.int_to_size(r.size) - r.filled)
        return total

    def _resting_exposure(self, market: str, side: Side) -> float:
        """Unfilled base units of all our live resting orders on ``side`` in ``market``, also
        those whose cancel is not confirmed yet (they can still fill)."""
        m = self.markets[market]
        return sum(m.int_to_size(r.size) - r.filled for r in self.orders.values()
                   if r.live and r.kind == "quote" and r.market == market and r.side == side)

    def _inventory(self, market: str) -> float:
        """Account position plus our live IOC orders' unfilled size (signed base units)."""
        return self.account_pos.get(market, 0.0) + self._account_in_flight(market)

    def _lots(self, m: MarketInfo, x: float) -> int:
        """Signed base units -> signed integer lots, rounded toward zero."""
        n = math.floor(abs(x) * 10**m.size_decimals + 1e-6)
        return n if x >= 0 else -n

    @staticmethod
    def _min_lots(m: MarketInfo, price: int) -> int:
        """Smallest order in lots that meets both ``min_base_amount`` and ``min_quote_amount`` at
        ``price`` (integer ticks)."""
        by_base = m.size_to_int(m.min_base_amount, "up")
        by_quote = math.ceil(m.min_quote_amount / m.int_to_price(price) * 10**m.size_decimals - 1e-9)
        return max(by_base, by_quote, 1)

    def cancel_all_command(self, ts_ns: int | None = None, cause_id: str = "") -> OrderCommand:
        """A cancel-all (tx 16, immediate) of every resting order of the account; marks our
        live orders as cancel-requested."""
        self._changed()
        for rec in self.orders.values():
            if rec.live:
                rec.cancel_requested = True
                rec.cancel_ts = self.now
        return OrderCommand(kind="cancel_all", cause_id=cause_id, ts_event=self.now if ts_ns is None else ts_ns)

    def stale_orders(self) -> list[StaleOrder]:
        """Our live orders whose final venue update is overdue by event time: IOC (taker)
        orders sent at least ``cfg.order_stale_s`` ago, and orders whose cancel was requested at
        least that long ago (a lost confirmation holds the self-trade guard's IOC). Sorted by
        client order index. Read-only: the runner asks the venue about them and reports back
        with :meth:`on_venue_order` (the venue knows the order) or :meth:`on_order_unknown`."""
        limit = int(self.cfg.order_stale_s * 1e9)
        out: list[StaleOrder] = []
        for coi in sorted(self.orders):
            rec = self.orders[coi]
            if not rec.live:
                continue
            if rec.cancel_requested and self.now - rec.cancel_ts >= limit:
                why: Literal["ioc", "cancel"] = "cancel"
                age = self.now - rec.cancel_ts
            elif rec.kind == "taker" and self.now - rec.ts_event >= limit:
                why, age = "ioc", self.now - rec.ts_event
            else:
                continue
            out.append(StaleOrder(coi, rec.order_index, rec.market, self.markets[rec.market].market_id, why, age))
        return out
