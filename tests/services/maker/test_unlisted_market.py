"""The maker quotes a market its config does not list: sizes from ``notional_usd`` and the
market's lot/minimums, tick from the market metadata, inventory caps as multiples of min_size."""

from __future__ import annotations

from services.maker.engine import make_engine
from shared.config import StackConfig
from shared.events import Bbo, QuoteIntent
from shared.markets import MarketInfo

S = 1_000_000_000
T0 = 1_762_800_000 * S
DOGE = MarketInfo(symbol="DOGE", market_id=7, size_decimals=0, price_decimals=5, min_base_amount=1.0,
                  min_quote_amount=10.0)


def test_unlisted_market_is_quoted_with_derived_sizes_and_tick():
    e = make_engine(StackConfig(markets=["DOGE"]), market_info={"DOGE": DOGE})
    assert e.state("DOGE")["inventory_clips"] == 0.0  # before the first mid: nothing derived, no crash
    out: list = []
    for i in range(40):
        out += e.on_event(Bbo(id=f"b{i}", ts_event=T0 + i * S, source="collector", market="DOGE",
                              bid_px=0.24999, bid_sz=1e5, ask_px=0.25001, ask_sz=1e5))
    quotes = [q for q in out if isinstance(q, QuoteIntent)]
    assert quotes
    q = quotes[0]
    # 25 USD / 0.25 = 100 DOGE min_size, 200 max_size; soft 500, hard 1000 DOGE
    assert q.bid_sz is not None and 100.0 <= q.bid_sz <= 200.0 and q.bid_sz == round(q.bid_sz)
    assert abs(q.bid_px / DOGE.tick - round(q.bid_px / DOGE.tick)) < 1e-6  # on the 0.00001 tick
    st = e._m["DOGE"]
    assert (st.sizing.min_size, st.sizing.max_size, st.tick, st.soft, st.hard) == (100.0, 200.0, 1e-05, 500.0, 1000.0)


def test_per_market_config_still_overrides():
    e = make_engine(StackConfig(markets=["DOGE"], services={"maker": {
        "sizes": {"DOGE": {"min_size": 50, "max_size": 60, "size_step": 1}}, "soft_inventory": {"DOGE": 70}}}),
        market_info={"DOGE": DOGE})
    e.on_event(Bbo(id="b", ts_event=T0, source="collector", market="DOGE", bid_px=0.24999, bid_sz=1e5,
                   ask_px=0.25001, ask_sz=1e5))
    st = e._m["DOGE"]
    assert (st.sizing.min_size, st.sizing.max_size, st.soft, st.hard) == (50.0, 60.0, 70.0, 500.0)
