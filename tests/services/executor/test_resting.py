"""Executor engine: RestingOrders (grid) diffing, attribution, risk gate, per-market cap."""

from __future__ import annotations

from executor_kit import T0, lighter_trade, make_engine, of

from services.executor.engine import MAX_OPEN_ORDERS_PER_MARKET, Engine
from services.executor.venue import parse_order, parse_position, parse_trade
from shared.events import (
    Bbo,
    CancelIntent,
    Control,
    Fill,
    OrderRejected,
    PositionSnapshot,
    QuoteIntent,
    RestingOrders,
    RiskState,
)

make = make_engine


def bbo(i: int = 0) -> Bbo:
    return Bbo(id=f"bbo{i}", ts_event=T0 + i, source="collector", market="BTC", bid_px=115000.0, bid_sz=1.0,
               ask_px=115001.0, ask_sz=1.0)


def ro(i: int, orders, strategy: str = "grid", market: str = "BTC", post_only: bool = True) -> RestingOrders:
    return RestingOrders(id=f"ro-{strategy}-{i}", ts_event=T0 + i, source=strategy, strategy=strategy,
                         market=market, orders=orders, post_only=post_only)


def trade(trade_id: int, coi: int, size: str, price: str, side: str) -> dict:
    """A Lighter trade where our resting order on ``side`` was the maker."""
    return lighter_trade(trade_id, coi, size, price, side, maker=True)


def accept(e: Engine, cmds) -> None:
    for c in cmds:
        if c.kind == "create":
            e.on_send_result(c, True)


GRID = [("buy", 114885.0, 0.0002), ("buy", 114770.0, 0.0002), ("sell", 115115.0, 0.0002),
        ("sell", 115230.0, 0.0002)]


def test_diff_keeps_identical_cancels_unwanted_places_new():
    e = make()
    e.on_event(bbo())
    assert e.on_event(ro(1, GRID)) == []
    cmds = e.take_commands()
    assert [(c.kind, c.side, c.price, c.size, c.tif, c.order_expiry) for c in cmds] == [
        ("create", "buy", 1148850, 20, "post_only", -1), ("create", "buy", 1147700, 20, "post_only", -1),
        ("create", "sell", 1151150, 20, "post_only", -1), ("create", "sell", 1152300, 20, "post_only", -1)]
    accept(e, cmds)
    by_price = {c.price: c.client_order_index for c in cmds}
    # the same set again: nothing
    e.on_event(ro(2, list(reversed(GRID))))
    assert e.take_commands() == []
    # drop the far buy, add a new sell: one cancel (first), one create; the rest keep their queue
    e.on_event(ro(3, [GRID[0], GRID[2], GRID[3], ("sell", 115345.0, 0.0002)]))
    cmds2 = e.take_commands()
    assert [(c.kind, c.side, c.price) for c in cmds2] == [("cancel", "buy", 0), ("create", "sell", 1153450)]
    assert cmds2[0].client_order_index == by_price[1147700]
    assert sorted(e.resting_orders("grid", "BTC")) == sorted(
        [("buy", 114885.0, 0.0002), ("sell", 115115.0, 0.0002), ("sell", 115230.0, 0.0002),
         ("sell", 115345.0, 0.0002)])
    # a different size at the same price is a different order
    e.on_event(ro(4, [("buy", 114885.0, 0.0003), GRID[2], GRID[3], ("sell", 115345.0, 0.0002)]))
    assert [(c.kind, c.side, c.size) for c in e.take_commands()] == [("cancel", "buy", 0), ("create", "buy", 30)]
    # empty set cancels all of them
    e.on_event(ro(5, []))
    cmds3 = e.take_commands()
    assert [c.kind for c in cmds3] == ["cancel"] * 4
    assert e.resting_orders("grid", "BTC") == []


def test_prices_round_never_more_aggressive_and_sizes_down():
    e = make()
    e.on_event(ro(1, [("buy", 114885.06, 0.000259), ("sell", 115115.01, 0.000251)], post_only=False))
    c1, c2 = e.take_commands()
    assert (c1.side, c1.price, c1.size, c1.tif) == ("buy", 1148850, 25, "gtt")
    assert (c2.side, c2.price, c2.size, c2.tif) == ("sell", 1151151, 25, "gtt")
    # the same request again matches the rounded orders
    e.on_event(ro(2, [("buy", 114885.06, 0.000259), ("sell", 115115.01, 0.000251)], post_only=False))
    assert e.take_commands() == []


def test_below_minimum_refused_locally():
    e = make()
    outs = e.on_event(ro(1, [("buy", 114885.0, 0.0001), ("buy", 114000.0, 0.0002)]))
    (rej,) = of(outs, OrderRejected)
    assert rej.code == 0 and rej.strategy == "grid" and "min_base_amount" in rej.reason
    assert [c.price for c in e.take_commands()] == [1140000]


def test_maker_fill_attributed_to_owner_and_other_strategies_untouched():
    e = make()
    e.on_event(bbo())
    e.on_event(ro(1, GRID))
    cmds = e.take_commands()
    accept(e, cmds)
    e.on_event(QuoteIntent(id="q1", ts_event=T0 + 2, source="mm", strategy="mm", market="BTC", bid_px=114000.0,
                           bid_sz=0.0002))
    (qc,) = e.take_commands()
    e.on_send_result(qc, True)
    # the grid re-sends its set: the mm quote is not the grid's, so it stays
    e.on_event(ro(3, GRID))
    assert e.take_commands() == []
    buy = cmds[0]
    outs = e.on_venue_trade(parse_trade(1, trade(77, buy.client_order_index, "0.00020", "114885.0", "buy")))
    (f,) = of(outs, Fill)
    assert (f.strategy, f.side, f.size, f.liquidity, f.client_order_index) == (
        "grid", "buy", 0.0002, "maker", buy.client_order_index)
    (snap,) = of(outs, PositionSnapshot)
    assert snap.strategy == "grid" and snap.position == 0.0002 and snap.account_position == 0.0002
    e.on_venue_order(parse_order(1, {"client_order_index": buy.client_order_index, "status": "filled"}))
    assert ("buy", 114885.0, 0.0002) not in e.resting_orders("grid", "BTC")
    # the grid wants it back: placed again
    e.on_event(ro(4, GRID))
    assert [(c.kind, c.price) for c in e.take_commands()] == [("create", 1148850)]
    # CancelIntent of the grid leaves the mm quote alone
    e.on_event(CancelIntent(id="c1", ts_event=T0 + 5, source="grid", strategy="grid", market="BTC"))
    cmds4 = e.take_commands()
    assert len(cmds4) == 4 and qc.client_order_index not in {c.client_order_index for c in cmds4}
    assert e.resting_orders("mm", "BTC") == [("buy", 114000.0, 0.0002)]


def test_max_position_counts_all_same_side_resting_orders():
    e = make(max_position={"BTC": 0.0005})
    e.on_event(bbo())
    e.on_event(QuoteIntent(id="q1", ts_event=T0 + 1, source="mm", strategy="mm", market="BTC", bid_px=114000.0,
                           bid_sz=0.0002))
    accept(e, e.take_commands())
    buys = [("buy", 114885.0 - 100 * k, 0.0002) for k in range(3)]
    outs = e.on_event(ro(2, buys + [("sell", 115115.0, 0.0002)]))
    cmds = e.take_commands()
    # room for buys: 0.0005 - 0.0002 (mm bid) = 0.0003 -> one full buy, the next clipped to 0.0001
    # (below the minimum -> refused), the third dropped; the sell is fine
    assert [(c.side, c.size) for c in cmds] == [("buy", 20), ("sell", 20)]
    rej = of(outs, OrderRejected)
    assert rej and all(r.code == 0 and r.side == "buy" for r in rej)
    assert any("max_position" in r.reason for r in rej)
    # the clipped order is not re-placed on every emission
    accept(e, cmds)
    e.on_event(ro(3, buys + [("sell", 115115.0, 0.0002)]))
    assert [c.kind for c in e.take_commands()] == []


def test_clipped_order_is_kept_on_re_emission():
    e = make(max_position={"BTC": 0.0003})
    e.on_event(bbo())
    outs = e.on_event(ro(1, [("buy", 114885.0, 0.0005)]))
    (c,) = e.take_commands()
    assert c.size == 30 and of(outs, OrderRejected)[0].size == 0.0002
    e.on_send_result(c, True)
    e.on_event(ro(2, [("buy", 114885.0, 0.0005)]))
    assert e.take_commands() == []


def test_halted_places_nothing_but_cancels():
    e = make()
    e.on_event(ro(1, GRID[:2]))
    accept(e, e.take_commands())
    e.on_event(Control(id="k", ts_event=T0 + 2, source="op", command="kill"))
    (ca,) = e.take_commands()
    assert ca.kind == "cancel_all"
    outs = e.on_event(ro(3, GRID))
    assert e.take_commands() == []
    rej = of(outs, OrderRejected)
    assert len(rej) == 4 and all("halted" in r.reason for r in rej)


def test_reducing_only_orders_that_shrink_exposure():
    e = make(max_position={"BTC": 0.0002})
    e.on_event(bbo())
    e.on_event(ro(1, [("buy", 114885.0, 0.0002)]))
    (c,) = e.take_commands()
    e.on_send_result(c, True)
    e.on_venue_trade(parse_trade(1, trade(1, c.client_order_index, "0.00020", "114885.0", "buy")))
    e.on_venue_order(parse_order(1, {"client_order_index": c.client_order_index, "status": "filled"}))
    # the venue reports a larger position: over the limit -> reducing
    outs = e.on_venue_position(parse_position(1, {"position": "0.00030", "sign": 1}))
    assert of(outs, RiskState)[0].state == "reducing"
    outs = e.on_event(ro(2, [("buy", 114800.0, 0.0002), ("sell", 115115.0, 0.0002), ("sell", 115200.0, 0.0002)]))
    cmds = e.take_commands()
    # only a sell; the second sell would exceed the position (0.0003 - 0.0002 = 0.0001 < minimum)
    assert [(c.side, c.size, c.reduce_only) for c in cmds] == [("sell", 20, True)]
    reasons = [r.reason for r in of(outs, OrderRejected)]
    assert any("only orders that shrink" in r for r in reasons)
    assert any("limited to the position" in r for r in reasons)


def test_paused_strategy_is_ignored():
    e = make()
    e.on_event(Control(id="p", ts_event=T0, source="op", command="pause", target="grid"))
    assert e.on_event(ro(1, GRID)) == [] and e.take_commands() == []


def test_per_market_cap_of_open_orders():
    e = make(max_position={"BTC": 1.0}, default_max_notional_usd=1e9)
    e.on_event(bbo())
    levels = [("buy", 114000.0 - 10 * k, 0.0002) for k in range(20)]
    outs = e.on_event(ro(1, levels))
    cmds = e.take_commands()
    assert len(cmds) == MAX_OPEN_ORDERS_PER_MARKET == 16
    rej = of(outs, OrderRejected)
    assert len(rej) == 4 and all("16 open orders" in r.reason for r in rej)
    # the kept 16 are the nearest the touch
    assert min(c.price for c in cmds) == 1140000 - 150 * 10


def test_unknown_market_refused():
    e = make()
    outs = e.on_event(ro(1, GRID[:1], market="DOGE"))
    (r,) = of(outs, OrderRejected)
    assert "not traded" in r.reason


def test_determinism():
    def run():
        e = make()
        outs = e.on_event(bbo()) + e.on_event(ro(1, GRID + [("buy", 1.0, 0.0002)]))
        return outs, e.take_commands()
    assert run() == run()
