"""venue-sim: the matching engine's updates -> Lighter WebSocket messages (order book diffs, market
stats, public trades, account orders/trades/positions, user stats), and the Lighter JSON
objects they carry.
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any

from services.venue_sim.base import ServerBase, _ms, _num, _us
from services.venue_sim.metrics import FILLS, ORDER_STATUS, SELF_TRADES
from shared.markets import MarketInfo
from shared.venue import lighter_json as LJ
from shared.venue.matching import (
    BOOK_ACCOUNT,
    BookChanged,
    Fill,
    FillUpdate,
    Order,
    OrderUpdate,
    Position,
    PositionUpdate,
    PublicTrade,
    StatsChanged,
    Update,
)


class FeedMessages(ServerBase):
    """Engine updates to WS messages (:meth:`publish`); the JSON objects they carry."""

    def publish(self, updates: list[Update]) -> None:
        """Turn engine updates into WS messages (called by the replay with every batch)."""
        if not updates:
            return
        height0 = self.height
        books: dict[int, int] = {}
        for u in updates:
            if isinstance(u, BookChanged):
                books[u.market_id] = u.ts_ns
            elif isinstance(u, FillUpdate):
                self._on_fill(u.fill)
            elif isinstance(u, PositionUpdate):
                self._on_position(u.position, u.ts_ns)
            elif isinstance(u, OrderUpdate):
                self._on_order(u.order, u.ts_ns)
            elif isinstance(u, PublicTrade):
                self._on_public_trade(u)
            elif isinstance(u, StatsChanged):
                books.setdefault(u.market_id, u.ts_ns)
        for mid, ts in books.items():
            self._publish_book(mid, ts)
            self._maybe_stats(mid, ts)
        if self.height != height0 and self.subs.get("height"):
            self._send("height", {"channel": "height", "height": self.height, "timestamp": _ms(self.clock()),
                                  "type": "update/height"})

    def _send(self, channel: str, msg: dict[str, Any]) -> None:
        clients = self.subs.get(channel)
        if not clients:
            return
        data = json.dumps(msg, separators=(",", ":"))
        if self.faults.ws_active:  # faults of the WebSocket sender (services.venue_sim.fault_hooks)
            self.send_faulty(channel, msg, data, clients)  # type: ignore[attr-defined]
            return
        for c in clients:
            c.send(data)

    # ---------------------------------------------------------------- order book

    def public_levels(self, mid: int) -> tuple[dict[int, int], dict[int, int]]:
        """The book the ``order_book`` channel shows (see ``public_book``): ``(bids, asks)`` as
        ``{price_ticks: size_lots}``."""
        if self.public_book == "venue":
            return self.engine.public_book(mid)
        st = self.engine.state[mid]
        bids = {st.bid_px: st.bid_sz} if st.bid_px is not None and st.bid_sz > 0 else {}
        asks = {st.ask_px: st.ask_sz} if st.ask_px is not None and st.ask_sz > 0 else {}
        return bids, asks

    def queued_messages(self) -> int:
        """WebSocket messages queued and not yet written, over all clients, plus those a fault
        holds back (:mod:`services.venue_sim.faults`)."""
        return sum(c.queue.qsize() for c in self.clients if not c.closed) + self.faults.held

    def _publish_book(self, mid: int, ts_ns: int) -> None:
        bids, asks = self.public_levels(mid)
        old_bids, old_asks = self.book_levels[mid]
        d_bids = _diff(old_bids, bids)
        d_asks = _diff(old_asks, asks)
        if not d_bids and not d_asks:
            return
        self.book_levels[mid] = (bids, asks)
        begin = self.book_nonce[mid]
        self.book_nonce[mid] = begin + 1
        self.book_ts[mid] = ts_ns
        if self.audit is not None:
            self.audit.book(mid, begin + 1, bids, asks)
        m = self.markets[mid]
        ch = f"order_book:{mid}"
        if not self.subs.get(ch):
            return
        nonce = self.book_nonce[mid]
        ob = {"code": 0, "asks": _levels(m, d_asks, False), "bids": _levels(m, d_bids, True), "offset": nonce,
              "nonce": nonce, "begin_nonce": begin, "last_updated_at": _us(ts_ns)}
        self._send(ch, {"channel": ch, "offset": nonce, "order_book": ob, "last_updated_at": _us(ts_ns),
                        "timestamp": _ms(ts_ns), "type": "update/order_book"})

    def book_snapshot(self, mid: int) -> dict[str, Any]:
        """The ``subscribed/order_book`` message of market ``mid`` (the last published book)."""
        m = self.markets[mid]
        bids, asks = self.book_levels[mid]
        nonce, ts = self.book_nonce[mid], self.book_ts[mid] or self.clock()
        ob = {"code": 0, "asks": _levels(m, asks, False), "bids": _levels(m, bids, True), "offset": nonce,
              "nonce": nonce, "begin_nonce": 0, "last_updated_at": _us(ts)}
        return {"channel": f"order_book:{mid}", "offset": nonce, "order_book": ob, "last_updated_at": _us(ts),
                "timestamp": _ms(self.clock()), "type": "subscribed/order_book"}

    # ---------------------------------------------------------------- market stats

    def stats_json(self, mid: int) -> dict[str, Any]:
        """Lighter's ``market_stats`` object for market ``mid`` (mark/index = recorded, else mid)."""
        m = self.markets[mid]
        st = self.engine.state[mid]
        mid_t = st.mid_ticks
        mid_px = m.int_to_price(round(mid_t)) if mid_t is not None else st.last_trade_price
        mark = st.mark_price or mid_px
        index = st.index_price or mid_px
        pd = m.price_decimals
        return {"symbol": m.symbol, "market_id": mid, "index_price": _num(index, pd), "mark_price": _num(mark, pd),
                "mid_price": _num(mid_px, pd), "open_interest": _num(st.open_interest, m.size_decimals),
                "last_trade_price": _num(st.last_trade_price or mid_px, pd),
                "current_funding_rate": _num(st.funding_rate, 6), "funding_rate": _num(st.funding_rate, 6),
                "funding_timestamp": 0, "daily_base_token_volume": 0.0, "daily_quote_token_volume": 0.0,
                "daily_price_low": 0.0, "daily_price_high": 0.0, "daily_price_change": 0.0}

    def _maybe_stats(self, mid: int, ts_ns: int) -> None:
        last = self.stats_sent_ns.get(mid)
        if last is not None and ts_ns - last < self.stats_interval_ns:
            return
        if self.engine.state[mid].mid_ticks is None and not self.engine.state[mid].mark_price:
            return
        self.stats_sent_ns[mid] = ts_ns
        stats = self.stats_json(mid)
        ch = f"market_stats:{mid}"
        self._send(ch, {"channel": ch, "market_stats": stats, "timestamp": _ms(ts_ns), "type": "update/market_stats"})
        self._send("market_stats:all", {"channel": "market_stats:all", "market_stats": {str(mid): stats},
                                        "timestamp": _ms(ts_ns), "type": "update/market_stats"})

    # ---------------------------------------------------------------- trades

    def _trade_json(self, m: MarketInfo, trade_id: int, px: int, lots: int, is_maker_ask: bool, ts_ns: int,
                    **kw: Any) -> dict[str, Any]:
        return LJ.trade_json(m, trade_id, px, lots, is_maker_ask, ts_ns, height=self.height,
                             taker_fee=self.engine.taker_fee, maker_fee=self.engine.maker_fee, **kw)

    def fill_trade_json(self, f: Fill) -> dict[str, Any]:
        """A sim fill as Lighter's Trade object."""
        return LJ.fill_trade_json(self.markets[f.market_id], f, height=self.height,
                                  taker_fee=self.engine.taker_fee, maker_fee=self.engine.maker_fee)

    def _public_trade_msg(self, mid: int, trade: dict[str, Any], ts_ns: int) -> None:
        self.trades[mid].append(trade)
        self.trade_nonce += 1
        ch = f"trade:{mid}"
        self._send(ch, {"channel": ch, "liquidation_trades": [], "nonce": self.trade_nonce, "trades": [trade],
                        "timestamp": _ms(ts_ns), "type": "update/trade"})

    def _on_public_trade(self, u: PublicTrade) -> None:
        m = self.markets[u.market_id]
        t = self._trade_json(m, u.trade_id, u.price_ticks, u.size_lots, u.taker_side == "buy", u.ts_ns)
        self._public_trade_msg(u.market_id, t, u.ts_ns)

    def _on_fill(self, f: Fill) -> None:
        FILLS.labels(f.market, "taker" if f.taker_account != BOOK_ACCOUNT else "maker").inc()
        if self._fills_fh is not None:
            self._fills_fh.write(self._enc.encode(f) + b"\n")
            self._fills_fh.flush()
        self.height += 1
        t = self.fill_trade_json(f)
        if self.public_book == "venue":
            # as Lighter: our trades are public too. ``recorded`` (lockstep/parity): the public
            # channels carry the recording only, as the backtest's strategies see it
            self._public_trade_msg(f.market_id, t, f.ts_ns)
        for acct in {f.taker_account, f.maker_account} - {BOOK_ACCOUNT}:
            self.account_fills.setdefault(acct, deque(maxlen=500)).append(f)
            trades = {str(f.market_id): [t]}
            ch = f"account_all_trades:{acct}"
            self._send(ch, {"channel": ch, "trades": trades, "total_volume": 0, "monthly_volume": 0,
                            "daily_volume": 0, "timestamp": _ms(f.ts_ns), "type": "update/account_all_trades"})
            self._send_account_all(acct, f.ts_ns, trades=trades)

    # ---------------------------------------------------------------- orders and positions

    def order_json(self, o: Order) -> dict[str, Any]:
        """Lighter's Order object (amount strings with size decimals, venue-time timestamps)."""
        return LJ.order_json(self.markets[o.market_id], o, height=self.height)

    def position_json(self, p: Position) -> dict[str, Any]:
        """Lighter's Position object (size as an absolute string plus ``sign``)."""
        m = self.markets[p.market_id]
        mark = LJ.mark_price(m, self.engine.state[p.market_id], p.avg_entry_price)
        n_open = sum(1 for o in self.engine.resting[p.market_id].values() if o.account == p.account)
        return LJ.position_json(m, p, mark=mark, open_orders=n_open)

    def _on_order(self, o: Order, ts_ns: int) -> None:
        if o.status != "open":
            ORDER_STATUS.labels(o.status).inc()
            if o.status == "canceled-self-trade":
                SELF_TRADES.inc()
        self.height += 1
        oj = self.order_json(o)
        orders = {str(o.market_id): [oj]}
        ch = f"account_all_orders:{o.account}"
        self._send(ch, {"channel": ch, "orders": orders, "timestamp": _ms(ts_ns), "type": "update/account_all_orders"})
        ch = f"account_orders:{o.market_id}:{o.account}"
        self._send(ch, {"account": o.account, "channel": ch, "nonce": self.height, "orders": orders,
                        "timestamp": _ms(ts_ns), "type": "update/account_orders"})
        self._send_account_all(o.account, ts_ns, orders=orders)

    def _on_position(self, p: Position, ts_ns: int) -> None:
        positions = {str(p.market_id): self.position_json(p)}
        ch = f"account_all_positions:{p.account}"
        self._send(ch, {"channel": ch, "positions": positions, "shares": [], "timestamp": _ms(ts_ns),
                        "type": "update/account_all_positions"})
        self._send_account_all(p.account, ts_ns, positions=positions)
        ch = f"user_stats:{p.account}"
        if self.subs.get(ch):
            self._send(ch, {"channel": ch, "stats": self.user_stats(p.account), "timestamp": _ms(ts_ns),
                            "type": "update/user_stats"})

    def _send_account_all(self, acct: int, ts_ns: int, *, orders: dict | None = None,
                          positions: dict | None = None, trades: dict | None = None) -> None:
        ch = f"account_all:{acct}"
        if not self.subs.get(ch):
            return
        self._send(ch, {"account": acct, "channel": ch, "orders": orders or {}, "positions": positions or {},
                        "trades": trades or {}, "funding_histories": {}, "shares": [], "timestamp": _ms(ts_ns),
                        "type": "update/account_all"})

    def user_stats(self, acct: int) -> dict[str, Any]:
        """``user_stats`` of an account: collateral and portfolio value in USD strings."""
        a = self.engine.account(acct)
        upnl = sum(float(self.position_json(p)["unrealized_pnl"]) for p in a.positions.values())
        value = a.collateral + upnl
        s = {"collateral": _num(a.collateral, 6), "portfolio_value": _num(value, 6), "leverage": "0.00",
             "available_balance": _num(value, 6), "margin_usage": "0.00", "buying_power": _num(value, 6)}
        return {"account_trading_mode": 0, **s, "cross_stats": dict(s), "total_stats": dict(s)}


def _diff(old: dict[int, int], new: dict[int, int]) -> dict[int, int]:
    out = {px: sz for px, sz in new.items() if old.get(px) != sz}
    out.update({px: 0 for px in old if px not in new})
    return out


def _levels(m: MarketInfo, levels: dict[int, int], desc: bool) -> list[dict[str, str]]:
    return [{"price": m.price_str(px), "size": m.size_str(sz)} for px, sz in sorted(levels.items(), reverse=desc)]
