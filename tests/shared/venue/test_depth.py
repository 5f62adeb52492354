"""The synthetic depth ladder (shared/venue/depth.py) inside the matching engine: takers walk it
and pay slippage, it refills with sim time, a side never empties, and it is off by default."""

from __future__ import annotations

from shared.events import Bbo
from shared.markets import MarketInfo
from shared.venue.depth import DepthLadder, DepthModel
from shared.venue.matching import DEPTH_ASSUMPTION, CreateOrder, FillUpdate, MatchingEngine, OrderUpdate

BTC = MarketInfo(symbol="BTC", market_id=1, size_decimals=5, price_decimals=1, min_base_amount=0.0002,
                 min_quote_amount=10)
MS = 1_000_000
T0 = 1_757_900_000_000_000_000
A = 1001
LADDER = DepthModel(levels=5, step_ticks=2, size_multiple=1.0, refill_per_s=0.5)


def bbo(ts, bid, bsz, ask, asz):
    return Bbo(id=f"b{ts}", ts_event=ts, market="BTC", bid_px=bid, bid_sz=bsz, ask_px=ask, ask_sz=asz)


def ioc(coi, size, px, side, otype="market"):
    return CreateOrder(account=A, market_id=1, client_order_index=coi, base_amount=BTC.size_to_int(size),
                       price=BTC.price_to_int(px), is_ask=side == "sell", order_type=otype, time_in_force="ioc")


def engine(depth=LADDER):
    e = MatchingEngine([BTC], depth=depth)
    e.on_market_data(bbo(T0, 100000.0, 0.1, 100000.1, 0.1))
    return e


def run(e, tx, at_ns):
    return e.advance(e.submit(tx, at_ns).exec_ns)  # executes after the 300 ms speed bump


def test_public_book_shows_the_ladder_behind_the_touch():
    e = engine()
    bids, asks = e.public_book(1)
    # touch + 5 levels 2 ticks apart, each the touch size (10_000 lots = 0.1 BTC)
    assert sorted(asks.items()) == [(1_000_001 + 2 * k, 10_000) for k in range(6)]
    assert sorted(bids.items(), reverse=True) == [(1_000_000 - 2 * k, 10_000) for k in range(6)]
    assert "synthetic ladder" in e.depth_assumption and "top-of-book" in e.depth_assumption


def test_large_ioc_walks_the_ladder_and_pays_slippage():
    e = engine()
    ups = run(e, ioc(1, 0.35, 100010.0, "buy"), T0)
    fills = [u.fill for u in ups if isinstance(u, FillUpdate)]
    assert [(f.price_ticks, f.size_lots) for f in fills] == [(1_000_001, 10_000), (1_000_003, 10_000),
                                                              (1_000_005, 10_000), (1_000_007, 5_000)]
    (o,) = [u.order for u in ups if isinstance(u, OrderUpdate)]
    assert o.status == "filled"
    avg = sum(f.price * f.size for f in fills) / 0.35
    assert avg > 100000.1  # slippage beyond the touch
    # the consumed levels are gone from the book, deeper ones show (still 5 synthetic levels)
    _, asks = e.public_book(1)
    assert sorted(asks) == [1_000_007, 1_000_009, 1_000_011, 1_000_013, 1_000_015]
    assert asks[1_000_007] == 5_000


def test_limit_price_bounds_the_sweep_and_max_levels():
    e = engine()
    ups = run(e, ioc(1, 1.0, 100000.4, "buy", otype="limit"), T0)
    fills = [u.fill for u in ups if isinstance(u, FillUpdate)]
    assert [f.price_ticks for f in fills] == [1_000_001, 1_000_003]
    (o,) = [u.order for u in ups if isinstance(u, OrderUpdate)]
    assert o.status == "canceled" and o.filled == 20_000
    e2 = engine(DepthModel(levels=5, step_ticks=2, max_sweep_levels=2))
    fills = [u.fill for u in run(e2, ioc(1, 1.0, 90000.0, "sell"), T0) if isinstance(u, FillUpdate)]
    assert [f.price_ticks for f in fills] == [1_000_000, 999_998, 999_996]


def test_ladder_refills_with_sim_time_and_reads_do_not_change_it():
    e = engine()
    run(e, ioc(1, 0.3, 100010.0, "buy"), T0)  # touch + levels 1 and 2
    _, asks = e.public_book(1)
    assert 1_000_003 not in asks and 1_000_005 not in asks
    e.advance(T0 + 300 * MS + 1_000 * MS)  # 1 s after the take: half of each level is back
    _, asks = e.public_book(1)
    assert asks[1_000_003] == 5_000 and asks[1_000_005] == 5_000
    e.public_book(1)
    e.advance(T0 + 300 * MS + 2_000 * MS)
    _, asks = e.public_book(1)
    assert asks[1_000_003] == 10_000 and asks[1_000_005] == 10_000
    assert 1_000_001 not in asks  # the recorded touch stays consumed until the recording changes it


def test_a_side_never_empties():
    e = engine(DepthModel(levels=3, step_ticks=1, refill_per_s=0.0))
    run(e, ioc(1, 2.0, 100100.0, "buy"), T0)  # touch + 1000 levels max -> 0.1 + ... far more than 3 levels
    bids, asks = e.public_book(1)
    assert len(asks) == 3 and min(asks) > 1_000_001
    # the recording's ask side goes empty: the ladder anchors at the last recorded ask
    e.on_market_data(Bbo(id="x", ts_event=T0 + 10 * MS * 1000, market="BTC", bid_px=100000.0, bid_sz=0.1,
                         ask_px=0.0, ask_sz=0.0))
    bids, asks = e.public_book(1)
    assert len(asks) == 3 and min(asks) > 1_000_000
    # both sides empty: both anchor at their last prices
    e.on_market_data(Bbo(id="y", ts_event=T0 + 20 * MS * 1000, market="BTC", bid_px=0.0, bid_sz=0.0,
                         ask_px=0.0, ask_sz=0.0))
    bids, asks = e.public_book(1)
    assert len(bids) == 3 and max(bids) == 999_999 and len(asks) == 3 and max(bids) < min(asks)


def test_empty_side_anchor_never_crosses_the_other_side():
    lad = DepthLadder(DepthModel(levels=2, step_ticks=1), min_lots=20)
    lad.on_touch(100, 5, 101, 5)
    # the ask side empties, then bids move above the last ask: asks anchor above the new bid
    got = list(lad.levels(True, 110, 5, None, 0, 0))
    assert [p for p, _, _ in got] == [112, 113]
    # nothing recorded yet on a side: the other side anchors it, sized by the market minimum
    fresh = DepthLadder(DepthModel(levels=1, step_ticks=1), min_lots=20)
    assert list(fresh.levels(False, None, 0, 101, 5, 0)) == [(100, 20, 20)]
    assert list(fresh.levels(False, None, 0, None, 0, 0)) == []


def test_size_modes():
    lin = DepthLadder(DepthModel(levels=3, step_ticks=1, size_mode="linear", size_multiple=2.0, size_growth=0.5), 1)
    assert [s for _, s, _ in lin.levels(True, 99, 10, 100, 10, 0)] == [20, 30, 40]
    geo = DepthLadder(DepthModel(levels=3, step_bps=100, size_mode="geometric", size_growth=1.0), 1)
    assert list(geo.levels(False, 1000, 10, 1001, 10, 0)) == [(990, 10, 10), (980, 20, 20), (970, 40, 40)]


def test_off_by_default_one_level_book_unchanged():
    e = MatchingEngine([BTC])
    assert e.depth is None and e.depth_assumption == DEPTH_ASSUMPTION
    e.on_market_data(bbo(T0, 100000.0, 0.1, 100000.1, 0.1))
    assert e.public_book(1) == ({1_000_000: 10_000}, {1_000_001: 10_000})
    ups = run(e, ioc(1, 0.35, 100010.0, "buy"), T0)
    assert [u.fill.size_lots for u in ups if isinstance(u, FillUpdate)] == [10_000]
