"""The matching engine's time rules and order changes: GTT order expiry, the scheduled
cancel-all (Lighter's dead-man switch), trigger directions of the stop-loss and take-profit
types, and ModifyOrder (tx 17). A mixin of :class:`shared.venue.matching.MatchingEngine`; pure
and deterministic like it: every time is venue time from the caller (``ts`` ns), never a clock.

Timers are kept in a heap of ``(due ns, seq, kind, key)`` and fire when the engine's time
reaches ``due`` (``MatchingEngine.advance``), before a tx due at the same time. They are checked
lazily: a timer whose order is gone, or whose cancel-all was replaced or aborted, does nothing.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import msgspec

from shared.venue.errors import (
    INVALID_AMOUNT,
    INVALID_BASE_AMOUNT,
    INVALID_ORDER_INDEX,
    INVALID_PRICE,
    INVALID_TRIGGER_PRICE,
    NOT_ACTIVE_ORDER,
    VenueError,
)
from shared.venue.model import (
    MAX_PRICE,
    STOP_TYPES,
    BookChanged,
    CancelAll,
    ModifyOrder,
    Order,
    OrderUpdate,
    Update,
)

if TYPE_CHECKING:
    from shared.markets import MarketInfo
    from shared.venue.model import MarketState, OrderStatus

MAX_BASE_AMOUNT = 2**48 - 1
"""Largest BaseAmount Lighter takes (lots; lighter-go ``MaxOrderBaseAmount``)."""
_EXPIRY, _CANCEL_ALL = 0, 1
MS = 1_000_000


def triggered(o: Order, lo: int, hi: int) -> bool:
    """Whether trigger order ``o`` fires when the reference prices (last trade, mark; ticks)
    span ``lo .. hi``: a stop-loss sell at or below its trigger, a stop-loss buy at or above;
    a take-profit sell at or above, a take-profit buy at or below (the side that closes a long
    sells: its stop is below the market, its take-profit above; Lighter docs, order types)."""
    stop = o.order_type.startswith("stop-loss")
    if o.is_ask == stop:  # stop-loss sell or take-profit buy: the price fell to the trigger
        return lo <= o.trigger_price
    return hi >= o.trigger_price


class TimedOrders:
    """Order expiry, scheduled cancel-all and modify for the matching engine (state set by
    :meth:`_init_timed` from ``MatchingEngine.__init__``)."""

    # provided by MatchingEngine
    markets: dict[int, MarketInfo]
    state: dict[int, MarketState]
    resting: dict[int, dict[int, Order]]
    stops: dict[int, dict[int, Order]]
    orders: dict[int, Order]
    _seq: int

    _cancel: Callable[[Order, OrderStatus, int], list[Update]]
    _place: Callable[[Order, int], list[Update]]
    market_of: Callable[[int], MarketInfo]

    def _init_timed(self, expire_orders: bool) -> None:
        self.expire_orders = expire_orders
        self._timers: list[tuple[int, int, int, int]] = []
        self.cancel_all_at: dict[int, int] = {}
        """account -> the time (venue ms) of its armed scheduled cancel-all (Lighter's
        ``cancel_all_time``); absent when none is armed."""

    def next_timer_ns(self) -> int | None:
        """Venue time (ns) of the earliest timer (order expiry, scheduled cancel-all), or None."""
        return self._timers[0][0] if self._timers else None

    # ------------------------------------------------------------------ timers

    def _arm_expiry(self, o: Order) -> None:
        """Arm ``o``'s expiry timer (only with ``expire_orders`` and an OrderExpiry > 0)."""
        if self.expire_orders and o.order_expiry_ms > 0:
            self._seq += 1
            heapq.heappush(self._timers, (o.order_expiry_ms * MS, self._seq, _EXPIRY, o.order_index))

    def _fire_timer(self) -> list[Update]:
        """Pop the earliest timer and apply it at its own time: an order past its OrderExpiry
        that is still live ends ``canceled-expired``; an armed scheduled cancel-all cancels every
        order of its account (status ``canceled``) and is disarmed."""
        due, _, kind, key = heapq.heappop(self._timers)
        if kind == _EXPIRY:
            o = self.orders.get(key)
            if o is None or o.order_expiry_ms * MS != due:
                return []
            if o.order_index not in self.resting[o.market_id] and o.order_index not in self.stops[o.market_id]:
                return []
            return self._cancel(o, "canceled-expired", due)
        if self.cancel_all_at.get(key, 0) * MS != due:
            return []  # replaced or aborted
        del self.cancel_all_at[key]
        return self._cancel_account(key, None, due)

    def _cancel_account(self, account: int, market_id: int | None, ts: int) -> list[Update]:
        """Cancel every live order (resting or waiting for its trigger) of ``account``, in
        ``market_id`` or all markets, oldest first."""
        out: list[Update] = []
        for mid, book in self.resting.items():
            if market_id is not None and mid != market_id:
                continue
            for o in sorted([*book.values(), *self.stops[mid].values()], key=lambda o: o.seq):
                if o.account == account:
                    out.extend(self._cancel(o, "canceled", ts))
        return out

    def _exec_scheduled_cancel_all(self, tx: CancelAll, ts: int) -> list[Update]:
        """Arm (``scheduled``: at ``tx.time_ms``, replacing an armed one) or disarm (``abort``)
        the account's scheduled cancel-all. No order changes now."""
        if tx.mode == "abort":
            self.cancel_all_at.pop(tx.account, None)
            return []
        self.cancel_all_at[tx.account] = tx.time_ms
        self._seq += 1
        heapq.heappush(self._timers, (tx.time_ms * MS, self._seq, _CANCEL_ALL, tx.account))
        return []

    # ------------------------------------------------------------------ modify

    def _live_order(self, account: int, market_id: int, index: int) -> Order | None:
        """The account's live order in ``market_id`` whose order index or (non-zero) client
        order index is ``index``, oldest first; None if there is none."""
        book: Iterable[Order] = [*self.resting[market_id].values(), *self.stops[market_id].values()]
        return next((o for o in sorted(book, key=lambda o: o.seq) if o.account == account
                     and (index == o.order_index or (o.client_order_index and index == o.client_order_index))), None)

    def _validate_modify(self, tx: ModifyOrder) -> None:
        """Check a modify at submission.

        Raises:
            VenueError: 21602 unknown market, 21700 index 0 or negative, 21701 BaseAmount
                outside 1 .. 2^48-1, 21702 price outside 1 .. 2^32-1, 21729 trigger price
                outside 0 .. 2^32-1 (or set on a non-trigger order), 21706 below the market's
                minimums, 21715 no live order of the account with that index.
        """
        m = self.market_of(tx.market_id)
        if tx.index <= 0:
            raise VenueError(INVALID_ORDER_INDEX, f"index {tx.index}")
        if not 1 <= tx.base_amount <= MAX_BASE_AMOUNT:
            raise VenueError(INVALID_BASE_AMOUNT, f"base amount {tx.base_amount}")
        if not 1 <= tx.price <= MAX_PRICE:
            raise VenueError(INVALID_PRICE, f"price {tx.price}")
        if not 0 <= tx.trigger_price <= MAX_PRICE:
            raise VenueError(INVALID_TRIGGER_PRICE, f"trigger price {tx.trigger_price}")
        o = self._live_order(tx.account, tx.market_id, tx.index)
        if o is None:
            raise VenueError(NOT_ACTIVE_ORDER, f"no active order {tx.index} of account {tx.account} in market "
                             f"{tx.market_id}")
        if tx.trigger_price and o.order_type not in STOP_TYPES:
            raise VenueError(INVALID_TRIGGER_PRICE, f"trigger price on a {o.order_type} order")
        why = m.check_amount(m.int_to_size(tx.base_amount), m.int_to_price(tx.price))
        if why:
            raise VenueError(INVALID_AMOUNT, why)

    def _exec_modify(self, tx: ModifyOrder, ts: int) -> list[Update]:
        """Apply a modify at execution: the order's remaining size becomes ``base_amount``, its
        price ``price`` and (trigger types, when non-zero) its trigger ``trigger_price``. A
        waiting trigger order just changes. A resting order keeps its queue place when only its
        size shrinks; otherwise it leaves the book and is placed again as new (it may take
        liquidity at its new price, and queues last). A no-op if the order is no longer live."""
        o = self._live_order(tx.account, tx.market_id, tx.index)
        if o is None:
            return []
        o.updated_ns = ts
        o.initial_amount = o.filled + tx.base_amount
        if o.order_index in self.stops[o.market_id]:
            o.remaining, o.price = tx.base_amount, tx.price
            if tx.trigger_price:
                o.trigger_price = tx.trigger_price
            return [OrderUpdate(order=_copy(o), ts_ns=ts)]
        if tx.price == o.price and tx.base_amount <= o.remaining:
            o.remaining = tx.base_amount
            return [OrderUpdate(order=_copy(o), ts_ns=ts), BookChanged(market_id=o.market_id, ts_ns=ts)]
        del self.resting[o.market_id][o.order_index]
        o.remaining, o.price = tx.base_amount, tx.price
        self._seq += 1
        o.seq = self._seq
        return self._place(o, ts)


def _copy(o: Order) -> Order:
    """A snapshot of ``o`` for an update."""
    return msgspec.structs.replace(o)
