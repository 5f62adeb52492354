"""Stop-loss orders in the venue model (shared/venue/matching.py): off the book until the last
trade or mark price reaches the trigger, then a reduce-only market order no worse than its price;
cancel and cancel-all reach them; a trigger price is required."""

from __future__ import annotations

import pytest
from copytrade_kit import BTC, ETH

from shared.events import Bbo, MarketStats, Trade
from shared.venue.errors import INVALID_TRIGGER_PRICE, VenueError
from shared.venue.matching import CancelAll, CancelOrder, CreateOrder, FillUpdate, MatchingEngine, OrderUpdate

MS = 1_000_000
T0 = 1_757_900_000_000_000_000
A = 1001


def bbo(ts, bid, bsz, ask, asz):
    return Bbo(id=f"b{ts}", ts_event=ts, market="BTC", bid_px=bid, bid_sz=bsz, ask_px=ask, ask_sz=asz)


def trade(ts, px, sz, side):
    return Trade(id=f"t{ts}", ts_event=ts, market="BTC", trade_id=str(ts % 10**9), price=px, size=sz, taker_side=side)


def order(coi, size, px, side, tif="gtt"):
    return CreateOrder(account=A, market_id=BTC.market_id, client_order_index=coi, base_amount=BTC.size_to_int(size),
                       price=BTC.price_to_int(px), is_ask=side == "sell", time_in_force=tif)


def orders_of(updates, coi):
    return [u.order for u in updates if isinstance(u, OrderUpdate) and u.order.client_order_index == coi]


def fills_of(updates):
    return [u.fill for u in updates if isinstance(u, FillUpdate)]


def stop(coi, size, trigger, worst, side, otype="stop-loss", tif="ioc"):
    return CreateOrder(account=A, market_id=BTC.market_id, client_order_index=coi, base_amount=BTC.size_to_int(size),
                       price=BTC.price_to_int(worst), is_ask=side == "sell", order_type=otype, time_in_force=tif,
                       reduce_only=True, trigger_price=BTC.price_to_int(trigger))


@pytest.fixture
def long_eng():
    e = MatchingEngine([BTC, ETH])
    e.on_market_data(bbo(T0, 100000.0, 0.5, 100000.1, 0.5))
    e.submit(order(1, 0.02, 100100.0, "buy", tif="ioc"), T0)
    e.advance(T0 + 300 * MS)
    assert e.position(A, BTC.market_id).size == BTC.size_to_int(0.02)
    return e


def test_a_sell_stop_waits_off_the_book_then_sells_the_position_at_the_trigger(long_eng):
    e = long_eng
    e.submit(stop(2, 0.05, 99000.0, 98000.0, "sell"), T0 + 400 * MS)
    up = e.advance(T0 + 700 * MS)
    (o,) = orders_of(up, 2)
    assert o.status == "open" and o.trigger_price == BTC.price_to_int(99000.0)
    assert [x.client_order_index for x in e.active_orders(A)] == [2]
    bids, asks = e.public_book(BTC.market_id)
    assert BTC.price_to_int(98000.0) not in asks  # not on the public book
    e.on_market_data(bbo(T0 + 800 * MS, 99500.0, 0.5, 99500.1, 0.5))
    assert fills_of(e.on_market_data(trade(T0 + 900 * MS, 99500.0, 0.01, "sell"))) == []  # above the trigger
    e.on_market_data(bbo(T0 + 950 * MS, 98900.0, 0.5, 98900.1, 0.5))
    up = e.on_market_data(trade(T0 + 1000 * MS, 98950.0, 0.01, "sell"))
    (f,) = fills_of(up)
    assert f.taker_account == A and f.size == pytest.approx(0.02) and f.price == 98900.0  # reduce-only: the position
    assert orders_of(up, 2)[-1].status == "filled" and e.position(A, BTC.market_id).size == 0
    assert e.active_orders(A) == []


def test_the_mark_price_triggers_a_stop_too_and_a_flat_position_cancels_it(long_eng):
    e = long_eng
    e.submit(stop(2, 0.02, 99000.0, 98000.0, "sell"), T0 + 400 * MS)
    e.advance(T0 + 700 * MS)
    e.submit(order(3, 0.02, 99900.0, "sell", tif="ioc"), T0 + 700 * MS)  # closed another way
    e.advance(T0 + 1000 * MS)
    up = e.on_market_data(MarketStats(id="s", ts_event=T0 + 1100 * MS, market="BTC", mark_price=98000.0,
                                      index_price=98000.0, funding_rate=0.0, open_interest=0.0))
    assert orders_of(up, 2)[-1].status == "canceled-reduce-only" and fills_of(up) == []


def test_stops_are_cancelled_by_index_and_by_cancel_all_and_need_a_trigger(long_eng):
    e = long_eng
    e.submit(stop(2, 0.02, 99000.0, 98000.0, "sell"), T0 + 400 * MS)
    e.submit(stop(3, 0.02, 99100.0, 98000.0, "sell", otype="stop-loss-limit", tif="gtt"), T0 + 400 * MS)
    e.advance(T0 + 700 * MS)
    up = e.submit(CancelOrder(account=A, market_id=BTC.market_id, index=2), T0 + 700 * MS) and e.advance(T0 + 1000 * MS)
    assert orders_of(up, 2)[-1].status == "canceled"
    up = e.submit(CancelAll(account=A), T0 + 1000 * MS) and e.advance(T0 + 1300 * MS)
    assert orders_of(up, 3)[-1].status == "canceled" and e.active_orders(A) == []
    with pytest.raises(VenueError) as exc:
        e.submit(stop(4, 0.02, 0.0, 98000.0, "sell"), T0 + 1300 * MS)
    assert exc.value.code == INVALID_TRIGGER_PRICE


def test_a_triggered_stop_limit_rests_at_its_price(long_eng):
    e = long_eng
    e.submit(stop(3, 0.02, 99000.0, 98950.0, "sell", otype="stop-loss-limit", tif="gtt"), T0 + 400 * MS)
    e.advance(T0 + 700 * MS)
    e.on_market_data(bbo(T0 + 800 * MS, 98900.0, 0.5, 98900.1, 0.5))
    up = e.on_market_data(trade(T0 + 900 * MS, 98990.0, 0.01, "sell"))
    assert fills_of(up) == [] and orders_of(up, 3)[-1].status == "open"
    assert [o.price for o in e.resting[BTC.market_id].values()] == [BTC.price_to_int(98950.0)]
