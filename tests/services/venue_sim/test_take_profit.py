"""Take-profit orders (types 4, 5) and the trigger directions in the venue model: a take-profit
sell fires when the last trade or mark reaches its trigger from below (at or above), a
take-profit buy from above (at or below) -- the mirror of the stop-loss; then ``take-profit``
executes as a market order no worse than its price and ``take-profit-limit`` rests at its price.
Trigger orders expire (``expire_orders``) and can be modified while they wait."""

from __future__ import annotations

import pytest
from copytrade_kit import BTC

from shared.events import Bbo, MarketStats, Trade
from shared.venue.matching import CreateOrder, FillUpdate, MatchingEngine, ModifyOrder, OrderUpdate

MS = 1_000_000
T0 = 1_757_900_000_000_000_000
A = 1001


def bbo(ts, bid, ask, sz=0.5):
    return Bbo(id=f"b{ts}", ts_event=ts, market="BTC", bid_px=bid, bid_sz=sz, ask_px=ask, ask_sz=sz)


def trade(ts, px, side="buy"):
    return Trade(id=f"t{ts}", ts_event=ts, market="BTC", trade_id=str(ts % 10**9), price=px, size=0.01, taker_side=side)


def mark(ts, px):
    return MarketStats(id=f"s{ts}", ts_event=ts, market="BTC", mark_price=px, index_price=px, funding_rate=0.0,
                       open_interest=0.0)


def tp(coi, size, trigger, px, side, otype="take-profit", tif="ioc", expiry=0):
    return CreateOrder(account=A, market_id=BTC.market_id, client_order_index=coi, base_amount=BTC.size_to_int(size),
                       price=BTC.price_to_int(px), is_ask=side == "sell", order_type=otype, time_in_force=tif,
                       reduce_only=True, trigger_price=BTC.price_to_int(trigger), order_expiry_ms=expiry)


def orders_of(updates, coi):
    return [u.order for u in updates if isinstance(u, OrderUpdate) and u.order.client_order_index == coi]


def fills_of(updates):
    return [u.fill for u in updates if isinstance(u, FillUpdate)]


def engine_with(position: float, **kw) -> MatchingEngine:
    """An engine with a BTC position of ``position`` (bought or sold at about 100,000)."""
    e = MatchingEngine([BTC], **kw)
    e.on_market_data(bbo(T0, 100000.0, 100000.1))
    side = "buy" if position > 0 else "sell"
    px = 100100.0 if position > 0 else 99900.0
    e.submit(CreateOrder(account=A, market_id=BTC.market_id, client_order_index=1,
                         base_amount=BTC.size_to_int(abs(position)), price=BTC.price_to_int(px), is_ask=side == "sell",
                         time_in_force="ioc"), T0)
    e.advance(T0 + 300 * MS)
    assert e.position(A, BTC.market_id).size == round(position * 10**BTC.size_decimals)
    return e


def test_take_profit_sell_fires_at_or_above_its_trigger_and_sells_at_market():
    e = engine_with(0.02)
    e.submit(tp(2, 0.02, 101000.0, 100500.0, "sell"), T0 + 400 * MS)
    (o,) = orders_of(e.advance(T0 + 700 * MS), 2)
    assert (o.status, o.order_type) == ("open", "take-profit") and o.order_index in e.stops[BTC.market_id]
    assert fills_of(e.on_market_data(trade(T0 + 800 * MS, 100900.0))) == []  # below: waits
    assert fills_of(e.on_market_data(mark(T0 + 850 * MS, 99000.0))) == []  # a falling mark does not fire it
    e.on_market_data(bbo(T0 + 900 * MS, 101000.0, 101000.1))
    up = e.on_market_data(trade(T0 + 950 * MS, 101000.0))  # at the trigger
    (f,) = fills_of(up)
    assert (f.taker_side, f.price, f.size) == ("sell", 101000.0, pytest.approx(0.02))
    assert orders_of(up, 2)[-1].status == "filled" and e.position(A, BTC.market_id).size == 0


def test_take_profit_buy_fires_at_or_below_its_trigger():
    e = engine_with(-0.02)
    e.submit(tp(2, 0.02, 99000.0, 99500.0, "buy"), T0 + 400 * MS)
    e.advance(T0 + 700 * MS)
    assert fills_of(e.on_market_data(trade(T0 + 800 * MS, 101000.0))) == []  # rising: a stop's way, not ours
    e.on_market_data(bbo(T0 + 900 * MS, 98900.0, 98900.1))
    up = e.on_market_data(mark(T0 + 950 * MS, 98950.0))
    (f,) = fills_of(up)
    assert (f.taker_side, f.price) == ("buy", 98900.1) and e.position(A, BTC.market_id).size == 0


def test_take_profit_market_never_fills_worse_than_its_price():
    e = engine_with(0.02)
    e.submit(tp(2, 0.02, 101000.0, 101500.0, "sell"), T0 + 400 * MS)
    e.advance(T0 + 700 * MS)
    e.on_market_data(bbo(T0 + 900 * MS, 101100.0, 101100.1))  # bid below the order's worst price
    up = e.on_market_data(trade(T0 + 950 * MS, 101100.0))
    assert fills_of(up) == [] and orders_of(up, 2)[-1].status == "canceled"  # market: the rest is canceled


def test_take_profit_limit_rests_at_its_price_once_triggered():
    e = engine_with(0.02)
    e.submit(tp(3, 0.02, 101000.0, 101200.0, "sell", otype="take-profit-limit", tif="gtt"), T0 + 400 * MS)
    e.advance(T0 + 700 * MS)
    e.on_market_data(bbo(T0 + 900 * MS, 101000.0, 101000.1))
    up = e.on_market_data(trade(T0 + 950 * MS, 101050.0))
    (o,) = orders_of(up, 3)
    assert fills_of(up) == [] and (o.status, o.triggered) == ("open", True)
    assert [r.price for r in e.resting[BTC.market_id].values()] == [BTC.price_to_int(101200.0)]


def test_stop_loss_buy_fires_at_or_above_its_trigger():
    e = engine_with(-0.02)
    e.submit(tp(2, 0.02, 101000.0, 101500.0, "buy", otype="stop-loss"), T0 + 400 * MS)
    e.advance(T0 + 700 * MS)
    assert fills_of(e.on_market_data(trade(T0 + 800 * MS, 99000.0))) == []
    e.on_market_data(bbo(T0 + 900 * MS, 101000.0, 101000.1))
    (f,) = fills_of(e.on_market_data(trade(T0 + 950 * MS, 101000.0)))
    assert f.taker_side == "buy" and e.position(A, BTC.market_id).size == 0


def test_a_waiting_trigger_order_expires_and_can_be_modified():
    at_ms = T0 // MS + 10 * 60_000
    e = engine_with(0.02, expire_orders=True)
    e.submit(tp(2, 0.02, 101000.0, 100500.0, "sell", expiry=at_ms), T0 + 400 * MS)
    e.advance(T0 + 700 * MS)
    e.submit(ModifyOrder(account=A, market_id=BTC.market_id, index=2, base_amount=BTC.size_to_int(0.01),
                         price=BTC.price_to_int(100600.0), trigger_price=BTC.price_to_int(102000.0)), T0 + 700 * MS)
    (o,) = orders_of(e.advance(T0 + 1000 * MS), 2)
    assert (o.trigger_price, o.price, o.remaining) == (BTC.price_to_int(102000.0), BTC.price_to_int(100600.0),
                                                        BTC.size_to_int(0.01))
    assert fills_of(e.on_market_data(trade(T0 + 2000 * MS, 101500.0))) == []  # the old trigger no longer fires
    (o,) = orders_of(e.advance(at_ms * MS), 2)
    assert (o.status, o.updated_ns) == ("canceled-expired", at_ms * MS) and e.active_orders(A) == []


def test_a_modified_resting_order_that_now_crosses_takes_liquidity():
    e = MatchingEngine([BTC])
    e.on_market_data(bbo(T0, 100000.0, 100000.1))
    e.submit(CreateOrder(account=A, market_id=BTC.market_id, client_order_index=5, base_amount=BTC.size_to_int(0.01),
                         price=BTC.price_to_int(99000.0), is_ask=False), T0)
    e.advance(T0 + 200 * MS)
    e.submit(ModifyOrder(account=A, market_id=BTC.market_id, index=5, base_amount=BTC.size_to_int(0.01),
                         price=BTC.price_to_int(100000.1)), T0 + 200 * MS)
    up = e.advance(T0 + 400 * MS)
    (f,) = fills_of(up)
    assert (f.taker_side, f.price) == ("buy", 100000.1) and orders_of(up, 5)[-1].status == "filled"
