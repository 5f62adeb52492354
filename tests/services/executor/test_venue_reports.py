"""Typed venue reports at the edge: the executor's venue client parses Lighter's JSON (as venue-sim
sends it, ``shared.venue.lighter_json``) into exactly the structs the in-process backtest makes
straight from the matching engine (``shared.venue.reports``), so both paths feed the engine the
same values; malformed JSON is skipped, never raised."""

from __future__ import annotations

import itertools

from executor_kit import ACCT, BTC, ETH, lighter_trade, make_engine, of

from services.executor.venue import feed_reports, parse_order, parse_position, parse_trade
from shared.events import Fill as FillEvent
from shared.lighter_rest import RestError
from shared.venue import lighter_json as LJ
from shared.venue.errors import VenueError
from shared.venue.matching import Fill, Order, Position
from shared.venue.reports import (
    VenueOrder,
    VenuePosition,
    VenueTrade,
    order_from_order,
    position_from_position,
    trade_from_fill,
)

TS = 1_757_973_377_123_456_789  # ns, not on a ms boundary


def fills():
    for m, (px, lots), taker_side, (tf, mf) in itertools.product(
            (BTC, ETH), ((1148853, 37), (451050, 1), (999999, 12345)), ("buy", "sell"),
            ((0.0002, 0.00002), (0.0, 0.0), (0.000196, 0.000028))):
        maker_side = "sell" if taker_side == "buy" else "buy"
        yield m, Fill(trade_id=42, market=m.symbol, market_id=m.market_id, price=m.int_to_price(px),
                      size=m.int_to_size(lots), price_ticks=px, size_lots=lots, taker_account=ACCT,
                      maker_account=9, taker_order_index=5, maker_order_index=6, taker_client_order_index=123,
                      maker_client_order_index=0, taker_side=taker_side, maker_side=maker_side,
                      taker_fee=0.0, maker_fee=0.0, ts_ns=TS), tf, mf


def test_parsed_trade_json_equals_the_backtests_trade():
    n = 0
    for m, f, tf, mf in fills():
        direct = trade_from_fill(m, f, taker_fee=tf, maker_fee=mf)
        parsed = parse_trade(m.market_id, LJ.fill_trade_json(m, f, taker_fee=tf, maker_fee=mf))
        assert parsed == direct
        n += 1
    assert n == 36
    assert direct.ts_ns == TS // 1_000_000 * 1_000_000  # Lighter's ms resolution


def test_parsed_order_and_position_json_equal_the_backtests():
    for m, status, remaining in itertools.product((BTC, ETH), ("open", "filled", "canceled-expired"), (0, 7, 1234)):
        o = Order(order_index=77, client_order_index=123, account=ACCT, market_id=m.market_id, is_ask=True,
                  price=1148853, initial_amount=2000, remaining=remaining, status=status, created_ns=TS,
                  updated_ns=TS + 5)
        assert parse_order(m.market_id, LJ.order_json(m, o)) == order_from_order(m, o)
    for m, size in itertools.product((BTC, ETH), (0, 37, -37, -123456)):
        p = Position(account=ACCT, market_id=m.market_id, size=size, avg_entry_price=100.5)
        parsed = parse_position(m.market_id, LJ.position_json(m, p, mark=101.0))
        assert parsed == position_from_position(m, p)
        assert parsed.position == m.int_to_size(size)


def test_engine_fill_from_a_parsed_lighter_trade():
    e = make_engine()
    t = parse_trade(1, lighter_trade(555, 77, "0.00100", "115010.0", maker=False))
    assert t == VenueTrade(trade_id="555", market_id=1, price=115010.0, size=0.001, usd_amount=115.01,
                           ts_ns=1_757_973_377_000 * 1_000_000, bid_account=ACCT, ask_account=9,
                           bid_client_order_index=77, ask_client_order_index=0, is_maker_ask=True,
                           taker_fee_usd=115.01 * 196 / 1e6, maker_fee_usd=115.01 * 28 / 1e6)
    (f,) = of(e.on_venue_trade(t), FillEvent)
    assert (f.side, f.size, f.liquidity, f.fee) == ("buy", 0.001, "taker", 115.01 * 196 / 1e6)
    assert e.on_venue_trade(t) == []  # same trade id and side: once


def test_malformed_venue_json_is_skipped_not_raised():
    assert parse_trade(1, {"trade_id": 1, "size": "abc", "price": "1"}) is None
    assert parse_trade(1, {"trade_id": "", "size": "1", "price": "1"}) is None
    assert parse_trade("x", lighter_trade(1, 2, "0.001", "1.0")) is None
    assert parse_order(1, {"client_order_index": "nope"}) is None
    assert parse_order(1, {"client_order_index": 5, "remaining_base_amount": "?"}) is None
    assert parse_position(1, {"position": "1", "sign": "minus"}) is None
    t = lighter_trade(1, 2, "0.001", "1.0")
    t["bid_account_id"] = "not an account"  # unreadable account: not ours, still a trade
    assert parse_trade(1, t).bid_account == -1
    msg = {"type": "update/account_all_orders", "orders": {"1": [
        {"client_order_index": "bad"}, {"client_order_index": 9, "status": "open"}], "zz": [{}]}}
    assert feed_reports("orders", msg) == [VenueOrder(market_id=1, client_order_index=9, status="open")]
    assert feed_reports("positions", {"positions": [{"market_id": 0, "sign": -1, "position": "0.5"}]}) == [
        VenuePosition(market_id=0, position=-0.5)]
    assert feed_reports("trades", {"trades": "garbage"}) == []


def test_one_venue_error_family():
    exc = RestError("GET account: HTTP 500", 500)
    assert isinstance(exc, VenueError)
    assert (exc.code, exc.message, str(exc)) == (500, "GET account: HTTP 500", "GET account: HTTP 500")
