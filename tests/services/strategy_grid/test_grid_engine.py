"""Grid engine: levels from a mid, cap of 8, cooldown, recenter, take profit, inventory cap, dry run."""

from __future__ import annotations

import pytest

from services.strategy_grid.config import GridConfig
from services.strategy_grid.engine import GridEngine, make_engine
from shared.config import ConfigError, StackConfig
from shared.events import Bbo, Fill, OrderCanceled, OrderRejected, RestingOrders

S = 1_000_000_000
T0 = 1_757_899_995 * S


def eng(**kw) -> GridEngine:
    return GridEngine(GridConfig(**kw), ["BTC", "ETH"])


def bbo(t: float, mid: float, market: str = "BTC", half: float = 0.5) -> Bbo:
    return Bbo(id=f"b-{market}-{t}-{mid}", ts_event=T0 + int(t * S), source="collector", market=market,
               bid_px=mid - half, bid_sz=1.0, ask_px=mid + half, ask_sz=1.0)


def fill(t: float, side: str, price: float, size: float = 0.0002, fid: str | None = None,
         strategy: str = "grid", market: str = "BTC") -> Fill:
    return Fill(id=f"f-{t}-{side}-{price}", ts_event=T0 + int(t * S), source="executor",
                fill_id=fid or f"fid-{t}-{side}-{price}", strategy=strategy, market=market, side=side,
                price=price, size=size, liquidity="maker")


def test_levels_from_the_mid_with_default_spacing():
    e = eng()
    (ro,) = e.on_event(bbo(0, 100_000.0))
    assert isinstance(ro, RestingOrders)
    assert (ro.strategy, ro.market, ro.post_only, ro.source) == ("grid", "BTC", True, "strategy-grid")
    assert ro.orders == [("buy", 99_900.0, 0.0002), ("buy", 99_800.0, 0.0002), ("buy", 99_700.0, 0.0002),
                         ("buy", 99_600.0, 0.0002), ("sell", 100_100.0, 0.0002), ("sell", 100_200.0, 0.0002),
                         ("sell", 100_300.0, 0.0002), ("sell", 100_400.0, 0.0002)]
    st = e.state("BTC")
    assert st["anchor"] == 100_000.0 and st["levels"] == 8 and st["wanted_orders"] == 8
    # ETH uses its own size
    (r2,) = e.on_event(bbo(0, 4000.0, market="ETH", half=0.01))
    assert r2.orders[0] == ("buy", 3996.0, 0.005)
    # same book again: nothing
    assert e.on_event(bbo(20, 100_000.0)) == []


def test_at_most_max_orders_nearest_the_mid():
    e = eng(levels_per_side=6)  # 12 levels, max_orders 8
    (ro,) = e.on_event(bbo(0, 100_000.0))
    assert len(ro.orders) == 8
    assert max(p for s, p, _ in ro.orders if s == "sell") == pytest.approx(100_400.0)
    assert min(p for s, p, _ in ro.orders if s == "buy") == pytest.approx(99_600.0)
    e2 = eng(levels_per_side=3, max_orders=4)
    (ro2,) = e2.on_event(bbo(0, 100_000.0))
    assert sorted(p for _, p, _ in ro2.orders) == [99_800.0, 99_900.0, 100_100.0, 100_200.0]


def test_take_profit_one_level_above_a_filled_buy_and_re_entry_below_a_filled_sell():
    e = eng(cooldown_s=0)
    e.on_event(bbo(0, 100_000.0))
    (ro,) = e.on_event(fill(1, "buy", 99_900.0))
    assert e.position("BTC") == pytest.approx(0.0002)
    assert ("buy", 99_900.0, 0.0002) not in ro.orders
    assert ("sell", 100_000.0, 0.0002) in ro.orders  # take profit at the anchor level
    assert len(ro.orders) == 8
    # the take profit fills: the buy comes back one level below
    (ro2,) = e.on_event(fill(2, "sell", 100_000.0))
    assert e.position("BTC") == 0.0
    assert ("buy", 99_900.0, 0.0002) in ro2.orders and ("sell", 100_000.0, 0.0002) not in ro2.orders
    # a sell above fills: a buy one level below it (at the anchor)
    (ro3,) = e.on_event(fill(3, "sell", 100_100.0))
    assert ("buy", 100_000.0, 0.0002) in ro3.orders and e.position("BTC") == pytest.approx(-0.0002)
    assert e.state("BTC")["fills"] == 3


def test_partial_fill_keeps_the_level_and_duplicates_are_dropped():
    e = eng(cooldown_s=0)
    e.on_event(bbo(0, 100_000.0))
    assert e.on_event(fill(1, "buy", 99_900.0, size=0.0001, fid="x")) == []
    assert e.on_event(fill(1, "buy", 99_900.0, size=0.0001, fid="x")) == []  # redelivered
    assert e.duplicate_fills == 1 and e.position("BTC") == pytest.approx(0.0001)
    (ro,) = e.on_event(fill(2, "buy", 99_900.0, size=0.0001, fid="y"))
    assert ("sell", 100_000.0, 0.0002) in ro.orders
    # other strategies' fills are ignored
    assert e.on_event(fill(3, "sell", 100_100.0, strategy="trend")) == []
    assert e.position("BTC") == pytest.approx(0.0002)


def test_cooldown_between_emissions():
    e = eng()  # 10 s
    e.on_event(bbo(0, 100_000.0))
    assert e.on_event(fill(1, "buy", 99_900.0)) == []  # set changed, but within the cooldown
    assert e.on_event(bbo(5, 100_000.0)) == []
    (ro,) = e.on_event(bbo(10, 100_000.0))  # first input after the cooldown
    assert ("sell", 100_000.0, 0.0002) in ro.orders
    assert e.on_event(bbo(30, 100_000.0)) == []  # unchanged: nothing


def test_recenter_when_the_mid_leaves_the_band():
    e = eng(cooldown_s=0)
    e.on_event(bbo(0, 100_000.0))
    e.on_event(bbo(1, 100_400.0))  # within 0.5 %: same anchor
    assert e.state("BTC")["anchor"] == 100_000.0
    (ro,) = e.on_event(bbo(2, 100_600.0))
    st = e.state("BTC")
    assert st["anchor"] == 100_600.0 and st["recenters"] == 1
    assert ("buy", round(100_600.0 * 0.999, 8), 0.0002) in ro.orders and len(ro.orders) == 8


def test_orders_crossing_the_touch_are_left_out():
    e = eng(cooldown_s=0)
    e.on_event(bbo(0, 100_000.0))
    (ro,) = e.on_event(bbo(1, 100_150.0))  # bid 100149.5: the 100100 sell would cross
    assert ("sell", 100_100.0, 0.0002) not in ro.orders
    assert len(ro.orders) == 7


def test_inventory_cap_stops_the_growing_side():
    e = eng(cooldown_s=0, max_position={"BTC": 0.0005})
    (ro,) = e.on_event(bbo(0, 100_000.0))
    assert sum(1 for s, _, _ in ro.orders if s == "buy") == 2  # 2 x 0.0002 <= 0.0005 < 3 x
    e.on_event(bbo(1, 99_750.0))  # the market fell through two buy levels
    e.on_event(fill(1, "buy", 99_900.0))
    (ro,) = e.on_event(fill(2, "buy", 99_800.0))
    assert e.position("BTC") == pytest.approx(0.0004)
    assert [o for o in ro.orders if o[0] == "buy"] == []  # 0.0004 + 0.0002 > 0.0005
    # sells down to -cap: 0.0004 + 0.0005 -> 4, nearest first, so both take profits are in
    assert [p for s, p, _ in ro.orders if s == "sell"] == [99_900.0, 100_000.0, 100_100.0, 100_200.0]


def test_dry_run_emits_nothing_but_exposes_the_grid():
    e = eng(dry_run=True, cooldown_s=0)
    assert e.on_event(bbo(0, 100_000.0)) == []
    assert e.on_event(fill(1, "buy", 99_900.0)) == []
    st = e.state("BTC")
    assert st["wanted_orders"] == 8 and st["emissions"] == 2 and st["dry_run"]
    assert ("sell", 100_000.0, 0.0002) in e.wanted("BTC")


def test_venue_refusal_resends_the_set_local_refusal_does_not():
    e = eng(cooldown_s=0)
    e.on_event(bbo(0, 100_000.0))
    base = dict(id="x", ts_event=T0 + S, source="executor", strategy="grid", market="BTC", client_order_index=5)
    assert e.on_event(OrderRejected(**base, side="buy", price=1.0, size=1.0, code=0, reason="local")) == []
    assert e.on_event(OrderCanceled(**base, remaining=0.0002, reason="canceled")) == []
    (ro,) = e.on_event(OrderCanceled(**{**base, "id": "y"}, remaining=0.0002, reason="canceled-post-only"))
    assert len(ro.orders) == 8


def test_determinism():
    def run():
        e = eng()
        evs = [bbo(t, 100_000.0 + 37 * ((t * 7) % 13 - 6)) for t in range(0, 200, 3)]
        evs[10:10] = [fill(31, "buy", 99_900.0)]
        return [o for ev in evs for o in e.on_event(ev)]
    a, b = run(), run()
    assert a == b and a


def test_make_engine_and_config_errors():
    e = make_engine(StackConfig(markets=["BTC"], services={"strategy-grid": {"spacing_pct": 0.05,
                                                                              "sizes": {"btc": 0.0003}}}))
    assert e.markets == ["BTC"] and e.cfg.sizes["BTC"] == 0.0003 and e.cfg.sizes["ETH"] == 0.005
    assert e.cfg.http_port == 9106 and e.name == "grid"
    assert make_engine(StackConfig(markets=["PAXG"])).markets == ["PAXG"]  # sized from notional_usd
    with pytest.raises(ConfigError, match="no market to trade"):
        make_engine(StackConfig(markets=[]))
    with pytest.raises(ConfigError, match="spacing_pct"):
        make_engine(StackConfig(services={"strategy-grid": {"spacing_pct": 0}}))
