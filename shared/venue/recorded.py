"""The matching engine's recorded-market-data side (a part of
:class:`shared.venue.matching.MatchingEngine`): a recorded top of book or public trade moves the
touch, re-queues and fills our resting orders; a trade or mark price triggers stop orders.

The rules (queue position behind the displayed size, trading through, the min-rule on a
shrinking level) are the depth assumption in :mod:`shared.venue.matching`'s docstring. Units:
prices in integer ticks, sizes in integer lots, times in venue nanoseconds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from shared.events import Bbo, Trade
from shared.markets import MarketInfo, scale_to_int
from shared.venue.depth import DepthLadder
from shared.venue.model import BookChanged, Fill, MarketState, Order, OrderUpdate, PublicTrade, Update
from shared.venue.timed import triggered


class RecordedMarketData:
    """Applies recorded market data to the engine's books (state owned by ``MatchingEngine``)."""

    # provided by MatchingEngine
    stops: dict[int, dict[int, Order]]
    resting: dict[int, dict[int, Order]]
    ladders: dict[int, DepthLadder]
    public_updates: bool
    _touch_ints: dict[int, list[Any]]

    _place: Callable[[Order, int], list[Update]]
    _fill: Callable[[Order | None, Order | None, int, int, int, list[Update], list[Update]], Fill]
    _after_maker_fill: Callable[[Order, int], OrderUpdate]

    def _check_stops(self, m: MarketInfo, st: MarketState, ts: int) -> list[Update]:
        """Trigger the market's trigger orders whose trigger the last trade or mark price reached
        (:func:`shared.venue.timed.triggered`), oldest first, and execute them."""
        refs = [m.price_to_int(p) for p in (st.last_trade_price, st.mark_price) if p]
        if not refs:
            return []
        lo, hi = min(refs), max(refs)
        out: list[Update] = []
        for o in list(self.stops[m.market_id].values()):  # insertion order is seq order
            if triggered(o, lo, hi):
                del self.stops[m.market_id][o.order_index]
                o.triggered = True
                out.extend(self._place(o, ts))
        return out


    def _apply_bbo(self, m: MarketInfo, st: MarketState, ev: Bbo, ts: int) -> list[Update]:
        # the conversions are pure functions of the floats: the last float -> int of each field
        # is kept per market (the touch price rarely changes between quotes)
        c = self._touch_ints[m.market_id]
        bid_px: int | None = None
        ask_px: int | None = None
        bid_sz = ask_sz = 0
        if ev.bid_sz > 0 and ev.bid_px > 0:
            f = ev.bid_px
            if f == c[0]:
                bid_px = c[1]
            else:
                bid_px = c[1] = scale_to_int(f, c[8], "nearest")  # = m.price_to_int(f)
                c[0] = f
            f = ev.bid_sz
            if f == c[2]:
                bid_sz = c[3]
            else:
                bid_sz = c[3] = scale_to_int(f, c[9], "nearest")  # = m.size_to_int(f, "nearest"), f > 0
                c[2] = f
        if ev.ask_sz > 0 and ev.ask_px > 0:
            f = ev.ask_px
            if f == c[4]:
                ask_px = c[5]
            else:
                ask_px = c[5] = scale_to_int(f, c[8], "nearest")  # = m.price_to_int(f)
                c[4] = f
            f = ev.ask_sz
            if f == c[6]:
                ask_sz = c[7]
            else:
                ask_sz = c[7] = scale_to_int(f, c[9], "nearest")  # = m.size_to_int(f, "nearest"), f > 0
                c[6] = f
        bid_changed = bid_px != st.bid_px or bid_sz != st.bid_sz
        ask_changed = ask_px != st.ask_px or ask_sz != st.ask_sz
        if not bid_changed and not ask_changed:
            return []
        st.bid_px, st.bid_sz, st.ask_px, st.ask_sz = bid_px, bid_sz, ask_px, ask_sz
        if self.ladders:
            self.ladders[m.market_id].on_touch(bid_px, bid_sz, ask_px, ask_sz)
        if bid_changed:
            st.consumed_bid = 0
        if ask_changed:
            st.consumed_ask = 0
        book = self.resting[m.market_id]
        if not book:  # no resting order to fill or re-queue
            return [BookChanged(market_id=m.market_id, ts_ns=ts)] if self.public_updates else []
        fills: list[Update] = []
        positions: list[Update] = []
        orders: list[Update] = []
        for o in sorted(book.values(), key=lambda o: o.seq):
            touch, size, opp, opp_changed = ((ask_px, ask_sz, bid_px, bid_changed) if o.is_ask
                                             else (bid_px, bid_sz, ask_px, ask_changed))
            # the recorded opposite touch moved to or through our price: the market traded through us
            if opp_changed and opp is not None and (opp >= o.price if o.is_ask else opp <= o.price):
                self._fill(None, o, o.price, o.remaining, ts, fills, positions)
                orders.append(self._after_maker_fill(o, ts))
                continue
            if touch is None:
                o.queue_ahead = 0
            elif o.price == touch:
                o.queue_ahead = size if o.queue_ahead is None else min(o.queue_ahead, size)
            elif (o.price < touch) if o.is_ask else (o.price > touch):
                o.queue_ahead = 0
        out = fills + positions + orders
        if self.public_updates:
            out.append(BookChanged(market_id=m.market_id, ts_ns=ts))
        return out

    def _apply_trade(self, m: MarketInfo, st: MarketState, ev: Trade, ts: int) -> list[Update]:
        st.last_trade_price = ev.price
        book = self.resting[m.market_id]
        if not book and not self.public_updates:
            return []  # nothing to fill and nobody to tell
        px = m.price_to_int(ev.price)
        vol = m.size_to_int(ev.size, "nearest")
        out: list[Update] = []
        if self.public_updates:
            out.append(PublicTrade(market_id=m.market_id, trade_id=_trade_id_int(ev.trade_id), price_ticks=px,
                                   size_lots=vol, taker_side=ev.taker_side, ts_ns=ts))
        hits_bids = ev.taker_side == "sell"
        # resting orders on the side the aggressor hit, at or through the print, best price first
        makers = [o for o in book.values()
                  if o.is_ask != hits_bids and (o.price >= px if hits_bids else o.price <= px)]
        if not makers:
            return out
        makers.sort(key=lambda o: (-o.price if hits_bids else o.price, o.seq))
        fills: list[Update] = []
        positions: list[Update] = []
        orders: list[Update] = []
        left = vol
        at_level_used = 0
        for o in makers:
            if left <= 0:
                break
            if o.price != px:  # traded through us: fill at our price
                q = min(o.remaining, left)
                left -= q
            else:
                if o.queue_ahead is None:
                    continue
                ahead = min(o.queue_ahead, left)
                o.queue_ahead -= ahead
                q = min(o.remaining, max(0, left - ahead - at_level_used))
                at_level_used += q
            if q > 0:
                self._fill(None, o, o.price, q, ts, fills, positions)
                orders.append(self._after_maker_fill(o, ts))
        if fills:
            out += fills + positions + orders
            if self.public_updates:
                out.append(BookChanged(market_id=m.market_id, ts_ns=ts))
        return out


def _trade_id_int(trade_id: str) -> int:
    """A recorded trade id as Lighter's integer (hash of the string when it is not numeric)."""
    if trade_id.isdigit():
        return int(trade_id)
    return int.from_bytes(hashlib.blake2b(trade_id.encode(), digest_size=7).digest(), "big")
