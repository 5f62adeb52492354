"""Unit tests of the pure venue model (shared/venue/matching.py)."""

from __future__ import annotations

import pytest

from shared.events import Bbo, Trade
from shared.markets import MarketInfo
from shared.venue.errors import (
    DUPLICATE_CLIENT_ORDER_INDEX,
    INVALID_AMOUNT,
    INVALID_MARKET,
    REDUCE_ONLY_INCREASES,
    VenueError,
)
from shared.venue.matching import (
    BOOK_ACCOUNT,
    CancelAll,
    CancelOrder,
    CreateOrder,
    FillUpdate,
    MatchingEngine,
    OrderUpdate,
    PositionUpdate,
    Tier,
)

BTC = MarketInfo(symbol="BTC", market_id=1, size_decimals=5, price_decimals=1, min_base_amount=0.0002,
                 min_quote_amount=10)
ETH = MarketInfo(symbol="ETH", market_id=0, size_decimals=4, price_decimals=2, min_base_amount=0.005,
                 min_quote_amount=10)
MS = 1_000_000
T0 = 1_757_900_000_000_000_000
A, B = 1001, 2002


def bbo(ts, bid, bsz, ask, asz, market="BTC"):
    return Bbo(id=f"b{ts}", ts_event=ts, market=market, bid_px=bid, bid_sz=bsz, ask_px=ask, ask_sz=asz)


def trade(ts, px, sz, side, market="BTC"):
    return Trade(id=f"t{ts}", ts_event=ts, market=market, trade_id=str(ts % 10**9), price=px, size=sz,
                 taker_side=side)


def order(coi, size, px, side, tif="gtt", otype="limit", account=A, reduce_only=False, m=BTC):
    return CreateOrder(account=account, market_id=m.market_id, client_order_index=coi,
                       base_amount=m.size_to_int(size), price=m.price_to_int(px), is_ask=side == "sell",
                       order_type=otype, time_in_force=tif, reduce_only=reduce_only)


@pytest.fixture
def eng():
    e = MatchingEngine([BTC, ETH])
    e.on_market_data(bbo(T0, 100000.0, 0.5, 100000.1, 0.05))
    return e


def orders_of(updates, coi=None):
    return [u.order for u in updates if isinstance(u, OrderUpdate) and (coi is None or u.order.client_order_index == coi)]


def fills_of(updates):
    return [u.fill for u in updates if isinstance(u, FillUpdate)]


def test_queue_position_trade_consumes_queue_ahead_first(eng):
    eng.submit(order(1, 0.1, 100000.0, "buy", tif="post_only"), T0)
    up = eng.advance(T0 + 200 * MS)
    (o,) = orders_of(up, 1)
    assert o.status == "open" and o.queue_ahead == 50000  # 0.5 BTC displayed ahead of us
    up = eng.on_market_data(trade(T0 + 300 * MS, 100000.0, 0.3, "sell"))
    assert fills_of(up) == []
    assert eng.active_orders(A)[0].queue_ahead == 20000
    up = eng.on_market_data(trade(T0 + 400 * MS, 100000.0, 0.25, "sell"))
    (f,) = fills_of(up)
    assert f.size == pytest.approx(0.05) and f.price == 100000.0
    assert f.maker_account == A and f.taker_account == BOOK_ACCOUNT and f.maker_side == "buy"
    (o,) = orders_of(up, 1)
    assert o.status == "open" and o.remaining == 5000 and o.filled == 5000


def test_displayed_size_shrink_reduces_queue_to_min(eng):
    eng.submit(order(1, 0.1, 100000.0, "buy", tif="post_only"), T0)
    eng.advance(T0 + 200 * MS)
    eng.on_market_data(bbo(T0 + 300 * MS, 100000.0, 0.2, 100000.1, 0.05))
    assert eng.active_orders(A)[0].queue_ahead == 20000
    eng.on_market_data(bbo(T0 + 400 * MS, 100000.0, 0.9, 100000.1, 0.05))  # growth queues behind us
    assert eng.active_orders(A)[0].queue_ahead == 20000


def test_order_better_than_touch_fills_on_trade_and_quote_through(eng):
    eng.submit(order(1, 0.01, 100000.1, "sell", tif="gtt"), T0)  # at the ask: joins behind 0.05
    eng.submit(order(2, 0.01, 100000.05 + 0.05, "buy", tif="post_only"), T0)  # crosses -> post-only cancel
    up = eng.advance(T0 + 300 * MS)
    assert orders_of(up, 2)[0].status == "canceled-post-only"
    assert orders_of(up, 1)[0].queue_ahead == 5000
    # bid better than touch (inside the spread): queue 0, fills on the next sell print through it
    eng.on_market_data(bbo(T0 + 400 * MS, 99990.0, 0.5, 100010.0, 0.5))
    eng.submit(order(3, 0.02, 99995.0, "buy"), T0 + 400 * MS)
    eng.advance(T0 + 600 * MS)
    assert eng.active_orders(A, 1)[-1].queue_ahead == 0
    up = eng.on_market_data(trade(T0 + 700 * MS, 99990.0, 0.005, "sell"))
    (f,) = fills_of(up)
    assert f.price == 99995.0 and f.size == pytest.approx(0.005)
    # the recorded ask drops through our bid: the rest fills at our price
    up = eng.on_market_data(bbo(T0 + 800 * MS, 99980.0, 0.5, 99994.0, 0.3))
    (f,) = fills_of(up)
    assert f.price == 99995.0 and f.size == pytest.approx(0.015)
    assert orders_of(up, 3)[0].status == "filled"


def test_post_only_that_would_cross_is_canceled_post_only(eng):
    acc = eng.submit(order(5, 0.01, 100000.1, "buy", tif="post_only"), T0)
    assert acc.role == "maker" and acc.exec_ns == T0 + 200 * MS
    up = eng.advance(acc.exec_ns)
    (o,) = orders_of(up)
    assert o.status == "canceled-post-only" and fills_of(up) == []
    assert eng.active_orders(A) == []


def test_ioc_partial_fill_cancels_remainder_and_consumption_is_remembered(eng):
    eng.submit(order(1, 0.1, 100001.0, "buy", tif="ioc"), T0)
    up = eng.advance(T0 + 300 * MS)
    (f,) = fills_of(up)
    assert f.price == 100000.1 and f.size == pytest.approx(0.05) and f.taker_account == A
    (o,) = orders_of(up)
    assert o.status == "canceled" and o.filled == 5000 and o.remaining == 5000
    # same recorded level: its displayed size is used up
    eng.submit(order(2, 0.01, 100001.0, "buy", tif="ioc"), T0 + 300 * MS)
    up = eng.advance(T0 + 600 * MS)
    assert fills_of(up) == [] and orders_of(up)[0].status == "canceled"
    assert eng.public_book(1)[1] == {}
    # the recorded level changes: available again
    eng.on_market_data(bbo(T0 + 700 * MS, 100000.0, 0.5, 100000.1, 0.06))
    eng.submit(order(3, 0.01, 100001.0, "buy", tif="ioc"), T0 + 700 * MS)
    assert fills_of(eng.advance(T0 + 1000 * MS))[0].size == pytest.approx(0.01)


def test_market_order_respects_worst_price(eng):
    eng.submit(order(1, 0.01, 99999.0, "buy", otype="market", tif="ioc"), T0)
    up = eng.advance(T0 + 300 * MS)
    assert fills_of(up) == [] and orders_of(up)[0].status == "canceled"
    eng.submit(order(2, 0.01, 100010.0, "buy", otype="market", tif="ioc"), T0 + 300 * MS)
    up = eng.advance(T0 + 600 * MS)
    (f,) = fills_of(up)
    assert f.price == 100000.1 and orders_of(up)[0].status == "filled"


def test_gtt_limit_takes_then_rests_remainder(eng):
    acc = eng.submit(order(1, 0.08, 100000.1, "buy"), T0)
    assert acc.role == "taker" and acc.exec_ns == T0 + 300 * MS
    up = eng.advance(acc.exec_ns)
    assert fills_of(up)[0].size == pytest.approx(0.05)
    (o,) = orders_of(up)
    assert o.status == "open" and o.remaining == 3000
    assert eng.public_book(1)[0][1000001] == 3000


def test_reduce_only_that_would_grow_is_rejected(eng):
    with pytest.raises(VenueError) as ei:
        eng.submit(order(1, 0.01, 100000.0, "sell", reduce_only=True), T0)
    assert ei.value.code == REDUCE_ONLY_INCREASES
    eng.submit(order(2, 0.02, 100001.0, "buy", tif="ioc"), T0)
    eng.advance(T0 + 300 * MS)
    assert eng.position(A, 1).size == 2000
    with pytest.raises(VenueError) as ei:
        eng.submit(order(3, 0.01, 100001.0, "buy", tif="ioc", reduce_only=True), T0 + 300 * MS)
    assert ei.value.code == REDUCE_ONLY_INCREASES
    # a reduce-only sell larger than the position is clamped to it
    eng.submit(order(4, 0.05, 99000.0, "sell", tif="ioc", reduce_only=True), T0 + 300 * MS)
    up = eng.advance(T0 + 600 * MS)
    assert fills_of(up)[0].size == pytest.approx(0.02)
    assert eng.position(A, 1).size == 0


def test_duplicate_client_order_index_is_rejected(eng):
    eng.submit(order(7, 0.01, 99000.0, "buy"), T0)
    with pytest.raises(VenueError) as ei:  # still pending
        eng.submit(order(7, 0.01, 99000.0, "buy"), T0)
    assert ei.value.code == DUPLICATE_CLIENT_ORDER_INDEX
    eng.advance(T0 + 200 * MS)
    with pytest.raises(VenueError) as ei:  # resting
        eng.submit(order(7, 0.01, 98000.0, "buy"), T0 + 200 * MS)
    assert ei.value.code == DUPLICATE_CLIENT_ORDER_INDEX
    eng.submit(order(7, 0.01, 98000.0, "buy", account=B), T0 + 200 * MS)  # other account: fine
    eng.submit(CancelOrder(account=A, market_id=1, index=7), T0 + 200 * MS)
    eng.advance(T0 + 400 * MS)
    eng.submit(order(7, 0.01, 98000.0, "buy"), T0 + 400 * MS)  # reusable once inactive


def test_min_amounts_and_market_are_checked(eng):
    for o in (order(1, 0.0001, 100000.0, "buy"),  # below min_base 0.0002 BTC
              order(2, 0.006, 1000.0, "buy", m=ETH),  # 6 USD < min_quote 10
              CreateOrder(account=A, market_id=1, client_order_index=3, base_amount=0, price=1000000, is_ask=False)):
        with pytest.raises(VenueError) as ei:
            eng.submit(o, T0)
        assert ei.value.code == INVALID_AMOUNT
    with pytest.raises(VenueError) as ei:
        eng.submit(CreateOrder(account=A, market_id=48, client_order_index=3, base_amount=10, price=10,
                               is_ask=False), T0)
    assert ei.value.code == INVALID_MARKET
    eng.submit(order(4, 0.0002, 100000.0, "buy"), T0)  # exactly the minimum is fine


def test_speed_bump_interleaves_with_market_data(eng):
    eng.submit(order(1, 0.01, 100001.0, "buy", tif="ioc"), T0)
    eng.submit(order(2, 0.01, 99000.0, "buy", tif="post_only"), T0)
    assert eng.next_pending_ns() == T0 + 200 * MS
    assert eng.advance(T0 + 199 * MS) == []
    up = eng.advance(T0 + 200 * MS)
    assert [o.client_order_index for o in orders_of(up)] == [2]
    # the ask moves away at +250 ms, before the taker executes at +300 ms
    up = eng.on_market_data(bbo(T0 + 250 * MS, 100000.0, 0.5, 100002.0, 0.05))
    assert orders_of(up) == []
    up = eng.advance(T0 + 300 * MS)
    assert orders_of(up)[0].status == "canceled" and fills_of(up) == []
    # cancel: 200 ms
    acc = eng.submit(CancelAll(account=A), T0 + 300 * MS)
    assert acc.exec_ns == T0 + 500 * MS
    assert eng.advance(T0 + 499 * MS) == []
    assert orders_of(eng.advance(T0 + 500 * MS))[0].status == "canceled"


def test_tier_is_configurable():
    e = MatchingEngine([BTC], Tier(name="x", taker_delay_ms=10, maker_delay_ms=0, cancel_delay_ms=5))
    e.on_market_data(bbo(T0, 100000.0, 0.5, 100000.1, 0.05))
    assert e.submit(order(1, 0.01, 100001.0, "buy", tif="ioc"), T0).exec_ns == T0 + 10 * MS
    assert e.submit(order(2, 0.01, 90000.0, "buy", tif="post_only"), T0).exec_ns == T0
    assert e.submit(CancelOrder(account=A, market_id=1, index=2), T0).exec_ns == T0 + 5 * MS


def test_position_avg_entry_realized_pnl_and_fees():
    e = MatchingEngine([BTC], taker_fee=0.001, initial_collateral=1000.0)
    e.on_market_data(bbo(T0, 99.0, 1.0, 100.0, 1.0))
    e.submit(order(1, 0.1, 100.0, "buy", tif="ioc"), T0)
    e.advance(T0 + 300 * MS)
    e.on_market_data(bbo(T0 + 400 * MS, 109.0, 1.0, 110.0, 1.0))
    e.submit(order(2, 0.1, 110.0, "buy", tif="ioc"), T0 + 400 * MS)
    e.advance(T0 + 700 * MS)
    p = e.position(A, 1)
    assert p.size == 20000 and p.avg_entry_price == pytest.approx(105.0)
    e.on_market_data(bbo(T0 + 800 * MS, 120.0, 1.0, 121.0, 1.0))
    e.submit(order(3, 0.3, 120.0, "sell", tif="ioc"), T0 + 800 * MS)
    up = e.advance(T0 + 1100 * MS)
    p = e.position(A, 1)
    assert p.size == -10000 and p.avg_entry_price == pytest.approx(120.0)
    assert p.realized_pnl == pytest.approx(0.2 * 15.0)
    fees = 0.001 * (10.0 + 11.0 + 36.0)
    assert p.fees_paid == pytest.approx(fees)
    assert e.account(A).collateral == pytest.approx(1000.0 + 3.0 - fees)
    # causal order: the fill, then the position, then the order update
    kinds = [type(u).__name__ for u in up if not type(u).__name__.startswith("Book")]
    assert kinds == ["FillUpdate", "PositionUpdate", "OrderUpdate"]
    assert isinstance(up[1], PositionUpdate) and up[1].position.size == -10000


def test_sim_accounts_trade_with_each_other_and_self_trade_cancels_maker(eng):
    eng.on_market_data(bbo(T0, 99990.0, 0.5, 100010.0, 0.05))
    eng.submit(order(1, 0.01, 100005.0, "sell", tif="post_only", account=B), T0)  # inside the spread
    eng.advance(T0 + 200 * MS)
    eng.submit(order(2, 0.01, 100010.0, "sell", tif="gtt", account=A), T0 + 200 * MS)  # at the touch
    eng.advance(T0 + 400 * MS)
    # A buys: B's cheaper ask first, then the recorded touch, then A's own ask is self-trade-canceled
    eng.submit(order(3, 0.2, 100010.0, "buy", tif="ioc", account=A), T0 + 400 * MS)
    up = eng.advance(T0 + 700 * MS)
    fs = fills_of(up)
    assert fs[0].maker_account == B and fs[0].taker_account == A
    assert [f.maker_account for f in fs[1:]] == [BOOK_ACCOUNT]
    assert orders_of(up, 2)[0].status == "canceled-self-trade"
    assert [o.client_order_index for o in eng.self_trade_cancels] == [2]
    assert all(f.maker_account != f.taker_account for f in eng.fills)


def test_order_behind_the_touch_waits_for_its_level_to_become_visible(eng):
    eng.submit(order(1, 0.01, 99990.0, "buy", tif="post_only"), T0)  # below the 100000.0 bid: hidden level
    eng.advance(T0 + 200 * MS)
    assert eng.active_orders(A)[0].queue_ahead is None
    assert fills_of(eng.on_market_data(trade(T0 + 300 * MS, 99990.0, 1.0, "sell"))) == []  # print at a hidden level
    eng.on_market_data(bbo(T0 + 400 * MS, 99990.0, 0.3, 99995.0, 0.1))  # our level becomes the touch
    assert eng.active_orders(A)[0].queue_ahead == 30000  # everything displayed is ahead (pessimistic)
    up = eng.on_market_data(trade(T0 + 500 * MS, 99990.0, 0.305, "sell"))
    assert fills_of(up)[0].size == pytest.approx(0.005)
