"""Matching-engine objects as Lighter's JSON objects (the dicts of the account WS channels).

Used by venue-sim (which sends them over its WebSocket and REST API). In-process backtests do not
use the JSON: they hand the executor typed reports made straight from the matching engine
(:mod:`shared.venue.reports`), which equal what the executor's venue client parses from these
dicts (tested in ``tests/services/executor/test_venue_reports.py``).

Everything here is pure: the caller passes what the dict needs from the venue's state
(``height`` = venue-sim's block height counter, the fee rates, the mark price, ...). Amounts are
Lighter's decimal strings (``MarketInfo.size_str``/``price_str``), timestamps sim time (ms, and
``transaction_time`` in µs).
"""

from __future__ import annotations

import hashlib
from typing import Any

from shared.markets import MarketInfo
from shared.venue.matching import Fill, MarketState, Order, Position

TIF_NAMES = {"gtt": "good-till-time", "ioc": "immediate-or-cancel", "post_only": "post-only"}


def ms(ns: int) -> int:
    """ns -> ms (floor)."""
    return ns // 1_000_000


def us(ns: int) -> int:
    """ns -> µs (floor)."""
    return ns // 1_000


def num(x: float, decimals: int) -> str:
    """A float as a fixed-point string with ``decimals`` digits."""
    return f"{x:.{decimals}f}"


def tx_hash_of(tx_info: str) -> str:
    """A deterministic 80-hex-char tx hash for a tx_info string (Lighter's are 40 bytes)."""
    return hashlib.blake2b(tx_info.encode(), digest_size=40).hexdigest()


def trade_json(m: MarketInfo, trade_id: int, px: int, lots: int, is_maker_ask: bool, ts_ns: int, *,
               height: int = 1, taker_fee: float = 0.0, maker_fee: float = 0.0, ask_id: int = 0,
               bid_id: int = 0, ask_client: int = 0, bid_client: int = 0, ask_account: int = 0,
               bid_account: int = 0, tx_hash: str = "") -> dict[str, Any]:
    """Lighter's Trade object. ``px`` ticks, ``lots`` lots; ``taker_fee``/``maker_fee`` as
    fractions of notional (sent as integers in 1e-6 of notional, as Lighter does)."""
    price, size = m.int_to_price(px), m.int_to_size(lots)
    return {
        "trade_id": trade_id, "trade_id_str": str(trade_id), "tx_hash": tx_hash or f"{trade_id:080x}",
        "type": "trade", "market_id": m.market_id, "size": m.size_str(lots), "price": m.price_str(px),
        "usd_amount": num(price * size, 6), "ask_id": ask_id, "ask_id_str": str(ask_id), "bid_id": bid_id,
        "bid_id_str": str(bid_id), "ask_client_id": ask_client, "ask_client_id_str": str(ask_client),
        "bid_client_id": bid_client, "bid_client_id_str": str(bid_client), "ask_account_id": ask_account,
        "bid_account_id": bid_account, "is_maker_ask": is_maker_ask, "block_height": height,
        "timestamp": ms(ts_ns), "taker_fee": round(taker_fee * 1e6),
        "maker_fee": round(maker_fee * 1e6), "transaction_time": us(ts_ns),
    }


def fill_trade_json(m: MarketInfo, f: Fill, *, height: int = 1, taker_fee: float = 0.0,
                    maker_fee: float = 0.0) -> dict[str, Any]:
    """A matching-engine fill as Lighter's Trade object (fee rates as fractions of notional)."""
    taker_ask = f.taker_side == "sell"
    taker = (f.taker_order_index, f.taker_client_order_index, f.taker_account)
    maker = (f.maker_order_index, f.maker_client_order_index, f.maker_account)
    ask, bid = (taker, maker) if taker_ask else (maker, taker)
    return trade_json(m, f.trade_id, f.price_ticks, f.size_lots, f.is_maker_ask, f.ts_ns, height=height,
                      taker_fee=taker_fee, maker_fee=maker_fee, ask_id=ask[0], ask_client=ask[1],
                      ask_account=ask[2], bid_id=bid[0], bid_client=bid[1], bid_account=bid[2], tx_hash=f.tx_hash)


def order_json(m: MarketInfo, o: Order, *, height: int = 1) -> dict[str, Any]:
    """Lighter's Order object (amount strings with size decimals, sim-time timestamps)."""
    return {
        "order_index": o.order_index, "client_order_index": o.client_order_index,
        "order_id": str(o.order_index), "client_order_id": str(o.client_order_index),
        "market_index": o.market_id, "owner_account_index": o.account,
        "initial_base_amount": m.size_str(o.initial_amount), "price": m.price_str(o.price), "nonce": o.nonce,
        "remaining_base_amount": m.size_str(o.remaining), "is_ask": o.is_ask, "base_size": o.remaining,
        "base_price": o.price, "filled_base_amount": m.size_str(o.filled),
        "filled_quote_amount": num(o.filled_quote, 6), "side": "sell" if o.is_ask else "buy",
        "type": o.order_type, "time_in_force": TIF_NAMES[o.time_in_force], "reduce_only": o.reduce_only,
        "trigger_price": m.price_str(o.trigger_price), "order_expiry": o.order_expiry_ms, "status": o.status,
        "trigger_status": "mark-price" if o.trigger_price and not o.triggered else "na", "trigger_time": 0, "parent_order_index": 0, "parent_order_id": "0",
        "to_trigger_order_id_0": "0", "to_trigger_order_id_1": "0", "to_cancel_order_id_0": "0",
        "integrator_fee_collector_index": "0", "integrator_taker_fee": "0", "integrator_maker_fee": "0",
        "block_height": height, "timestamp": ms(o.updated_ns), "created_at": ms(o.created_ns),
        "updated_at": ms(o.updated_ns), "transaction_time": us(o.updated_ns), "order_flags": 0,
        "order_version": 0, "market_symbol": m.symbol, "market_kind": "perp",
    }


def mark_price(m: MarketInfo, st: MarketState, fallback: float = 0.0) -> float:
    """The mark venue-sim reports for a market: the recorded mark, else the mid, else ``fallback``."""
    if st.mark_price:
        return st.mark_price
    mid_t = st.mid_ticks
    return m.int_to_price(round(mid_t)) if mid_t is not None else fallback


def position_json(m: MarketInfo, p: Position, *, mark: float, open_orders: int = 0) -> dict[str, Any]:
    """Lighter's Position object (size as an absolute string plus ``sign``); ``mark`` USD values
    the position, ``open_orders`` is the account's resting order count in the market."""
    size = m.int_to_size(p.size)
    upnl = size * (mark - p.avg_entry_price) if p.size else 0.0
    return {
        "market_id": p.market_id, "symbol": m.symbol, "initial_margin_fraction": "5.00",
        "open_order_count": open_orders, "pending_order_count": 0, "position_tied_order_count": 0,
        "sign": -1 if p.size < 0 else 1, "position": m.size_str(abs(p.size)),
        "avg_entry_price": num(p.avg_entry_price, m.price_decimals + 4),
        "position_value": num(abs(size) * mark, 6), "unrealized_pnl": num(upnl, 6),
        "realized_pnl": num(p.realized_pnl, 6), "liquidation_price": "0", "total_funding_paid_out": "0.000000",
        "margin_mode": 0, "allocated_margin": "0.000000", "total_discount": "0.000000", "margin_set_flag": 0,
    }
