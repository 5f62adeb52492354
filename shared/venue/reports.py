"""Typed venue reports: what the venue tells the executor about our account.

The executor engine (``services/executor``) takes these structs, never the venue's JSON. They are
made at the edge:

- live / venue-sim: the executor's venue client parses Lighter's account-channel and REST JSON
  (``services/executor/venue.py``: ``parse_trade``/``parse_order``/``parse_position``);
- in-process backtests: straight from the matching engine's objects (:func:`trade_from_fill`,
  :func:`order_from_order`, :func:`position_from_position` here).

Both give the same values for the same venue event (a test checks it against
:mod:`shared.venue.lighter_json`, the JSON venue-sim sends): amounts are the float of the venue's
decimal string (``lots / 10**size_decimals`` is the same float), times have Lighter's millisecond
resolution, a trade's USD amount is rounded to 6 decimals and fees are charged in Lighter's fee
ticks (1e-6 of notional), as Lighter reports them.
"""

from __future__ import annotations

import msgspec

from shared.markets import MarketInfo
from shared.venue.matching import Fill, Order, Position


class VenueTrade(msgspec.Struct, frozen=True, kw_only=True):
    """A trade of the account (Lighter's ``account_all_trades`` Trade).

    Attributes:
        trade_id: the venue's trade id (string; with the side it identifies a fill).
        market_id: Lighter market index.
        price: USD per base unit.
        size: base units (> 0).
        usd_amount: notional in USD (Lighter: 6 decimals).
        ts_ns: trade time in ns (Lighter: ms resolution); 0 = unknown (the engine's clock is used).
        bid_account / ask_account: the accounts of the buyer and the seller (-1 unknown).
        bid_client_order_index / ask_client_order_index: their client order indices (0 unknown).
        is_maker_ask: the maker is the seller.
        taker_fee_usd / maker_fee_usd: the fee the taker / the maker paid, USD.
    """

    trade_id: str
    market_id: int
    price: float
    size: float
    usd_amount: float
    ts_ns: int = 0
    bid_account: int = -1
    ask_account: int = -1
    bid_client_order_index: int = 0
    ask_client_order_index: int = 0
    is_maker_ask: bool = False
    taker_fee_usd: float = 0.0
    maker_fee_usd: float = 0.0


class VenueOrder(msgspec.Struct, frozen=True, kw_only=True):
    """An update of one of the account's orders (Lighter's ``account_all_orders`` Order, or an
    order listed by ``accountActiveOrders``/``accountInactiveOrders``).

    Attributes:
        market_id: Lighter market index.
        client_order_index: our id of the order (> 0).
        order_index: the exchange order index (0 unknown).
        status: Lighter's status (``open``, ``in-progress``, ``pending``, ``filled``,
            ``canceled``, ``canceled-<why>``, ``expired...``).
        remaining: unfilled base units.
        ts_ns: time of the update in ns (Lighter: ms resolution); 0 = unknown.
    """

    market_id: int
    client_order_index: int
    order_index: int = 0
    status: str = ""
    remaining: float = 0.0
    ts_ns: int = 0


class VenuePosition(msgspec.Struct, frozen=True, kw_only=True):
    """The account's position in one market (``account_all_positions`` or the REST account).

    Attributes:
        market_id: Lighter market index.
        position: signed base units (+ long).
    """

    market_id: int
    position: float


def ms_floor_ns(ns: int) -> int:
    """``ns`` truncated to Lighter's millisecond resolution (still in ns)."""
    return ns // 1_000_000 * 1_000_000


def fee_ticks(rate: float) -> int:
    """A fee rate (fraction of notional) in Lighter's fee ticks (1e-6 of notional, rounded)."""
    return round(rate * 1e6)


def trade_from_fill(m: MarketInfo, f: Fill, *, taker_fee: float = 0.0, maker_fee: float = 0.0) -> VenueTrade:
    """A matching-engine fill as the account's trade report (fee rates as fractions of
    notional, charged in whole fee ticks); the same values as parsing
    :func:`shared.venue.lighter_json.fill_trade_json`."""
    price, size = m.int_to_price(f.price_ticks), m.int_to_size(f.size_lots)
    usd = round(price * size, 6)
    taker_ask = f.taker_side == "sell"
    taker = (f.taker_client_order_index, f.taker_account)
    maker = (f.maker_client_order_index, f.maker_account)
    ask, bid = (taker, maker) if taker_ask else (maker, taker)
    return VenueTrade(trade_id=str(f.trade_id), market_id=m.market_id, price=price, size=size, usd_amount=usd,
                      ts_ns=ms_floor_ns(f.ts_ns), bid_account=bid[1], ask_account=ask[1],
                      bid_client_order_index=bid[0], ask_client_order_index=ask[0], is_maker_ask=f.is_maker_ask,
                      taker_fee_usd=usd * fee_ticks(taker_fee) / 1e6, maker_fee_usd=usd * fee_ticks(maker_fee) / 1e6)


def order_from_order(m: MarketInfo, o: Order) -> VenueOrder:
    """A matching-engine order as an order update; the same values as parsing
    :func:`shared.venue.lighter_json.order_json`."""
    return VenueOrder(market_id=o.market_id, client_order_index=o.client_order_index, order_index=o.order_index,
                      status=o.status, remaining=m.int_to_size(o.remaining), ts_ns=ms_floor_ns(o.updated_ns))


def position_from_position(m: MarketInfo, p: Position) -> VenuePosition:
    """A matching-engine position as a position report; the same value as parsing
    :func:`shared.venue.lighter_json.position_json`."""
    size = m.int_to_size(abs(p.size))
    return VenuePosition(market_id=p.market_id, position=-size if p.size < 0 else size)
